"""Address reservations and the narrow store the allocator needs to keep them.

As host-local's `backend.Store`: the allocator decides which address to take, the store only
records who holds what and refuses a second holder. SQLite enforces that with UNIQUE
constraints inside `BEGIN IMMEDIATE`; an etcd backend will use compare-and-create.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from podnet.model import IPAddress


@dataclass(frozen=True, order=True)
class Attachment:
    """Who holds an address: one interface of one container, as CNI names them."""

    container_id: str
    ifname: str = "eth0"

    def __str__(self) -> str:
        return f"{self.container_id}/{self.ifname}"


@dataclass(frozen=True)
class Reservation:
    """An address held by an attachment; `pod` is `namespace/name` when the runtime said so."""

    ip: IPAddress
    attachment: Attachment
    pod: str | None = None


class IPStore(Protocol):
    """The reservations of one pool (a node's subnet)."""

    def transaction(self) -> AbstractContextManager[object]:
        """Everything inside happens atomically and alone (other writers wait)."""
        ...

    def reserve(self, attachment: Attachment, ip: IPAddress, range_id: str,
                pod: str | None = None) -> bool:
        """Record that `attachment` holds `ip`; False if `ip` is held already.

        Also remembers `ip` as the last address reserved in `range_id`.
        """
        ...

    def last_reserved(self, range_id: str) -> IPAddress | None:
        ...

    def get_by_owner(self, attachment: Attachment) -> list[IPAddress]:
        ...

    def release_by_owner(self, attachment: Attachment) -> list[IPAddress]:
        """Free what `attachment` holds; returns the freed addresses (none: nothing held)."""
        ...

    def reservations(self) -> Iterator[Reservation]:
        """Every reservation of the pool, in address order."""
        ...
