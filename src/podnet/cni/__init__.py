"""The CNI side of podnet: spec types and the `podnet-cni` executable (standard library only)."""
