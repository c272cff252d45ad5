"""The lab's flows: the agents' flow logs merged, addresses named after pods, and the counters.

Every agent of a lab writes its node's policy decisions to `flows-<node>.jsonl` in the lab's
directory (`podnet agent --flow-log`, agent/flows.py); this module reads them all, newest
last, and names each address after the pod that holds it in the lab's store.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podnet.agent.flows import Flow, read_flows
from podnet.datapath.nft import list_table, rule_counters
from podnet.lab.state import LabPaths
from podnet.store import open_store


def flow_log_path(paths: LabPaths, node: str) -> Path:
    return paths.dir / f"flows-{node}.jsonl"


@dataclass(frozen=True)
class LabFlow:
    """A logged decision with its endpoints named: `ns/name` of a pod, or None."""

    flow: Flow
    src_pod: str | None
    dst_pod: str | None

    def to_json(self) -> dict[str, Any]:
        f, d = self.flow, self.flow.decision
        return {"time": _iso(f.time), "node": f.node, "verdict": d.verdict,
                "direction": d.direction, "policies": list(d.policies), "rule": d.rule,
                "protocol": f.protocol,
                "source": {"pod": self.src_pod, "ip": str(f.src), "port": f.sport},
                "destination": {"pod": self.dst_pod, "ip": str(f.dst), "port": f.dport}}


def _iso(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).isoformat(timespec="milliseconds")


def pod_addresses(paths: LabPaths) -> dict[ipaddress.IPv4Address, str]:
    """Pod IP -> `ns/name`; host-network pods are left out (they share their node's)."""
    with open_store(paths.store_url) as store:
        pods = store.list("Pod").items
    names = {}
    for p in pods:
        spec, status = p.body.get("spec") or {}, p.body.get("status") or {}
        if status.get("podIP") and not spec.get("hostNetwork"):
            names[ipaddress.IPv4Address(status["podIP"])] = f"{p.key.namespace}/{p.key.name}"
    return names


def lab_flows(paths: LabPaths, verdict: str | None = None, since: float | None = None,
              pod: str | None = None, last: int | None = None) -> list[LabFlow]:
    """Decisions of every node, oldest first: with `verdict`, at or after `since` (epoch
    seconds), from or to `pod`; the `last` ones."""
    flows = [f for node in paths.load().nodes for f in read_flows(flow_log_path(paths, node))]
    flows.sort(key=lambda f: f.time)
    names = pod_addresses(paths)
    named = [LabFlow(f, names.get(f.src), names.get(f.dst)) for f in flows
             if (verdict is None or f.decision.verdict == verdict)
             and (since is None or f.time >= since)]
    if pod is not None:
        named = [f for f in named if pod in (f.src_pod, f.dst_pod)]
    return named[-last:] if last else named


def node_counters(paths: LabPaths, nodes: Sequence[str] | None = None
                  ) -> dict[str, dict[str, int]]:
    """Per node, the packets counted by each policy rule, default deny and anti-spoofing."""
    return {node: rule_counters(list_table(paths.netns_path(paths.node(node))))
            for node in (nodes or paths.load().nodes)}
