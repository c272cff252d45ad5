"""The flow log's pure parts: what a rule's comment says, and a log that stays bounded."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from podnet.agent.flows import Decision, Flow, append_flows, read_flows


@pytest.mark.parametrize("prefix, decision", [
    pytest.param("x/b-in ingress[0]", Decision("allowed", "ingress", ("x/b-in",), "ingress[0]"),
                 id="a policy's rule"),
    pytest.param("default deny egress: x/a-out, x/deny-all",
                 Decision("denied", "egress", ("x/a-out", "x/deny-all"), "default deny"),
                 id="default deny, every isolating policy"),
    pytest.param("anti-spoofing: source address is not the pod's",
                 Decision("denied", "", (), "anti-spoofing: source address is not the pod's"),
                 id="anti-spoofing"),
])
def test_a_rules_comment_names_the_verdict_and_the_policy(prefix: str,
                                                           decision: Decision) -> None:
    assert Decision.of(prefix) == decision


def flow(i: int) -> Flow:
    return Flow(1_700_000_000.0 + i, "node-1", Decision.of("x/b-in ingress[0]"), "TCP",
                ipaddress.IPv4Address("10.244.0.2"), ipaddress.IPv4Address("10.244.1.3"),
                40000 + i, 80)


def test_the_log_is_rotated_once_and_read_back_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "flows.jsonl"
    for i in range(100):
        append_flows(log, [flow(i)], max_bytes=2000)
    flows = read_flows(log)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.jsonl", "flows.jsonl.1"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    assert [f.sport for f in flows] == list(range(40100 - len(flows), 40100))
    assert flows[-1] == flow(99)


def test_a_line_cut_by_a_crash_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "flows.jsonl"
    append_flows(log, [flow(1), flow(2)])
    with log.open("a") as out:
        out.write('{"time": 1700000003.0, "node": "no')
    assert read_flows(log) == [flow(1), flow(2)]
