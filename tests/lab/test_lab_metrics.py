"""`podnet lab metrics`: each agent's counts agree with what the lab did and the kernel holds.

A 2-node lab. y/b on node-2 is isolated by `y/b-in`, which lets in namespace x on port 80:
x/a (node-1) is a client it allows, y/c (node-1) one it denies. x/d (node-1) exists to be
deleted, so that one DEL shows in node-1's releases.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kernel import (
    LAB_TEST,
    lab_manifest,
    lab_name,
    namespace_manifests,
    pod_manifest,
    podnet,
    running_lab,
    write_state,
)
from prometheus_client.parser import text_string_to_metric_families

from podnet.agent.metrics import table_size
from podnet.datapath.netns import socket_in
from podnet.datapath.nft import list_table
from podnet.lab.metrics import lab_metrics, merge
from podnet.lab.pods import LabPod, running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths
from podnet.model import Protocol

pytestmark = LAB_TEST

PODS = {"x/a": "node-1", "y/b": "node-2", "y/c": "node-1", "x/d": "node-1"}
B_IN = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "b-in", "namespace": "y"},
        "spec": {"podSelector": {"matchLabels": {"app": "b"}},
                 "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": "x"}}}], "ports": [{"port": 80}]}]}}
C_OUT = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": {"name": "c-out", "namespace": "y"},
         "spec": {"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"],
                  "egress": [{}]}}
Samples = dict[tuple[str, str, frozenset[tuple[str, str]]], float]


def workloads() -> list[dict[str, object]]:
    return [*namespace_manifests("xy"), B_IN,
            *(pod_manifest(key, node, labels={"app": key.split("/")[1]})
              for key, node in PODS.items())]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("met")
    with running_lab(name, [lab_manifest(name, ("node-1", "node-2")), *workloads()],
                     tmp_path_factory.mktemp("metrics")) as paths:
        yield paths


def parse(text: str) -> Samples:
    """(node, sample name, other labels) -> value; the parser rejects a malformed exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = dict(s.labels)
            node = labels.pop("node")
            found[(node, s.name, frozenset(labels.items()))] = s.value
    return found


def scrape(lab: LabPaths) -> Samples:
    texts, failures = lab_metrics(lab)
    assert not failures
    return parse(merge(texts))


def value(found: Samples, node: str, name: str, **labels: str) -> float:
    return found.get((node, name, frozenset(labels.items())), 0.0)


def wait_until(condition: Callable[[Samples], bool], lab: LabPaths) -> Samples:
    """The metrics once `condition` holds of them (or after 30 s, for the assertion to fail:
    on this shared machine a kubelet's DEL has taken over 10 s under load)."""
    deadline = time.monotonic() + 30
    while not condition(found := scrape(lab)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def connect(src: LabPod, dst: LabPod, port: int = 80) -> None:
    with socket_in(src.netns, socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect((str(dst.ip), port))


def test_the_command_prints_every_node_with_prometheus_names(lab: LabPaths) -> None:
    text = podnet("lab", "metrics", "--lab", lab.name).stdout
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} >= {
        "podnet_cni_requests", "podnet_cni_request_duration_seconds",
        "podnet_ipam_addresses_used", "podnet_ipam_addresses_free",
        "podnet_ipam_allocations", "podnet_ipam_releases",
        "podnet_dataplane_apply_duration_seconds", "podnet_dataplane_apply_failures",
        "podnet_dataplane_rules", "podnet_dataplane_set_elements", "podnet_policies",
        "podnet_policy_node_policies", "podnet_policy_endpoints",
        "podnet_policy_selected_endpoints", "podnet_policy_verdicts"}
    for family in families:
        assert family.name.startswith(("podnet_", "process_")), family.name
        assert {s.labels["node"] for s in family.samples} <= {"node-1", "node-2"}
    assert {s.labels["node"] for f in families for s in f.samples} == {"node-1", "node-2"}

    only = podnet("lab", "metrics", "--lab", lab.name, "--node", "node-2", "podnet_ipam").stdout
    assert {f.name for f in text_string_to_metric_families(only)} == {
        "podnet_ipam_addresses_used", "podnet_ipam_addresses_free",
        "podnet_ipam_allocations", "podnet_ipam_releases"}
    assert 'node="node-1"' not in only
    wrong = podnet("lab", "metrics", "--lab", lab.name, "--node", "node-9", check=False)
    assert wrong.returncode == 1 and "no node 'node-9'" in wrong.stderr


def test_cni_adds_and_ipam_usage_match_the_pods_of_each_node(lab: LabPaths) -> None:
    pods = running_pods(lab)
    # The policy gauges follow the agents' informers: wait for both to hold every pod.
    found = wait_until(lambda f: all(
        value(f, node, "podnet_policy_endpoints") == sum(p.node == node for p in pods)
        for node in ("node-1", "node-2")), lab)
    for node in ("node-1", "node-2"):
        here = sum(p.node == node for p in pods)
        assert value(found, node, "podnet_cni_requests_total", command="ADD", result="ok") \
            == here
        assert value(found, node, "podnet_cni_request_duration_seconds_count",
                     command="ADD", result="ok") == here
        assert value(found, node, "podnet_ipam_allocations_total") == here
        (subnet,) = {dict(labels)["subnet"] for n, name, labels in found
                     if n == node and name == "podnet_ipam_addresses_used"}
        used = value(found, node, "podnet_ipam_addresses_used", subnet=subnet)
        free = value(found, node, "podnet_ipam_addresses_free", subnet=subnet)
        assert used == here
        assert used + free == 254  # a /24 less its .0 (the overlay's) and its broadcast
        assert value(found, node, "podnet_policy_endpoints") == here


def test_the_policy_gauges_say_which_pods_are_isolated(lab: LabPaths) -> None:
    found = wait_until(lambda f: value(f, "node-2", "podnet_policy_node_policies") == 1, lab)
    for node in ("node-1", "node-2"):
        assert value(found, node, "podnet_policies") == 1
    assert value(found, "node-2", "podnet_policy_node_policies") == 1
    assert value(found, "node-2", "podnet_policy_selected_endpoints", direction="ingress") == 1
    assert value(found, "node-2", "podnet_policy_selected_endpoints", direction="egress") == 0
    assert value(found, "node-1", "podnet_policy_node_policies") == 0
    assert value(found, "node-1", "podnet_policy_selected_endpoints", direction="ingress") == 0


def test_an_allowed_and_a_denied_connection_count_under_the_deciding_policy(
        lab: LabPaths) -> None:
    pods = {p.key: p for p in running_pods(lab)}
    allowed = {"verdict": "allowed", "direction": "ingress", "policy": "y/b-in"}
    denied = {"verdict": "denied", "direction": "ingress", "policy": "y/b-in"}
    before = scrape(lab)
    connect(pods["x/a"], pods["y/b"])
    (probe,) = run_probes([ProbeJob(PodString("y/c"), pods["y/c"].netns, PodString("y/b"),
                                    pods["y/b"].ip, 80, Protocol.TCP)], timeout=1.0)
    assert not probe.connected

    def grown(found: Samples, labels: dict[str, str]) -> float:
        return (value(found, "node-2", "podnet_policy_verdicts_total", **labels)
                - value(before, "node-2", "podnet_policy_verdicts_total", **labels))

    after = wait_until(lambda f: grown(f, allowed) >= 1 and grown(f, denied) >= 1, lab)
    assert grown(after, allowed) == 1  # one connection: its first packet only
    assert grown(after, denied) >= 1  # the client may send its SYN again
    # node-1 isolates none of its pods: nothing of theirs is judged there.
    assert not any(node == "node-1" and name == "podnet_policy_verdicts_total"
                   for node, name, _ in after)


def test_a_policy_change_is_applied_and_its_verdicts_count_on_its_node(lab: LabPaths) -> None:
    def applies(found: Samples) -> float:
        return value(found, "node-1", "podnet_dataplane_apply_duration_seconds_count")

    before = scrape(lab)
    write_state(lab, [B_IN, C_OUT], {}, {})
    try:
        # Each agent counts the policies as its own batch arrives: wait for both of them.
        after = wait_until(lambda f: value(f, "node-1", "podnet_policy_node_policies") == 1
                           and applies(f) > applies(before)
                           and all(value(f, node, "podnet_policies") == 2
                                   for node in ("node-1", "node-2")), lab)
        assert value(after, "node-1", "podnet_policy_selected_endpoints",
                     direction="egress") == 1
        assert value(after, "node-1", "podnet_dataplane_apply_failures_total") == 0
        for node in ("node-1", "node-2"):
            assert value(after, node, "podnet_policies") == 2
            rules, elements = table_size(list_table(lab.netns_path(lab.node(node))))
            assert value(after, node, "podnet_dataplane_rules") == rules
            assert value(after, node, "podnet_dataplane_set_elements") == elements
        # y/c is now isolated for egress: its connections are judged on its own node.
        pods = {p.key: p for p in running_pods(lab)}
        connect(pods["y/c"], pods["x/a"])
        egress = {"verdict": "allowed", "direction": "egress", "policy": "y/c-out"}
        counted = wait_until(lambda f: value(f, "node-1", "podnet_policy_verdicts_total",
                                             **egress) >= 1, lab)
        assert value(counted, "node-1", "podnet_policy_verdicts_total", **egress) == 1
    finally:
        write_state(lab, [B_IN], {}, {})


def test_a_deleted_pod_is_released(lab: LabPaths) -> None:
    def used(found: Samples) -> float:
        return sum(v for (node, name, _), v in found.items()
                   if node == "node-1" and name == "podnet_ipam_addresses_used")

    before = scrape(lab)
    def dels(found: Samples) -> float:
        return value(found, "node-1", "podnet_cni_requests_total", command="DEL", result="ok")

    podnet("delete", "--lab", lab.name, "-n", "x", "pod", "d")
    # The address is free in the store before the agent counts the release and the request.
    after = wait_until(lambda f: used(f) == used(before) - 1 and dels(f) > dels(before), lab)
    assert used(after) == used(before) - 1
    assert value(after, "node-1", "podnet_ipam_releases_total", reason="del") == \
        value(before, "node-1", "podnet_ipam_releases_total", reason="del") + 1
    assert dels(after) == dels(before) + 1


def test_an_agent_that_stopped_is_named_and_the_others_are_printed(lab: LabPaths) -> None:
    """Last: the lab keeps one agent less."""
    pid = int((lab.pids / "agent-node-2.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    done = podnet("lab", "metrics", "--lab", lab.name, check=False)
    assert done.returncode == 1
    assert "node node-2: cannot fetch http://192.0.2.11:9470/metrics" in done.stderr
    assert {s.labels["node"] for f in text_string_to_metric_families(done.stdout)
            for s in f.samples} == {"node-1"}
