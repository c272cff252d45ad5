"""Allowed ports between endpoint classes, per direction: the fast path of matrix and connectivity.

Endpoints are the pod classes of a `Resolution`, then `External` address ranges: the pieces
into which all ipBlock boundaries cut the address space. For each pair the ingress side (the
destination's rules) and the egress side (the source's rules) give a `PortSet`; a connection
needs both. Sets are interned in a table so matrices are small integer arrays.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from podnet.model import Direction, IPAddress, IPNetwork, Pod
from podnet.policy.portset import PortSet
from podnet.policy.resolve import Resolution
from podnet.policy.selection import Mask, in_v4

Ids = npt.NDArray[np.int32]
NOT_APPLICABLE = -1  # address to address: not the pod network's business


@dataclass(frozen=True)
class External:
    """Addresses outside the pods, first..last, that every ipBlock treats alike."""

    first: IPAddress
    last: IPAddress

    def cidrs(self) -> list[IPNetwork]:
        return list(ipaddress.summarize_address_range(self.first, self.last))

    def __str__(self) -> str:
        return ", ".join(str(c) for c in self.cidrs())


class PortTable:
    """Interned PortSets: equal sets share one id."""

    def __init__(self) -> None:
        self.sets: list[PortSet] = []
        self._ids: dict[PortSet, int] = {}
        self.all = self.id(PortSet.all())
        self.none = self.id(PortSet.none())
        self._and: dict[tuple[int, int], int] = {}

    def id(self, ports: PortSet) -> int:
        found = self._ids.get(ports)
        if found is None:
            found = self._ids[ports] = len(self.sets)
            self.sets.append(ports)
        return found

    def intersect(self, a: Ids, b: Ids) -> Ids:
        """Element-wise intersection of two id arrays (NOT_APPLICABLE stays)."""
        size = len(self.sets) + 1
        pairs = (a.astype(np.int64) + 1) * size + (b.astype(np.int64) + 1)
        unique, inverse = np.unique(pairs, return_inverse=True)
        out = np.empty(len(unique), dtype=np.int32)
        for k, pair in enumerate(unique):
            x, y = divmod(int(pair), size)
            out[k] = NOT_APPLICABLE if x == 0 or y == 0 else self._meet(x - 1, y - 1)
        return out[inverse].reshape(a.shape)

    def _meet(self, a: int, b: int) -> int:
        key = (a, b) if a <= b else (b, a)
        found = self._and.get(key)
        if found is None:
            found = self._and[key] = self.id(self.sets[a] & self.sets[b])
        return found

    def allows(self, protocol: object, port: int) -> npt.NDArray[np.bool_]:
        """For each id, whether its set admits (protocol, port); index -1 gives False."""
        return np.array([s.allows(protocol, port) for s in self.sets] + [False])  # type: ignore[arg-type]


class ClassMatrices:
    """Ingress, egress and allowed port sets between all endpoint classes, [source, destination]."""

    def __init__(self, res: Resolution) -> None:
        self.res = res
        self.table = PortTable()
        self.externals = external_ranges(res)
        self.pod_classes = res.class_count()
        size = self.pod_classes + len(self.externals)
        self.endpoints: list[Pod | None] = [*res.reps, *(None for _ in self.externals)]
        self._named = np.array([*res.named_ports, *(0 for _ in self.externals)], dtype=np.int64)
        self.ingress = np.full((size, size), self.table.all, dtype=np.int32)
        self.egress = np.full((size, size), self.table.all, dtype=np.int32)
        self._fill(Direction.INGRESS)
        self._fill(Direction.EGRESS)
        self._own_node_traffic()
        self.allowed = self.table.intersect(self.egress, self.ingress)
        pods = self.pod_classes
        for m in (self.ingress, self.egress, self.allowed):
            m[pods:, pods:] = NOT_APPLICABLE

    def _fill(self, direction: Direction) -> None:
        """For each pod class isolated in `direction`, the union of its matching rules' ports."""
        res = self.res
        rules = res.rules(direction)
        peer_matrix = np.hstack([res.peer_matrix(direction), self._external_matrix(direction)])
        any_peer = np.array([r.any_peer for r in rules], dtype=bool)
        for cls in range(self.pod_classes):
            if not res.isolating_policies(direction, cls):
                continue  # not isolated: everything stays allowed
            ids = res.class_rules(direction, cls)
            if not ids:  # isolated by policies without rules in this direction
                line = np.full(peer_matrix.shape[1], self.table.none, dtype=np.int32)
                if direction is Direction.INGRESS:
                    self.ingress[:, cls] = line
                else:
                    self.egress[cls, :] = line
                continue
            # rows: this class's rules; columns: the classes on the other end.
            matched = peer_matrix[ids] | any_peer[ids][:, None]
            # Named ports are resolved on the destination: this class for ingress, the other
            # end for egress, where ends with the same named ports share their sets.
            keys = np.packbits(matched.T, axis=1)
            if direction is Direction.EGRESS and any(rules[r].has_named_ports for r in ids):
                keys = np.hstack([keys, self._named[:, None]])
            unique, first, inverse = np.unique(keys, axis=0, return_index=True,
                                               return_inverse=True)
            found = np.empty(len(unique), dtype=np.int32)
            for u, other in enumerate(first):
                dest = self.endpoints[cls if direction is Direction.INGRESS else other]
                ports = PortSet.none()
                for k in np.flatnonzero(matched[:, other]):
                    ports |= rules[ids[k]].ports_on(dest)
                found[u] = self.table.id(ports)
            line = found[inverse.reshape(-1)]
            if direction is Direction.INGRESS:
                self.ingress[:, cls] = line
            else:
                self.egress[cls, :] = line

    def _external_matrix(self, direction: Direction) -> Mask:
        """rules x externals: whether one of the rule's ipBlocks holds the range."""
        rules = self.res.rules(direction)
        out = np.zeros((len(rules), len(self.externals)), dtype=bool)
        if not self.externals:
            return out
        v4 = np.array([int(e.first) if e.first.version == 4 else -1 for e in self.externals],
                      dtype=np.int64)
        for i, rule in enumerate(rules):
            for block in rule.ip_blocks:
                if block.cidr.version == 4:
                    inside = in_v4(v4, block.cidr)
                    for excluded in block.except_:
                        inside &= ~in_v4(v4, excluded)
                    out[i] |= inside
                else:
                    out[i] |= [block.contains(e.first) for e in self.externals]
        return out

    def _own_node_traffic(self) -> None:
        """Host network pods reach pods on their own node: that traffic is the node's."""
        reps = self.res.reps
        for s, src in enumerate(reps):
            if not src.host_network or src.node_name is None:
                continue
            for d, dst in enumerate(reps):
                if dst.node_name == src.node_name and not dst.host_network:
                    self.ingress[s, d] = self.table.all


def merge_ranges(ranges: list[External]) -> list[External]:
    """Adjacent ranges joined into one."""
    merged: list[External] = []
    for r in sorted(ranges, key=lambda r: (r.first.version, r.first)):
        if merged and merged[-1].last.version == r.first.version and \
                int(merged[-1].last) + 1 == int(r.first):
            merged[-1] = External(merged[-1].first, r.last)
        else:
            merged.append(r)
    return merged


def describe_ranges(ranges: list[External]) -> str:
    """CIDRs, or `10.0.0.0/8 except 10.244.1.0/24` when the holes are shorter to say."""
    parts = []
    for version in (4, 6):
        mine = [r for r in ranges if r.first.version == version]
        if not mine:
            continue
        cidrs = [c for r in mine for c in r.cidrs()]
        cover = _covering(mine[0].first, mine[-1].last)
        holes = _complement(cover, cidrs)
        if len(holes) + 1 < len(cidrs):
            parts.append(f"{cover} except {', '.join(map(str, holes))}")
        else:
            parts.append(", ".join(map(str, cidrs)))
    return ", ".join(parts)


def _covering(first: IPAddress, last: IPAddress) -> IPNetwork:
    """The smallest network holding first..last."""
    for prefix in range(first.max_prefixlen, -1, -1):
        net = ipaddress.ip_network(f"{first}/{prefix}", strict=False)
        if last in net:
            return net
    raise AssertionError("unreachable: /0 holds every address")


def _complement(universe: IPNetwork, cidrs: list[IPNetwork]) -> list[IPNetwork]:
    remaining = [universe]
    for c in cidrs:
        remaining = [piece for r in remaining
                     for piece in ([r] if not r.overlaps(c) else
                                   [] if r.subnet_of(c) else r.address_exclude(c))]  # type: ignore[arg-type]
    return sorted(remaining)


def external_ranges(res: Resolution) -> list[External]:
    """Cut the address space at every ipBlock boundary; IPv4 always, IPv6 when a block has it."""
    cuts: dict[int, set[int]] = {4: {0, 2**32}}
    for block in res.ip_blocks():
        for net in (block.cidr, *block.except_):
            family = cuts.setdefault(net.version, {0, 2 ** net.max_prefixlen})
            family |= {int(net.network_address), int(net.broadcast_address) + 1}
    ranges = []
    for version, points in sorted(cuts.items()):
        make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        edges = sorted(points)
        ranges += [External(make(lo), make(hi - 1)) for lo, hi in itertools.pairwise(edges)]
    return ranges

