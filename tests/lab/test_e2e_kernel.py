"""The 48 upstream NetworkPolicy e2e cases, judged by the kernel of a 3-node lab.

One lab serves the whole module: three nodes and upstream's nine pods (namespaces x, y, z
times pods a, b, c; spread so that every namespace has a pod on every node, so that most
pairs cross nodes through VXLAN and some stay on one node), each serving 80 and 81 on TCP and
UDP with upstream's named ports (`serve-80-tcp`...; the SCTP ports are declared, not served).

Each case is played step by step as in tests/policy/test_upstream_e2e.py. At every validation
the case's policies and labels are written to the lab's store, and the agents must bring the
kernel, within 2 s of the write, to the case's expected Reachability on the case's pods
(loopback ignored, as upstream does) and to the engine's verdicts on all nine pods. TCP and UDP
are probed pod to pod; SCTP, which has no sockets on this kernel, is judged on the tables the
nodes' kernels hold (`nft -j list table inet podnet`), evaluated packet by packet. Between
cases the policies are deleted and the labels return to the model's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kernel import (
    LAB_TEST,
    PROBE_TIMEOUT,
    converge,
    convergence_bound,
    lab_manifest,
    lab_name,
    model_workloads,
    report,
    running_lab,
    settle,
    write_state,
)
from test_upstream_e2e import CASES, Case, Scenario

from podnet.agent.endpoints import KIND as ENDPOINT_KIND
from podnet.agent.endpoints import Endpoint
from podnet.datapath.nft import list_table
from podnet.lab import Model, Reachability
from podnet.lab.pods import running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths
from podnet.lab.verify import Verification
from podnet.model import Cluster, Protocol
from podnet.store import open_store

pytestmark = LAB_TEST

NODES = ("node-1", "node-2", "node-3")
MODEL = Model.grid(nodes=NODES, ports=(80, 81),
                   protocols=(Protocol.TCP, Protocol.UDP, Protocol.SCTP))
NAMESPACE_LABELS = {ns.name: dict(ns.labels) for ns in MODEL.namespaces}
POD_LABELS = {str(p.key): dict(p.labels) for p in MODEL.pods}


class KernelScenario(Scenario):
    """A case played on the lab: its state written to the store, the kernel verified."""

    def __init__(self, paths: LabPaths) -> None:
        super().__init__(self._observe_kernel)
        self.paths = paths
        self.ips = {p.key: str(p.ip) for p in running_pods(paths)}

    def pod_ip(self, pod: str) -> str:
        """The address the lab gave the pod: ipBlock cases name real addresses."""
        return self.ips[pod]

    def _observe_kernel(self, cluster: Cluster, r: Reachability, port: int,
                        protocol: Protocol) -> None:
        namespaces = {name: ns.labels for name, ns in cluster.namespaces.items()}
        pods = {**POD_LABELS, **{p.key: p.labels for p in cluster.pods}}
        since = write_state(self.paths, list(self.policies.values()), namespaces, pods)

        def agrees(verifications: list[Verification]) -> bool:
            (verification,) = verifications
            for src in r.pods:
                for dst in r.pods:
                    r.observe(src, dst, verification.observed.get(src, dst))
            return r.summary().ok and not verification.mismatches

        (verification,), after = settle(self.paths, [port], [protocol], since, agrees)
        if after is not None:
            print(f"validation {self.validations} ({protocol}/{port}): the kernel agreed "
                  f"{after:.2f}s after the write")
            return
        print(f"validation {self.validations} ({protocol}/{port}): no agreement within "
              f"{convergence_bound():.1f}s of the write")
        if r.summary().ok:  # the case's pods agree, other pods disagree with the engine
            pytest.fail(f"validation {self.validations}: kernel and engine differ on the lab's "
                        f"pods:\n{report(verification)}", pytrace=False)
        # else: Scenario.validate fails with the case's three tables


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("e2e")
    with running_lab(name, [lab_manifest(name, NODES), *model_workloads(MODEL)],
                     tmp_path_factory.mktemp("e2e")) as paths:
        yield paths


@pytest.fixture
def scenario(lab: LabPaths) -> Iterator[KernelScenario]:
    """A case, then the lab as the model made it: no policies, the model's labels, and a
    kernel that lets everything through again (so no case starts on another's leftovers)."""
    yield KernelScenario(lab)
    converge(lab, [], NAMESPACE_LABELS, POD_LABELS)


def test_the_pods_are_spread_over_the_nodes(lab: LabPaths) -> None:
    pods = running_pods(lab)
    assert sorted(p.key for p in pods) == sorted(POD_LABELS)
    for namespace in NAMESPACE_LABELS:
        assert {p.node for p in pods if p.key.startswith(f"{namespace}/")} == set(NODES)


def test_a_closed_port_refuses_every_probe(lab: LabPaths) -> None:
    """A refusal is how a probe of a closed port proves that policy let it through: the lab
    keeps the kernel from rate-limiting them (60 in a row, beyond its default burst of 6)."""
    pods = {p.key: p for p in running_pods(lab)}
    src, dst = pods["x/a"], pods["y/b"]
    job = ProbeJob(PodString(src.key), src.netns, PodString(dst.key), dst.ip, 82, Protocol.UDP)
    results = run_probes([job] * 60, timeout=PROBE_TIMEOUT)
    assert [r.error for r in results] == ["connection refused"] * 60


@pytest.mark.parametrize("upstream", CASES, ids=[c.name for c in CASES])
def test_upstream_case_on_the_kernel(upstream: Case, scenario: KernelScenario) -> None:
    upstream.play(scenario)
    assert scenario.validations > 0


def test_the_sctp_port_match_is_in_the_selected_pods_table(scenario: KernelScenario,
                                                           lab: LabPaths) -> None:
    """sctp-ports leaves x/a open to namespace y on SCTP 81 only: the table of x/a's node
    holds that rule, an `sctp . 81` port match, behind x/a's entry in the ingress map."""
    (sctp_ports,) = [c for c in CASES if c.name == "sctp-ports"]
    sctp_ports.play(scenario)
    pods = {p.key: p for p in running_pods(lab)}
    node = pods["x/a"].node
    listing = list_table(lab.netns_path(lab.node(node)))
    rules = [o["rule"] for o in listing["nftables"] if "rule" in o]
    rule = "x/allow-ingress-on-port-81-ns-x ingress[0]"
    (allow,) = [r for r in rules if r.get("comment") == rule]
    ports = _set_refs(allow["expr"])
    sets = {o["set"]["name"]: o["set"] for o in listing["nftables"] if "set" in o}
    assert any(sets[name].get("elem") == [{"concat": ["sctp", 81]}] for name in ports), allow
    ingress_map = next(o["map"] for o in listing["nftables"]
                       if "map" in o and o["map"]["name"] == "ingress")
    assert _veth(lab, "x/a") in [k for k, _ in ingress_map["elem"]]


def _set_refs(exprs: list[Mapping[str, Any]]) -> list[str]:
    return [e["match"]["right"][1:] for e in exprs
            if "match" in e and str(e["match"]["right"]).startswith("@")]


def _veth(lab: LabPaths, pod: str) -> str:
    with open_store(lab.store_url) as store:
        endpoints = [Endpoint.from_body(r.body) for r in store.list(ENDPOINT_KIND).items]
    return next(ep.host_ifname for ep in endpoints if ep.pod == pod)
