"""The proof: the kernel's verdicts, probed pod to pod, equal the engine's for the lab's state.

Expected comes from the engine on the cluster the lab's store describes (pods with the
addresses their agents gave them, as the agents compile it). Observed comes from probes:
a pod was reached if it answered, or if it refused the connection (a TCP reset or an ICMP
port-unreachable can only come from the pod itself, so policy let the packet through);
silence means dropped. So every pair is judged, whether or not its destination serves the port.

A probe the engine allows that met silence is asked once more, alone and with twice the
timeout, before it counts: on a loaded machine a probe can be lost (its SYN waiting past the
timeout in a queue), while a drop by policy drops the second probe too. Upstream's e2e
netpol suite retries its probes for the same reason. How many were asked again is reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from podnet.agent.endpoints import KIND as ENDPOINT_KIND
from podnet.agent.endpoints import Endpoint
from podnet.agent.policy import KINDS, desired_cluster
from podnet.lab.pods import probe_all
from podnet.lab.prober import ProbeResult, run_probes
from podnet.lab.state import LabPaths
from podnet.lab.truthtable import TruthTable
from podnet.model import Cluster, Protocol
from podnet.policy import Engine, Probe
from podnet.store import open_store
from podnet.store.base import ResourceStore

REFUSED = "refused"


@dataclass(frozen=True)
class Verification:
    """Expected and observed tables of one probe, and the pairs where they differ."""

    probe: Probe
    expected: TruthTable
    observed: TruthTable
    retried_for: dict[str, int] = field(default_factory=dict)  # first errors of probes asked again

    @property
    def retried(self) -> int:
        """Allowed probes that met silence and were asked again."""
        return sum(self.retried_for.values())

    @property
    def mismatches(self) -> list[tuple[str, str]]:
        return [(src, dst) for src, dst, same in self.expected.compare(self.observed).cells()
                if same is False]

    def to_json(self) -> dict[str, Any]:
        return {"port": self.probe.port, "protocol": str(self.probe.protocol),
                "expected": _rows(self.expected), "observed": _rows(self.observed),
                "mismatches": [{"from": s, "to": d} for s, d in self.mismatches],
                "retried": self.retried, "retriedFor": self.retried_for}


def reached(result: ProbeResult) -> bool:
    """Answered, or refused by the pod itself: either way policy let the packet through."""
    return result.connected or REFUSED in (result.error or "")


def probe_of(result: ProbeResult) -> Probe:
    return Probe(result.job.port, result.job.protocol)


def lab_cluster(store: ResourceStore) -> tuple[Cluster, list[Endpoint]]:
    """The cluster the lab's store describes, each pod with the address its agent gave it (as
    the agents compile it), and the endpoints."""
    snapshot = {kind: {r.key: r for r in store.list(kind).items} for kind in KINDS}
    endpoints = [Endpoint.from_body(r.body) for r in snapshot[ENDPOINT_KIND].values()]
    return desired_cluster(snapshot, endpoints), endpoints


def verify(paths: LabPaths, ports: Sequence[int], protocols: Sequence[Protocol],
           timeout: float = 1.0) -> tuple[list[str], list[Verification]]:
    with open_store(paths.store_url) as store:
        engine = Engine(lab_cluster(store)[0])
    pods, results = probe_all(paths, ports, protocols, timeout)
    probes = Probe.each(ports, protocols)
    matrices = dict(zip(probes, engine.matrix(probes), strict=True))
    again = [i for i, r in enumerate(results)
             if matrices[probe_of(r)].allowed[r.job.src][r.job.dst] and not reached(r)]
    first = {i: results[i].error or "" for i in again}
    for i, result in zip(again, run_probes([results[i].job for i in again], 2 * timeout),
                         strict=True):
        results[i] = result
    verifications = []
    for probe, matrix in matrices.items():
        expected, observed = TruthTable(pods), TruthTable(pods)
        for src in pods:
            for dst in pods:
                expected.set(src, dst, matrix.allowed[src][dst])
        for r in results:
            if probe_of(r) == probe:
                observed.set(r.job.src, r.job.dst, reached(r))
        retried_for = Counter(first[i] for i in again if probe_of(results[i]) == probe)
        verifications.append(Verification(probe, expected, observed, dict(retried_for)))
    return pods, verifications


def _rows(table: TruthTable) -> dict[str, dict[str, bool | None]]:
    rows: dict[str, dict[str, bool | None]] = {}
    for src, dst, value in table.cells():
        rows.setdefault(src, {})[dst] = value
    return rows
