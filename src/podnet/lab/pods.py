"""The lab's running pods as the prober sees them, and probes from every pod to every pod."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from podnet.lab.prober import ProbeJob, ProbeResult, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths
from podnet.model import IPAddress, Protocol
from podnet.store import open_store


@dataclass(frozen=True)
class LabPod:
    key: str
    node: str
    ip: IPAddress
    netns: str  # path of the namespace its processes run in (the node's, for host network)


def running_pods(paths: LabPaths) -> list[LabPod]:
    """Pods with an address, in the store's order (namespace, name)."""
    with open_store(paths.store_url) as store:
        resources = store.list("Pod").items
    pods = []
    for r in resources:
        spec, status = r.body.get("spec") or {}, r.body.get("status") or {}
        if status.get("phase") != "Running" or not status.get("podIP"):
            continue
        netns = paths.node(spec["nodeName"]) if spec.get("hostNetwork") else \
            paths.pod(r.key.namespace, r.key.name)
        pods.append(LabPod(f"{r.key.namespace}/{r.key.name}", spec["nodeName"],
                           ipaddress.ip_address(status["podIP"]), paths.netns_path(netns)))
    return sorted(pods, key=lambda p: p.key)


def probe_all(paths: LabPaths, ports: Sequence[int], protocols: Sequence[Protocol],
              timeout: float = 1.0) -> tuple[list[str], list[ProbeResult]]:
    """Every pod to every pod (itself included), per port and protocol, all in parallel."""
    pods = running_pods(paths)
    jobs = [ProbeJob(PodString(src.key), src.netns, PodString(dst.key), dst.ip, port, protocol)
            for port in ports for protocol in protocols for src in pods for dst in pods]
    return [p.key for p in pods], run_probes(jobs, timeout)
