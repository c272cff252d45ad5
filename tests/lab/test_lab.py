"""The lab as a user drives it: `podnet lab up`, pods talking across nodes, `lab down`.

Topology: three nodes, nine pods (three per node, `spec.nodeName`), each serving 80/TCP and
81/UDP; plus one host-network pod on node-1, whose traffic is the node's own. Every pod must
reach every pod, answered by the right pod, with the client's own pod address seen by the
server: the network model, without NAT, in both backends.
"""

import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kernel import lab_manifest, podnet, running_lab

from netns import can_make_namespaces, until
from podnet.lab.cluster import start_agent
from podnet.lab.pods import LabPod, running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths
from podnet.model import Protocol
from podnet.model.nodelease import DEFAULT_DURATION

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(not can_make_namespaces(), reason="needs root")]

NODES = ("node-1", "node-2", "node-3")
PORTS = [{"containerPort": 80}, {"containerPort": 81, "protocol": "UDP"}]


def manifests(name: str, backend: str) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = [lab_manifest(name, NODES, backend)]
    for i in range(9):
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"p{i}", "namespace": "xyz"[i % 3],
                                  "labels": {"pod": f"p{i}"}},
                     "spec": {"nodeName": NODES[i // 3],
                              "containers": [{"name": "c", "ports": PORTS}]}})
    docs.append({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "host", "namespace": "kube-system"},
                 "spec": {"nodeName": "node-1", "hostNetwork": True,
                          "containers": [{"name": "c", "ports": [{"containerPort": 9000}]}]}})
    return docs


def root_netns_state() -> tuple[str, ...]:
    return tuple(subprocess.run(argv, capture_output=True, text=True, check=False).stdout
                 for argv in (["ip", "-o", "link"], ["ip", "route"], ["ip", "-6", "route"],
                              ["nft", "list", "ruleset"]))


@pytest.fixture(scope="module", params=["vxlan", "host-gw"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[LabPaths]:
    name = f"t{os.getpid() % 100000}{request.param[0]}"
    before = root_netns_state()
    with running_lab(name, manifests(name, request.param), tmp_path_factory.mktemp("lab")) as lab:
        yield lab
    assert root_netns_state() == before, "the root network namespace changed"


def probe(pods: list[LabPod], port: int, protocol: Protocol, size: int | None = None
          ) -> list[tuple[str, str, str | None, str | None]]:
    jobs = [ProbeJob(PodString(s.key), s.netns, PodString(d.key), d.ip, port, protocol, size)
            for s in pods for d in pods]
    return [(str(r.job.src), str(r.job.dst), r.answered_by and str(r.answered_by),
             r.source_ip and str(r.source_ip)) for r in run_probes(jobs, timeout=2.0)]


def test_every_pod_reaches_every_pod_without_nat(lab: LabPaths) -> None:
    pods = [p for p in running_pods(lab) if p.key != "kube-system/host"]
    assert len(pods) == 9
    assert {p.node for p in pods} == set(NODES)
    ip = {p.key: str(p.ip) for p in pods}
    for port, protocol in ((80, Protocol.TCP), (81, Protocol.UDP)):
        expected = [(s.key, d.key, d.key, ip[s.key]) for s in pods for d in pods]
        assert probe(pods, port, protocol) == expected


def test_host_network_and_nodes_reach_pods_on_other_nodes(lab: LabPaths) -> None:
    pods = running_pods(lab)
    host = next(p for p in pods if p.key == "kube-system/host")
    assert host.ip == ipaddress.ip_address("192.0.2.10")  # node-1's underlay address
    remote = [p for p in pods if p.node != "node-1"]
    results = probe([host, *remote], 80, Protocol.TCP)
    from_host = [(dst, by, seen) for src, dst, by, seen in results
                 if src == host.key and dst != host.key]
    # answered by the right pod, which saw the node's own address (no overlay address)
    assert from_host == [(p.key, p.key, str(host.ip)) for p in remote]
    # and pods of other nodes reach the host-network pod on the node's address
    to_host = [by for src, dst, by, _ in probe([host, *remote], 9000, Protocol.TCP)
               if dst == host.key and src != host.key]
    assert to_host == [host.key] * len(remote)
    for p in remote:
        assert podnet("lab", "exec", "--lab", lab.name, "--node", "node-1", "--",
                      "ping", "-c1", "-W2", str(p.ip), check=False).returncode == 0


def test_a_large_udp_datagram_crosses_nodes(lab: LabPaths) -> None:
    pods = [p for p in running_pods(lab) if p.key in ("x/p0", "x/p3", "x/p6")]
    results = probe(pods, 81, Protocol.UDP, size=1400)
    assert [by for src, dst, by, _ in results] == [dst for src, dst, _, _ in results]


def test_a_pod_added_later_is_reachable_at_once(lab: LabPaths, tmp_path: Path) -> None:
    late = tmp_path / "late.yaml"
    late.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late", "namespace": "z"},
        "spec": {"nodeName": "node-3", "containers": [{"name": "c", "ports": PORTS}]}}))
    podnet("apply", "--store", lab.store_url, "-f", str(late))
    deadline = time.monotonic() + 30
    while not any(p.key == "z/late" for p in running_pods(lab)):
        assert time.monotonic() < deadline, "the pod never ran"
        time.sleep(0.05)
    pods = {p.key: p for p in running_pods(lab)}
    src, dst = pods["x/p0"], pods["z/late"]
    (result,) = run_probes([ProbeJob(PodString(src.key), src.netns, PodString(dst.key), dst.ip,
                                     80, Protocol.TCP)], timeout=1.0)
    assert result.answered_by == "z/late", result.error
    podnet("delete", "--store", lab.store_url, "-f", str(late))
    deadline = time.monotonic() + 30
    while os.path.exists(lab.netns_path(lab.pod("z", "late"))):
        assert time.monotonic() < deadline, "the deleted pod's namespace stayed"
        time.sleep(0.05)


def lab_nodes(lab: LabPaths) -> dict[str, dict[str, object]]:
    """`podnet lab status -o json`'s nodes, by name."""
    status = json.loads(podnet("lab", "status", "--lab", lab.name, "-o", "json").stdout)
    return {n["name"]: n for n in status["nodes"]}


def test_a_killed_agents_node_turns_not_ready_and_its_pods_stay_reachable(lab: LabPaths) -> None:
    nodes = lab_nodes(lab)
    assert [n["status"] for n in nodes.values()] == ["Ready"] * 3
    pid = int((lab.pids / "agent-node-2.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # started by `lab up`, which recorded its PID
    try:
        until(lambda: lab_nodes(lab)["node-2"]["status"] == "NotReady", DEFAULT_DURATION + 30,
              "node-2 NotReady without its agent")
        assert [n["status"] for n in lab_nodes(lab).values()] == ["Ready", "NotReady", "Ready"]
        # An expired node lease withdraws nothing: node-2's pods stay reachable from everywhere.
        pods = [p for p in running_pods(lab) if p.key != "kube-system/host"]
        assert all(by == dst for _, dst, by, _ in probe(pods, 80, Protocol.TCP))
    finally:
        start_agent(lab, lab.load(), "node-2")
    until(lambda: lab_nodes(lab)["node-2"]["status"] == "Ready", 30,
          "node-2 Ready after its agent restarted")
    assert lab_nodes(lab)["node-2"]["podCIDR"] == nodes["node-2"]["podCIDR"]


def test_lab_down_cleans_up_after_killed_processes(tmp_path: Path) -> None:
    name = f"k{os.getpid() % 100000}"
    path = tmp_path / "lab.yaml"
    docs = manifests(name, "vxlan")[:3]
    docs[0]["spec"] = {"nodes": 2}
    path.write_text(yaml.safe_dump_all(docs))
    try:
        podnet("lab", "up", "-f", str(path))
        paths = LabPaths(name)
        for pidfile in paths.pids.glob("*.pid"):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        podnet("lab", "up", "-f", str(path))  # a lab still half up is cleaned first
        assert len(running_pods(paths)) == 2
    finally:
        podnet("lab", "down", "--name", name, check=False)
    assert not LabPaths(name).namespaces()
    assert not LabPaths(name).dir.exists()
