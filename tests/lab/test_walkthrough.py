"""docs/walkthrough.md, step by step, on its own example files: what the newcomer is told to
type gives what the newcomer is told to expect (the lab renamed so that runs do not collide)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kernel import LAB_TEST, lab_name, podnet, running_lab

from podnet.lab.pods import running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths
from podnet.model import Protocol

pytestmark = LAB_TEST

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "walkthrough"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("wlk")
    manifests: list[dict[str, Any]] = []
    for path in sorted((EXAMPLE / "lab").glob("*.yaml")):
        manifests += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in manifests:
        if doc["kind"] == "Lab":
            doc["metadata"]["name"] = name
    with running_lab(name, manifests, tmp_path_factory.mktemp("walk")) as paths:
        yield paths


def denied_flows(lab: LabPaths, dst: str) -> list[dict[str, Any]]:
    """The denied flows to `dst`, once one is logged (the agents write them within ~0.1 s)."""
    deadline = time.monotonic() + 10
    while True:
        found: list[dict[str, Any]] = json.loads(podnet(
            "lab", "flows", "--lab", lab.name, "--verdict", "denied", "--pod", dst,
            "--last", "0", "-o", "json").stdout)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_the_walkthrough_from_lab_up_to_a_denied_flow_and_its_explanation(
        lab: LabPaths, tmp_path: Path) -> None:
    pods = {p.key: p for p in running_pods(lab)}
    assert sorted(pods) == ["shop/api", "shop/db", "shop/frontend", "tools/debug"]
    assert {pods["shop/frontend"].node, pods["tools/debug"].node} == {"node-1"}

    podnet("apply", "--lab", lab.name, "-f", str(EXAMPLE / "policies.yaml"))
    verified = podnet("lab", "verify", "--lab", lab.name, "--port", "8080,8000,5432")
    assert "0 mismatches" in verified.stdout

    debug, db, api = pods["tools/debug"], pods["shop/db"], pods["shop/api"]
    jobs = [ProbeJob(PodString(src.key), src.netns, PodString("shop/db"), db.ip, 5432,
                     Protocol.TCP) for src in (debug, api)]
    from_debug, from_api = run_probes(jobs, timeout=1.0)
    assert from_debug.error is not None and from_debug.error.startswith("timed out")
    assert from_api.answered_by == "shop/db" and from_api.source_ip == api.ip

    (flow, *_) = [f for f in denied_flows(lab, "shop/db") if f["source"]["pod"] == "tools/debug"]
    assert (flow["node"], flow["direction"], flow["rule"], sorted(flow["policies"])) == (
        "node-2", "ingress", "default deny", ["shop/db", "shop/default-deny-ingress"])

    verdicts = podnet("lab", "metrics", "--lab", lab.name, "--node", "node-2",
                      "podnet_policy_verdicts").stdout
    assert ('podnet_policy_verdicts_total{node="node-2",direction="ingress",'
            'policy="shop/db,shop/default-deny-ingress",verdict="denied"}') in verdicts
    page = tmp_path / "walk.html"
    podnet("lab", "report", "--lab", lab.name, "-o", str(page), "--port", "8080,8000,5432")
    assert "tools/debug" in page.read_text() and "shop/default-deny-ingress" in page.read_text()
    explained = podnet("policy", "explain", "-f", str(EXAMPLE), "--from", "tools/debug",
                       "--to", "shop/db", "--port", "5432").stdout
    assert explained.startswith("tools/debug -> shop/db TCP/5432: DENIED")
    assert "isolated for ingress by shop/default-deny-ingress, shop/db" in explained
    allowed = podnet("policy", "explain", "-f", str(EXAMPLE), "--from", "shop/api",
                     "--to", "shop/db", "--port", "5432").stdout
    assert "ALLOWED" in allowed and "allowed by rule 0 of shop/db" in allowed
