"""The report's data from the engine: the matrices, the verdicts' reasons and the pods' places.

The engine answers per pod class (pods that every selector, ipBlock and named port treats
alike), so the report asks per class pair: `Engine.class_matrix` for the grids of big
clusters, and a verdict per allowed pair that a policy isolates for the admissions. A
policy's admissions are the class pairs whose connection is allowed and whose verdict names
one of its rules (`Verdict.allowed_by`, as `podnet policy explain` shows them).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from podnet.model import Direction, Node, Pod
from podnet.model.nodelease import NodeLease, readiness
from podnet.policy import Engine, Probe, ProbeMatrix
from podnet.policy.connectivity import Describer
from podnet.report.page import (
    UNSEEN,
    Admission,
    DeniedFlow,
    Grid,
    Member,
    NodeRow,
    ObservedCells,
    PodRow,
    PolicyRow,
    Report,
    Seen,
    brief,
)

POD_GRID_LIMIT = 100  # more pods than this: the grid's rows are classes of alike pods
GRID_LIMIT = 200  # rows (and columns) of a grid at most
ADMISSION_LIMIT = 25  # admissions listed per policy at most

Observed = Mapping[str, Mapping[str, bool | None]]  # source -> destination -> reached
ClassPairs = dict[int, set[int]]  # source class -> destination classes
ClassMatrix = npt.NDArray[np.bool_]  # classes x classes: allowed


@dataclass(frozen=True)
class Liveness:
    """The nodes' leases (by node) as read at `now`, from a running cluster's store."""

    leases: Mapping[str, NodeLease]
    now: datetime.datetime


def build_report(engine: Engine, probes: Sequence[Probe], *, title: str, source: str,
                 generated: str, nodes: Sequence[Node] = (),
                 observed: Mapping[Probe, Observed] | None = None,
                 flows: Sequence[DeniedFlow] | None = None,
                 graph_svg: str | None = None, liveness: Liveness | None = None) -> Report:
    """The report of `engine`'s cluster for `probes`; `nodes` add to the cluster's own. With
    `liveness`, each node is Ready or not as `podnet get nodes` says (podnet.model.nodelease);
    without (manifests), its readiness is unknown and the page shows none."""
    cluster = engine.cluster
    by_class = {probe: engine.class_matrix(probe) for probe in probes}
    seen = observed or {}
    if len(cluster.pods) > POD_GRID_LIMIT:
        grids = tuple(_class_grid(engine, probe, allowed, seen.get(probe))
                      for probe, allowed in by_class.items())
    else:
        grids = tuple(_pod_grid(m, seen.get(m.probe)) for m in engine.matrix(probes))
    return Report(title, source, generated,
                  _nodes(cluster.pods, [*cluster.nodes, *nodes], liveness),
                  tuple(_pod_row(p) for p in cluster.pods), grids, _policies(engine, by_class),
                  None if flows is None else tuple(flows), graph_svg)


def _nodes(pods: Sequence[Pod], nodes: Sequence[Node], liveness: Liveness | None
           ) -> tuple[NodeRow, ...]:
    """The nodes given, then those only pods name; each with its pod count and readiness."""
    counts: dict[str, int] = {}
    for p in pods:
        if p.node_name:
            counts[p.node_name] = counts.get(p.node_name, 0) + 1
    known = {n.name: n for n in nodes}
    rows = [NodeRow(n.name, tuple(map(str, n.addresses)), tuple(map(str, n.pod_cidrs)),
                    counts.get(n.name, 0)) for n in known.values()]
    rows += [NodeRow(name, pods=count) for name, count in sorted(counts.items())
             if name not in known]
    if liveness is None:
        return tuple(rows)
    return tuple(replace(r, readiness=readiness(liveness.leases.get(r.name), liveness.now))
                 for r in rows)


def _pod_row(pod: Pod) -> PodRow:
    labels = ",".join(f"{k}={v}" for k, v in sorted(pod.labels.items()))
    return PodRow(pod.key, pod.node_name or "", tuple(map(str, pod.ips)), labels,
                  pod.host_network)


def _pod_grid(matrix: ProbeMatrix, observed: Observed | None) -> Grid:
    keys = matrix.pods[:GRID_LIMIT]
    allowed = tuple(tuple(matrix.allowed[src][dst] for dst in keys) for src in keys)
    grid = Grid(str(matrix.probe), tuple(Member(k, (k,)) for k in keys), allowed,
                left_out=len(matrix.pods) - len(keys))
    if observed is None:
        return grid
    index = {key: i for i, key in enumerate(matrix.pods)}
    cells, total = _observations(observed, index, lambda s, d: matrix.allowed[s][d], len(keys))
    return replace(grid, observed=cells, observed_total=total)


def _class_grid(engine: Engine, probe: Probe, allowed: ClassMatrix,
                observed: Observed | None) -> Grid:
    """Rows and columns are the engine's classes: one cell is the verdict of every pair."""
    res = engine.resolution
    describe = Describer(res.pods)
    members = res.members[:GRID_LIMIT]
    axis = tuple(Member(brief(describe([res.pods[i] for i in m]))
                        + (f" ({len(m)} pods)" if len(m) > 1 else ""),
                        tuple(res.pods[i].key for i in m)) for m in members)
    size = len(members)
    cells = allowed[:size, :size].copy()
    # A class of one pod with itself is that pod's loopback, always allowed.
    cells[np.diag_indices(size)] |= np.array([len(m) == 1 for m in members], dtype=bool)
    grid = Grid(str(probe), axis, tuple(map(tuple, cells.tolist())), grouped=True,
                left_out=len(res.members) - len(members))
    if observed is None:
        return grid
    index = {res.pods[i].key: c for c, m in enumerate(res.members) for i in m}
    cells_seen, total = _observations(
        observed, index, lambda s, d: s == d or bool(allowed[index[s], index[d]]), size)
    return replace(grid, observed=cells_seen, observed_total=total)


def _observations(observed: Observed, index: Mapping[str, int],
                  engine_allows: Callable[[str, str], bool], shown: int
                  ) -> tuple[ObservedCells, Seen]:
    """The kernel's verdicts against the engine's, summed per cell (`index`: a pod's row and
    column), for the first `shown` rows and columns, and over all of them. A pod reaching
    itself is loopback, which the engine allows."""
    counts: dict[tuple[int, int], list[int]] = {}
    for src, row in observed.items():
        if (s := index.get(src)) is None:
            continue  # not a pod the engine knows
        for dst, reached in row.items():
            if reached is None or (d := index.get(dst)) is None:
                continue
            allows = engine_allows(src, dst)
            cell = counts.setdefault((s, d), [0, 0, 0])
            cell[0] += 1
            cell[1] += reached and not allows
            cell[2] += allows and not reached
    cells = tuple(tuple(Seen(*counts[i, j]) if (i, j) in counts else UNSEEN
                        for j in range(shown)) for i in range(shown))
    return cells, Seen(*map(sum, zip(*counts.values(), strict=True))) if counts else UNSEEN


def _policies(engine: Engine, by_class: Mapping[Probe, ClassMatrix]
              ) -> tuple[PolicyRow, ...]:
    res = engine.resolution
    describe = Describer(res.pods)
    subjects = {key: mask for d in res.directions.values()
                for key, mask in zip(d.policies, d.subjects, strict=True)}
    admitted = _admitted(engine, by_class)
    sizes = [len(m) for m in res.members]
    rows = []
    for policy in engine.cluster.policies:
        selected = [res.pods[i] for i, chosen in enumerate(subjects[policy.key]) if chosen]
        mine = {k: v for k, v in admitted.items() if k[0] == policy.key}
        admissions = [a for (_, rule, probe), pairs in sorted(
            mine.items(), key=lambda item: (item[0][1], item[0][2].port, item[0][2].protocol))
            for a in _merged(engine, describe, rule, probe, pairs)]
        distinct = {(s, d, probe) for (_, _, probe), pairs in mine.items()
                    for s, ds in pairs.items() for d in ds}
        rows.append(PolicyRow(
            policy.key, tuple(map(str, policy.policy_types)), str(policy.pod_selector),
            brief(describe(selected)) or "no pods", len(selected),
            ", ".join(f"{len(policy.rules(d))} {d.lower()}" for d in policy.policy_types),
            sum(_pairs(sizes, s, d) for s, d, _ in distinct),
            tuple(admissions[:ADMISSION_LIMIT]), max(0, len(admissions) - ADMISSION_LIMIT)))
    return tuple(rows)


def _admitted(engine: Engine, by_class: Mapping[Probe, ClassMatrix]
              ) -> dict[tuple[str, str, Probe], ClassPairs]:
    """(policy, rule, probe) -> the class pairs whose allowed connection the rule admits."""
    res = engine.resolution
    count = res.class_count()
    # Only a pair that some policy isolates can have been admitted by one.
    ingress, egress = (np.array([bool(res.isolating_policies(d, c)) for c in range(count)],
                                dtype=bool) for d in (Direction.INGRESS, Direction.EGRESS))
    isolating = egress[:, None] | ingress[None, :]  # [source, destination]
    # A class's first pod stands for it; for pairs inside a class, its second.
    single = np.array([len(m) == 1 for m in res.members], dtype=bool)
    found: dict[tuple[str, str, Probe], ClassPairs] = {}
    for probe, allowed in by_class.items():
        wanted = allowed & isolating
        wanted[np.diag_indices(count)] &= ~single
        for s, d in zip(*np.nonzero(wanted), strict=True):
            src, dst = res.members[s][0], res.members[d][1 if s == d else 0]
            v = engine.verdict(res.pods[src], res.pods[dst], probe.port, probe.protocol)
            for ref in (*v.egress.allowed_by, *v.ingress.allowed_by):
                rule = f"{ref.direction.lower()}[{ref.index}]"
                found.setdefault((ref.policy, rule, probe), {}).setdefault(int(s), set()).add(
                    int(d))
    return found


def _merged(engine: Engine, describe: Describer, rule: str, probe: Probe, pairs: ClassPairs
            ) -> list[Admission]:
    """Sources that reach the same destinations share one admission."""
    res = engine.resolution
    sizes = [len(m) for m in res.members]
    by_targets: dict[frozenset[int], list[int]] = {}
    for s, ds in sorted(pairs.items()):
        by_targets.setdefault(frozenset(ds), []).append(s)
    out = []
    for targets, sources in by_targets.items():
        src = [res.pods[i] for s in sources for i in res.members[s]]
        dst = [res.pods[i] for d in sorted(targets) for i in res.members[d]]
        out.append(Admission(brief(describe(sorted(src, key=lambda p: p.key))),
                             brief(describe(sorted(dst, key=lambda p: p.key))),
                             str(probe), rule,
                             sum(_pairs(sizes, s, d) for s in sources for d in targets)))
    return sorted(out, key=lambda a: (a.sources, a.destinations))


def _pairs(sizes: Sequence[int], s: int, d: int) -> int:
    """Pod pairs between two classes, a pod with itself left out."""
    return sizes[s] * sizes[d] - (sizes[s] if s == d else 0)
