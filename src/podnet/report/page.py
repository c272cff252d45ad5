"""What the report page shows, as plain data: the renderer only lays it out."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.model.nodelease import Readiness

DESCRIPTION_LIMIT = 240  # characters of a list of pods, at most

Cells = tuple[tuple[bool, ...], ...]


@dataclass(frozen=True)
class Seen:
    """What the kernel did with the pod pairs of one cell, against the engine: the pairs
    probed, those it let through that the engine denies, and those it dropped that it allows."""

    pairs: int = 0
    let_through: int = 0
    dropped: int = 0

    @property
    def differ(self) -> int:
        return self.let_through + self.dropped


UNSEEN = Seen()
ObservedCells = tuple[tuple[Seen, ...], ...]


@dataclass(frozen=True)
class NodeRow:
    name: str
    addresses: tuple[str, ...] = ()
    pod_cidrs: tuple[str, ...] = ()
    pods: int = 0
    readiness: Readiness | None = None  # None: not known (manifests have no node leases)


@dataclass(frozen=True)
class PodRow:
    key: str
    node: str
    ips: tuple[str, ...]
    labels: str
    host_network: bool = False


@dataclass(frozen=True)
class Member:
    """One row (and column) of a grid: a pod, or pods that every policy treats alike."""

    label: str
    pods: tuple[str, ...]


@dataclass(frozen=True)
class Grid:
    """The reachability of one probe: `allowed[i][j]` from `axis[i]` to `axis[j]`.

    A diagonal cell of a single pod is its loopback (always allowed). `observed`, when the
    kernel was probed, holds what it did per cell, and `observed_total` over every pod pair,
    those of the rows and columns not shown included.
    """

    probe: str
    axis: tuple[Member, ...]
    allowed: Cells
    observed: ObservedCells | None = None
    observed_total: Seen = UNSEEN
    grouped: bool = False  # the axis is groups of pods, not pods
    left_out: int = 0  # axis entries not shown (too many)

    def is_loopback(self, i: int, j: int) -> bool:
        return i == j and len(self.axis[i].pods) == 1


@dataclass(frozen=True)
class Admission:
    """Connections that one rule of a policy admits for one probe (allowed end to end)."""

    sources: str
    destinations: str
    probe: str
    rule: str  # "ingress[0]", "egress[1]"
    pairs: int  # pod pairs


@dataclass(frozen=True)
class PolicyRow:
    key: str
    policy_types: tuple[str, ...]
    pod_selector: str
    selects: str  # the selected pods, described briefly
    selected: int
    rules: str  # "2 ingress, 1 egress"
    pairs: int = 0  # (source pod, destination pod, probe) connections this policy admits
    admissions: tuple[Admission, ...] = ()
    left_out: int = 0  # admissions not listed (too many)


@dataclass(frozen=True)
class DeniedFlow:
    time: str
    node: str
    source: str
    destination: str
    protocol: str
    reason: str


@dataclass(frozen=True)
class Report:
    title: str
    source: str  # what the report was made from
    generated: str  # when, as text
    nodes: tuple[NodeRow, ...]
    pods: tuple[PodRow, ...]
    grids: tuple[Grid, ...]
    policies: tuple[PolicyRow, ...]
    flows: tuple[DeniedFlow, ...] | None = None  # None: no flow log (manifests alone)
    graph_svg: str | None = None


def brief(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """A long comma-separated list cut at `limit` characters, saying how many were left out."""
    if len(text) <= limit:
        return text
    cut = text.rfind(", ", 0, limit)
    shown = text[:cut if cut > 0 else limit]
    return f"{shown}, ... ({text.count(', ') - shown.count(', ')} more)"
