"""Sets of (protocol, port): what a rule admits, and what a pair of endpoints may use.

A NetworkPolicy rule without `ports` admits every port of every protocol, ICMP included, so
a set also records whether it covers protocols other than TCP, UDP and SCTP ("other").
"""

from __future__ import annotations

from dataclasses import dataclass

from podnet.model import Protocol

Ranges = tuple[tuple[int, int], ...]
_FULL: Ranges = ((1, 65535),)


@dataclass(frozen=True)
class PortSet:
    """Disjoint, sorted port ranges per protocol, plus whether other protocols pass too."""

    tcp: Ranges = ()
    udp: Ranges = ()
    sctp: Ranges = ()
    other: bool = False

    @classmethod
    def all(cls) -> PortSet:
        return _ALL

    @classmethod
    def none(cls) -> PortSet:
        return _NONE

    @classmethod
    def of(cls, protocol: Protocol, first: int = 1, last: int = 65535) -> PortSet:
        """Ports first..last (inclusive) of one protocol."""
        ranges = ((first, last),)
        return cls(ranges if protocol is Protocol.TCP else (),
                   ranges if protocol is Protocol.UDP else (),
                   ranges if protocol is Protocol.SCTP else ())

    def ranges(self, protocol: Protocol) -> Ranges:
        if protocol is Protocol.TCP:
            return self.tcp
        return self.udp if protocol is Protocol.UDP else self.sctp

    def with_ranges(self, protocol: Protocol, ranges: Ranges) -> PortSet:
        tcp, udp, sctp = (
            ranges if p is protocol else self.ranges(p)
            for p in (Protocol.TCP, Protocol.UDP, Protocol.SCTP)
        )
        return PortSet(tcp, udp, sctp, self.other)

    def allows(self, protocol: Protocol, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self.ranges(protocol))

    def is_empty(self) -> bool:
        return not (self.tcp or self.udp or self.sctp or self.other)

    def is_all(self) -> bool:
        return self == _ALL

    def __or__(self, other: PortSet) -> PortSet:
        return PortSet(
            _union(self.tcp, other.tcp),
            _union(self.udp, other.udp),
            _union(self.sctp, other.sctp),
            self.other or other.other,
        )

    def __and__(self, other: PortSet) -> PortSet:
        return PortSet(
            _intersection(self.tcp, other.tcp),
            _intersection(self.udp, other.udp),
            _intersection(self.sctp, other.sctp),
            self.other and other.other,
        )

    def __str__(self) -> str:
        """`all`, `none`, or `TCP 80,8000-8080; UDP 53` (a protocol with every port: `TCP *`)."""
        if self.is_all():
            return "all"
        if self.is_empty():
            return "none"
        parts = []
        for protocol in (Protocol.TCP, Protocol.UDP, Protocol.SCTP):
            ranges = self.ranges(protocol)
            if ranges == _FULL:
                parts.append(f"{protocol} *")
            elif ranges:
                parts.append(f"{protocol} " + ",".join(
                    str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges))
        if self.other:
            parts.append("other protocols")
        return "; ".join(parts)

    def to_json(self) -> object:
        """`"all"`, or `{"TCP": ["80", "8000-8080"], ...}` (plus `"other": true`)."""
        if self.is_all():
            return "all"
        doc: dict[str, object] = {
            str(p): [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges(p)]
            for p in (Protocol.TCP, Protocol.UDP, Protocol.SCTP) if self.ranges(p)
        }
        if self.other:
            doc["other"] = True
        return doc


def _union(a: Ranges, b: Ranges) -> Ranges:
    if not a:
        return b
    if not b or a == b:
        return a
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(a + b):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)


def _intersection(a: Ranges, b: Ranges) -> Ranges:
    if not a or not b:
        return ()
    if a == b:
        return a
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


_ALL = PortSet(_FULL, _FULL, _FULL, True)
_NONE = PortSet()
