"""Errors of address management, each a one-line explanation for the user."""

from __future__ import annotations

from podnet.errors import PodnetError


class RangeExhausted(PodnetError):
    """Every address of a range (or every subnet of the cluster CIDR) is taken."""


class AlreadyAllocated(PodnetError):
    """The address asked for is held by another attachment."""


class OutOfRange(PodnetError, ValueError):
    """An address or subnet that does not belong to the range it was asked from."""
