"""Address ranges: which addresses of a node's subnet pods may get, and in which order.

The subnet's first address (`.0`) is kept for the node's overlay device (DESIGN §3: remote
nodes route the subnet via it); in IPv4 the broadcast address is skipped as host-local does.
Iteration is round-robin from the address after the last one handed out, so a released
address is not handed out again at once (a stale packet or ARP entry would reach a new pod).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from podnet.ipam.errors import OutOfRange
from podnet.model import IPAddress, IPNetwork


@dataclass(frozen=True)
class AddressRange:
    """The addresses `first`..`last` of `subnet`, both included."""

    subnet: IPNetwork
    first: IPAddress
    last: IPAddress

    def __post_init__(self) -> None:
        if not (self.first in self.subnet and self.last in self.subnet
                and int(self.first) <= int(self.last)):
            raise OutOfRange(f"{self.first}-{self.last} is not a range of {self.subnet}")

    @classmethod
    def for_pods(cls, subnet: IPNetwork) -> AddressRange:
        """The pod addresses of a node subnet: all but the overlay's `.0` and the broadcast."""
        last = subnet.broadcast_address
        if subnet.version == 4:
            last -= 1
        if subnet.num_addresses < 4:
            raise OutOfRange(f"{subnet} is too small for pods")
        return cls(subnet, subnet.network_address + 1, last)

    @property
    def id(self) -> str:
        """A stable name for the range: where its round-robin cursor is kept."""
        return f"{self.first}-{self.last}"

    @property
    def gateway(self) -> IPAddress:
        """The address kept for the node's overlay device."""
        return self.subnet.network_address

    def __len__(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, ip: object) -> bool:
        return (isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
                and ip.version == self.first.version
                and int(self.first) <= int(ip) <= int(self.last))

    def after(self, previous: IPAddress | None) -> Iterator[IPAddress]:
        """Every address once, starting after `previous` and wrapping around."""
        start = self.first
        if previous is not None and previous in self and previous != self.last:
            start = previous + 1
        ip = start
        while True:
            yield ip
            ip = self.first if ip == self.last else ip + 1
            if ip == start:
                return
