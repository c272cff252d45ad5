"""`podnet lab report`: the page of a running lab shows its nodes, its pods with their
addresses, the engine's matrix next to the kernel's verdicts, and the denied flow of a probe.

The flow log tests' 2-node lab: y/b (node-2) admits only namespace x on TCP/80 (policy
y/b-in); x/a (node-1) is the client it allows, y/c (node-1) the one it denies.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel import LAB_TEST, lab_manifest, lab_name, podnet, running_lab
from page_reader import PageReader
from test_flows import workloads

from podnet.lab.pods import running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths, node_address
from podnet.model import Protocol

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
