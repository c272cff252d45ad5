"""`podnet lab report`: the page of a running lab shows its nodes, its pods with their
addresses, the engine's matrix next to the kernel's verdicts, and the denied flow of a probe.

The flow log tests' 2-node lab: y/b (node-2) admits only namespace x on TCP/80 (policy
y/b-in); x/a (node-1) is the client it allows, y/c (node-1) the one it denies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from html import escape
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
    verify_kernel,
    write_state,
)
from page_reader import PageReader
from test_flows import workloads
from test_lab import lab_nodes

from netns import until
from podnet.lab.cluster import start_agent
from podnet.lab.pods import running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths, node_address
from podnet.model import Protocol
from podnet.model.nodelease import DEFAULT_DURATION

pytestmark = LAB_TEST
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("rep")
    with running_lab(name, [lab_manifest(name, ("node-1", "node-2")), *workloads()],
                     tmp_path_factory.mktemp("report")) as paths:
        yield paths


def denied_flows(lab: LabPaths) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(podnet(
        "lab", "flows", "--lab", lab.name, "--verdict", "denied", "-o", "json").stdout)
    return found


def test_the_lab_report_shows_pods_matrix_kernel_and_the_denied_flow(
        lab: LabPaths, tmp_path: Path) -> None:
    pods = {p.key: p for p in running_pods(lab)}
    b, c = pods["y/b"], pods["y/c"]
    (denied,) = run_probes([ProbeJob(PodString("y/c"), c.netns, PodString("y/b"), b.ip, 80,
                                     Protocol.TCP)], timeout=1.0)
    assert not denied.connected
    deadline = time.monotonic() + 10
    while not denied_flows(lab) and time.monotonic() < deadline:
        time.sleep(0.2)

    out = tmp_path / "lab.html"
    podnet("lab", "report", "--lab", lab.name, "--observe", "--no-graph", "-o", str(out))
    page = PageReader(out.read_text())
    text = page.all_text

    for i, node in enumerate(("node-1", "node-2")):
        assert node in text and node_address(i) in text
    assert [row[1] for row in node_rows(page).values()] == ["Ready", "Ready"]
    for key, pod in pods.items():
        assert f"{key}{pod.node}{pod.ip}" in text  # one table row: pod, node, IP
    keys = ["x/a", "y/b", "y/c"]
    assert page.row_labels["TCP/80"] == keys
    # x/a -> y/b allowed, y/c -> y/b denied, the rest open; the kernel agrees everywhere.
    assert page.grids["TCP/80"] == [["l", "a", "a"], ["a", "l", "a"], ["a", "d", "l"]]
    assert "0 of 9 verdicts differ" in text
    # The policy admits x/a -> y/b; the denied probe is the newest denied flow.
    assert "ingress[0]TCP/80x/*y/b1" in text  # rule, probe, from, to, pod pairs
    assert f"y/c ({c.ip}):" in text and f"y/b ({b.ip}):80" in text
    assert "default deny ingress (y/b-in)" in text


def node_rows(page: PageReader) -> dict[str, list[str]]:
    """The nodes table's rows, by node: node, status, lease renewed, addresses, ..."""
    return {row[0]: row for row in page.lists if row[0] in ("node-1", "node-2")}


def test_a_node_whose_agent_was_killed_is_not_ready_on_the_page(
        lab: LabPaths, tmp_path: Path) -> None:
    pid = int((lab.pids / "agent-node-2.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # started by `lab up`, which recorded its PID
    try:
        until(lambda: lab_nodes(lab)["node-2"]["status"] == "NotReady", DEFAULT_DURATION + 30,
              "node-2 NotReady without its agent")
        out = tmp_path / "not-ready.html"
        podnet("lab", "report", "--lab", lab.name, "--no-graph", "-o", str(out))
    finally:
        start_agent(lab, lab.load(), "node-2")
    page = PageReader(out.read_text())
    rows = node_rows(page)
    assert rows["node-1"][1] == "Ready"
    assert rows["node-2"][1] == "NotReady"
    # The lease has expired; the store deletes the expired object at its next write (another
    # agent's renewal, within seconds), after which the node has no lease at all.
    renewed = re.fullmatch(r"(\d+) s ago", rows["node-2"][2])
    assert (rows["node-2"][2] == "no lease"
            or (renewed is not None and int(renewed[1]) >= DEFAULT_DURATION)), rows["node-2"]
    assert "2 nodes (1 NotReady)" in page.all_text
    until(lambda: lab_nodes(lab)["node-2"]["status"] == "Ready", 30,
          "node-2 Ready after its agent restarted")


X_FROM_Y = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "from-y", "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}}


def test_over_100_pods_a_group_cell_shows_the_pair_the_kernel_dropped(tmp_path: Path) -> None:
    """101 pods: x (50, node-1) admits only y (51, node-2). A rule of the test's own on node-1
    drops y/p0 -> x/p0, which the engine allows: the page's grid is of groups, and the
    group cell y -> x is a mismatch that counts the one pair of 2,550."""
    name = lab_name("big")
    pods = {f"x/p{i}": "node-1" for i in range(50)} | {f"y/p{i}": "node-2" for i in range(51)}
    workloads = [*namespace_manifests("xy"), *(pod_manifest(k, n) for k, n in pods.items())]
    with running_lab(name, [lab_manifest(name, ("node-1", "node-2")), *workloads],
                     tmp_path) as lab:
        write_state(lab, [X_FROM_Y], {}, {})
        # The agents bring the kernel along within seconds (longer on a loaded machine).
        deadline = time.monotonic() + 120
        while any(v.mismatches for v in verify_kernel(lab, (80,), (Protocol.TCP,))):
            assert time.monotonic() < deadline, "the kernel never agreed with the engine"
        running = {p.key: p for p in running_pods(lab)}
        rule = tmp_path / "drop.nft"
        rule.write_text(f"table ip pntest {{ chain forward {{ type filter hook forward "
                        f"priority -10; ip saddr {running['y/p0'].ip} ip daddr "
                        f"{running['x/p0'].ip} tcp dport 80 drop; }}; }}\n")
        subprocess.run(["nsenter", f"--net={lab.netns_path(lab.node('node-1'))}", "nft",
                        "-f", str(rule)], check=True)
        out = tmp_path / "big.html"
        podnet("lab", "report", "--lab", name, "--observe", "--no-graph", "-o", str(out))
        html = out.read_text()
        page = PageReader(html)
    assert page.row_labels["TCP/80"] == ["x/* (50 pods)", "y/* (51 pods)"]
    assert page.grids["TCP/80"] == [["d", "a"], ["md", "a"]]
    assert f"Observed in the kernel: 1 of {101 * 101} verdicts differ" in page.all_text
    assert escape("y/* (51 pods) -> x/* (50 pods): engine: allowed; kernel: of 2550 observed "
                  "pod pairs, dropped 1") in html
