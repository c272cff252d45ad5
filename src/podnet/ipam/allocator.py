"""Pod address allocation over an `IPStore`, as host-local's allocator does it.

Pure: the allocator chooses, the store records. One call is one store transaction: look up
the attachment (ADD twice returns the same address), then try addresses round-robin from
the last one reserved until the store accepts one. The cursor makes the common case one
attempt: addresses ahead of it were released long ago or never used.
"""

from __future__ import annotations

from collections.abc import Collection

from podnet.ipam.errors import AlreadyAllocated, OutOfRange, RangeExhausted
from podnet.ipam.ranges import AddressRange
from podnet.ipam.reservations import Attachment, IPStore, Reservation
from podnet.model import IPAddress


class IPAllocator:
    """Hands out the addresses of one range to attachments, keeping them in `store`."""

    def __init__(self, range_: AddressRange, store: IPStore) -> None:
        self.range = range_
        self.store = store

    def allocate(self, attachment: Attachment, pod: str | None = None,
                 requested: IPAddress | None = None) -> IPAddress:
        """The address of `attachment`: the one it holds already, `requested`, or the next free.

        RangeExhausted if every address is taken; AlreadyAllocated if `requested` is.
        """
        with self.store.transaction():
            held = [ip for ip in self.store.get_by_owner(attachment) if ip in self.range]
            if held:
                if requested is not None and requested != held[0]:
                    raise AlreadyAllocated(f"{attachment} holds {held[0]}, not {requested}")
                return held[0]
            if requested is not None:
                return self._reserve_requested(attachment, pod, requested)
            for ip in self.range.after(self.store.last_reserved(self.range.id)):
                if self.store.reserve(attachment, ip, self.range.id, pod):
                    return ip
        raise RangeExhausted(f"no free address in {self.range.subnet}: all {len(self.range)} "
                             "pod addresses are allocated")

    def _reserve_requested(self, attachment: Attachment, pod: str | None,
                           requested: IPAddress) -> IPAddress:
        if requested not in self.range:
            raise OutOfRange(f"{requested} is not a pod address of {self.range.subnet} "
                             f"({self.range.first}-{self.range.last})")
        if not self.store.reserve(attachment, requested, self.range.id, pod):
            raise AlreadyAllocated(f"{requested} is already allocated")
        return requested

    def release(self, attachment: Attachment) -> list[IPAddress]:
        """Free the attachment's address; releasing twice (or never allocated) is no error."""
        return self.store.release_by_owner(attachment)

    def reservations(self) -> list[Reservation]:
        return [r for r in self.store.reservations() if r.ip in self.range]

    def gc(self, valid: Collection[Attachment]) -> list[Reservation]:
        """Release every reservation whose attachment is not in `valid`; returns them."""
        keep = set(valid)
        released: list[Reservation] = []
        with self.store.transaction():
            for r in self.store.reservations():
                if r.attachment not in keep and r.ip in self.range:
                    self.store.release_by_owner(r.attachment)
                    released.append(r)
        return released
