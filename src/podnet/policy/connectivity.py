"""Who may talk to whom, on which ports: a reachability matrix per probe, and full connectivity
grouped like firewall rules (endpoints with the same connections share one line)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from podnet.model import Pod, Protocol
from podnet.policy.classes import (
    NOT_APPLICABLE,
    ClassMatrices,
    External,
    describe_ranges,
    merge_ranges,
)
from podnet.policy.portset import PortSet


@dataclass(frozen=True)
class Probe:
    port: int
    protocol: Protocol = Protocol.TCP

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"

    @classmethod
    def each(cls, ports: Sequence[int], protocols: Sequence[Protocol]) -> list[Probe]:
        """Every port on every protocol, ports first (the order of the CLI's tables)."""
        return [cls(port, protocol) for port in ports for protocol in protocols]


Table = dict[str, dict[str, bool]]


@dataclass(frozen=True)
class ProbeMatrix:
    """The verdict of every pod pair for one probe: rows are sources, as upstream prints."""

    probe: Probe
    pods: tuple[str, ...]
    allowed: Table
    ingress: Table
    egress: Table


def probe_matrices(m: ClassMatrices, probes: Sequence[Probe]) -> list[ProbeMatrix]:
    pods = m.res.pods
    keys = tuple(p.key for p in pods)
    cls = m.res.class_of
    out = []
    for probe in probes:
        ok = m.table.allows(probe.protocol, probe.port)
        tables = []
        for ids in (m.allowed, m.ingress, m.egress):
            grid = ok[ids[np.ix_(cls, cls)]]
            np.fill_diagonal(grid, True)  # a pod reaches itself over loopback
            tables.append({k: dict(zip(keys, map(bool, row), strict=True))
                           for k, row in zip(keys, grid, strict=True)})
        out.append(ProbeMatrix(probe, keys, *tables))
    return out


@dataclass(frozen=True)
class Group:
    """Endpoints with the same connections: pods (by key), or address ranges."""

    pods: tuple[str, ...] = ()
    ranges: tuple[External, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, object]:
        return {"description": self.description, "pods": list(self.pods),
                "addresses": [str(c) for r in self.ranges for c in r.cidrs()]}


@dataclass(frozen=True)
class Connection:
    sources: Group
    destinations: Group
    ports: PortSet


class Connectivity:
    """Full connectivity: the allowed port set of every endpoint pair, and its grouped form."""

    def __init__(self, m: ClassMatrices) -> None:
        self._m = m
        self._pods = m.res.pods
        self.connections = _group(m)

    def between(self, src: str, dst: str) -> PortSet:
        """The ports `src` may open towards `dst` (pod keys)."""
        if src == dst:
            return PortSet.all()
        index = self._m.res.pod_index
        c = self._m.res.class_of
        return self._m.table.sets[int(self._m.allowed[c[index[src]], c[index[dst]]])]


def _group(m: ClassMatrices) -> list[Connection]:
    """Merge, for each source, the destinations it reaches on the same ports; then merge the
    sources that reach the same destinations on the same ports."""
    allowed = m.allowed.copy()
    # A class of one pod facing itself is that pod's loopback: not a connection to report.
    for cls, members in enumerate(m.res.members):
        if len(members) == 1:
            allowed[cls, cls] = NOT_APPLICABLE
    allowed[allowed == m.table.none] = NOT_APPLICABLE
    by_target: dict[tuple[bytes, int], list[int]] = {}
    for src, row in enumerate(allowed):
        for ports in np.unique(row):
            if ports != NOT_APPLICABLE:
                targets = np.packbits(row == ports).tobytes()
                by_target.setdefault((targets, int(ports)), []).append(src)
    size = len(allowed)
    describe = Describer(m.res.pods)
    connections = []
    for (targets, ports), sources in by_target.items():
        dst = np.flatnonzero(np.unpackbits(np.frombuffer(targets, dtype=np.uint8))[:size])
        connections.append(Connection(_group_of(m, describe, sources),
                                      _group_of(m, describe, dst.tolist()),
                                      m.table.sets[ports]))
    return sorted(connections, key=lambda c: (c.sources.description, c.destinations.description))


def _group_of(m: ClassMatrices, describe: Describer, endpoints: Sequence[int]) -> Group:
    pods = sorted(p for e in endpoints if e < m.pod_classes for p in m.res.members[e])
    ranges = merge_ranges([m.externals[e - m.pod_classes] for e in endpoints
                           if e >= m.pod_classes])
    description = ", ".join(filter(None, [describe([m.res.pods[i] for i in pods]),
                                          describe_ranges(ranges)]))
    return Group(tuple(m.res.pods[i].key for i in pods), tuple(ranges), description)


class Describer:
    """Names a set of pods as briefly as is exact: `x/*`, `x/[app=web]`, or `x/a, x/b`."""

    def __init__(self, pods: Sequence[Pod]) -> None:
        self.pods = pods
        self.by_namespace: dict[str, list[Pod]] = {}
        # namespace -> label -> indices of the namespace's pods that carry it
        self.carriers: dict[str, dict[tuple[str, str], set[int]]] = {}
        for i, pod in enumerate(pods):
            self.by_namespace.setdefault(pod.namespace, []).append(pod)
            carriers = self.carriers.setdefault(pod.namespace, {})
            for label in pod.labels.items():
                carriers.setdefault(label, set()).add(i)

    def __call__(self, group: Sequence[Pod]) -> str:
        if not group:
            return ""
        if len(group) == len(self.pods):
            return "*/*"
        mine: dict[str, list[Pod]] = {}
        for pod in group:
            mine.setdefault(pod.namespace, []).append(pod)
        parts = []
        for ns, chosen in sorted(mine.items()):
            everyone = self.by_namespace[ns]
            if len(chosen) == len(everyone):
                parts.append(f"{ns}/*")
                continue
            labels = (_selecting_labels(chosen, self.carriers[ns]) if len(chosen) > 1
                      else None)
            if labels:
                parts.append(f"{ns}/[{','.join(f'{k}={v}' for k, v in labels)}]")
            else:
                parts += [p.key for p in chosen]
        return ", ".join(parts)


def _selecting_labels(chosen: Sequence[Pod], carriers: dict[tuple[str, str], set[int]]
                      ) -> tuple[tuple[str, str], ...] | None:
    """The fewest labels (one or two) that the chosen pods, and only they, all carry."""
    common = sorted(set(chosen[0].labels.items()).intersection(
        *(p.labels.items() for p in chosen[1:])))
    for label in common:
        if len(carriers[label]) == len(chosen):
            return (label,)
    for a, b in itertools.combinations(common, 2):
        if len(carriers[a] & carriers[b]) == len(chosen):
            return (a, b)
    return None
