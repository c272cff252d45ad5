"""`podnet lab flows`: each connection a policy decides shows up once, named after its rule.

A 2-node lab: y/b on node-2 is isolated by `y/b-in`, which lets in namespace x on port 80;
x/a (node-1) is the client it allows, across the overlay; y/c (node-1) is a client it
denies. No policy selects x/a or y/c, so only node-2's ingress decisions are logged.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kernel import lab_manifest, lab_name, podnet, running_lab

from netns import can_make_namespaces
from podnet.datapath.netns import socket_in
from podnet.lab.pods import LabPod, running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths
from podnet.model import Protocol

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(not can_make_namespaces(), reason="needs root")]

PODS = {"x/a": "node-1", "y/b": "node-2", "y/c": "node-1"}
POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "b-in", "namespace": "y"},
          "spec": {"podSelector": {"matchLabels": {"app": "b"}},
                   "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                       "kubernetes.io/metadata.name": "x"}}}],
                                "ports": [{"port": 80}]}]}}


def workloads() -> list[dict[str, object]]:
    docs: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in "xy"]
    for key, node in PODS.items():
        namespace, name = key.split("/")
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "namespace": namespace,
                                  "labels": {"app": name}},
                     "spec": {"nodeName": node,
                              "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}})
    return [*docs, POLICY]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("flw")
    with running_lab(name, [lab_manifest(name, ("node-1", "node-2")), *workloads()],
                     tmp_path_factory.mktemp("flows")) as paths:
        yield paths


def flows(lab: LabPaths, *options: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(
        podnet("lab", "flows", "--lab", lab.name, "--last", "0", "-o", "json", *options).stdout)
    return out


def wait_for(lab: LabPaths, wanted: int, *options: str) -> list[dict[str, Any]]:
    """The flows once at least `wanted` are logged (the agents write them within ~0.1 s)."""
    deadline = time.monotonic() + 10
    while len(found := flows(lab, *options)) < wanted and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def mine(lab: LabPaths, port: int) -> list[dict[str, Any]]:
    return [f for f in flows(lab, "--pod", "x/a") if f["source"]["port"] == port]


def connect(src: LabPod, dst: LabPod, port: int = 80) -> socket.socket:
    sock = socket_in(src.netns, socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect((str(dst.ip), port))
    return sock


def test_an_allowed_and_a_denied_connection_show_the_rule_that_decided(lab: LabPaths) -> None:
    pods = {p.key: p for p in running_pods(lab)}
    a, b, c = pods["x/a"], pods["y/b"], pods["y/c"]
    with connect(a, b) as allowed:
        allowed_port = allowed.getsockname()[1]
    denied = run_probes([ProbeJob(PodString("y/c"), c.netns, PodString("y/b"), b.ip, 80,
                                  Protocol.TCP)], timeout=1.0)
    assert not denied[0].connected

    logged = [f for f in wait_for(lab, 2, "--pod", "y/b") if f["source"]["pod"] in ("x/a", "y/c")]
    # A dropped SYN sent again (the client's retransmission) is logged again: same source port.
    connections = {(f["source"]["pod"], f["source"]["port"], f["destination"]["pod"], f["node"],
                    f["verdict"], f["direction"], tuple(f["policies"]), f["rule"], f["protocol"],
                    f["destination"]["port"]): None for f in logged}
    assert [c[:1] + c[2:] for c in connections] == [
        ("x/a", "y/b", "node-2", "allowed", "ingress", ("y/b-in",), "ingress[0]", "TCP", 80),
        ("y/c", "y/b", "node-2", "denied", "ingress", ("y/b-in",), "default deny", "TCP", 80)]
    assert logged[0]["source"]["port"] == allowed_port
    assert {f["source"]["pod"] for f in flows(lab, "--verdict", "denied")} == {"y/c"}

    counters = json.loads(podnet("lab", "flows", "--lab", lab.name, "--counters",
                                 "-o", "json").stdout)
    assert counters["node-2"]["y/b-in ingress[0]"] >= 1
    assert counters["node-2"]["default deny ingress: y/b-in"] >= 1
    table = podnet("lab", "flows", "--lab", lab.name).stdout
    assert "y/b-in ingress[0]" in table and "default deny ingress (y/b-in)" in table


def test_the_established_traffic_of_an_allowed_connection_is_not_logged(lab: LabPaths) -> None:
    pods = {p.key: p for p in running_pods(lab)}
    with connect(pods["x/a"], pods["y/b"]) as sock:
        port = sock.getsockname()[1]
        assert sock.recv(4096).startswith(b'{"answeredBy": "y/b"')
        for _ in range(200):  # 200 x 64 KiB: thousands of packets each way
            sock.sendall(b"x" * 65536)
        deadline = time.monotonic() + 10
        while not mine(lab, port) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)  # anything logged for those packets would have arrived by now
    ours = mine(lab, port)
    assert len(ours) == 1 and ours[0]["rule"] == "ingress[0]", ours
