"""Shared fixtures: network namespaces, node agents and the CNI executable (tests/netns.py)."""

pytest_plugins = ["netns"]
