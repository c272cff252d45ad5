"""podnet: a small, readable Kubernetes pod network."""

__version__ = "0.1.0"
