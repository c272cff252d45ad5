"""Do podnet and network-config-analyzer (NCA) agree on who may connect to whom?

The two formats differ: podnet's `-o json` lists groups of pods (and address ranges) with a
port set; NCA's `-o txt_no_fw_rules --output_endpoints pods` lists one line per connected
pair of pods, keeping at most two representative pods of each workload. So both are reduced
to the same question, asked on a sample of probes: may workload A open protocol/port P
towards workload B, or towards an outside address? A workload is a pod's ReplicaSet (its
name minus the pod suffix). Pairs inside one workload count only where it has two pods,
and a pod to itself is never asked.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Probe = tuple[str, int]  # (protocol, port)
Allows = Callable[[Probe], bool]
ADDRESSES = tuple(ipaddress.IPv4Address(a) for a in (
    "8.8.8.8", "10.1.2.3", "172.16.5.9", "203.0.113.5", "203.0.113.200", "198.51.100.5",
    "198.51.100.100", "198.18.0.9", "198.19.7.7"))


@dataclass
class Verdicts:
    """Allowed probes per ordered endpoint pair; endpoints are workloads or probe addresses."""

    allowed: dict[tuple[str, str], set[Probe]] = field(default_factory=dict)

    def add(self, src: str, dst: str, probes: Iterable[Probe]) -> None:
        self.allowed.setdefault((src, dst), set()).update(probes)


@dataclass
class Comparison:
    pairs: int = 0
    checks: int = 0
    disagreements: list[str] = field(default_factory=list)


def workload(pod_key: str) -> str:
    """`ns/web-7c9f8d6b5d-x2x4z` -> `ns/web-7c9f8d6b5d`."""
    return pod_key.rsplit("-", 1)[0]


def podnet_verdicts(doc: Any, probes: list[Probe]) -> Verdicts:
    """From `podnet policy connectivity -o json`: `{"connections": [{from, to, allowed}]}`."""
    verdicts = Verdicts()
    for c in doc["connections"]:
        allows = _podnet_ports(c["allowed"])
        allowed = [p for p in probes if allows(p)]
        src_pods, dst_pods = c["from"]["pods"], c["to"]["pods"]
        for src in src_pods:
            for dst in dst_pods:
                if src != dst:
                    verdicts.add(workload(src), workload(dst), allowed)
            for a in _inside(c["to"]["addresses"]):
                verdicts.add(workload(src), str(a), allowed)
        for a in _inside(c["from"]["addresses"]):
            for dst in dst_pods:
                verdicts.add(str(a), workload(dst), allowed)
    return verdicts


def nca_verdicts(text: str, probes: list[Probe]) -> Verdicts:
    """From `nca --connectivity ... -o txt_no_fw_rules --output_endpoints pods`."""
    verdicts = Verdicts()
    for line in text.splitlines():
        if " => " not in line:
            continue
        ends, conns = line.rsplit(" : ", 1)
        src, dst = ends.split(" => ")
        allows = _nca_connections(conns.strip())
        allowed = [p for p in probes if allows(p)]
        for s in _nca_endpoint(src.strip()):
            for d in _nca_endpoint(dst.strip()):
                verdicts.add(s, d, allowed)
    return verdicts


def compare(ours: Verdicts, theirs: Verdicts, workloads: dict[str, int],
            probes: list[Probe]) -> Comparison:
    """Ask every probe of every pair; `workloads` maps each workload to its pod count."""
    names = sorted(workloads) + [str(a) for a in ADDRESSES]
    result = Comparison()
    for src in names:
        for dst in names:
            if "/" not in src and "/" not in dst:
                continue  # address to address: no pod involved
            if src == dst and workloads.get(src, 0) < 2:
                continue
            result.pairs += 1
            mine = ours.allowed.get((src, dst), set())
            nca = theirs.allowed.get((src, dst), set())
            result.checks += len(probes)
            for probe in probes:
                if (probe in mine) != (probe in nca):
                    result.disagreements.append(
                        f"{src} -> {dst} {probe[0]}/{probe[1]}: podnet "
                        f"{'allows' if probe in mine else 'denies'}, NCA "
                        f"{'allows' if probe in nca else 'denies'}")
    return result


def _inside(cidrs: list[str]) -> list[ipaddress.IPv4Address]:
    nets = [ipaddress.ip_network(c) for c in cidrs]
    return [a for a in ADDRESSES if any(a in n for n in nets)]


def _podnet_ports(doc: Any) -> Allows:
    """`"all"`, or `{"TCP": ["80", "8000-8080"], ...}`."""
    if doc == "all":
        return lambda _: True
    ranges = {proto: _ranges(",".join(items)) for proto, items in doc.items()
              if isinstance(items, list)}
    return lambda p: any(lo <= p[1] <= hi for lo, hi in ranges.get(p[0], ()))


def _nca_connections(text: str) -> Allows:
    """`All connections`, `All but {...}`, or cubes `{protocols:TCP, UDP,dst_ports:53,80-90}`."""
    if text == "All connections":
        return lambda _: True
    if text == "No connections":
        return lambda _: False
    if text.startswith("All but "):
        excluded = _nca_connections(text.removeprefix("All but "))
        return lambda p: not excluded(p)
    cubes = []
    for body in re.findall(r"\{([^}]*)\}", text):
        fields = dict(part.split(":", 1) for part in re.split(r",(?=\w+:)", body))
        protocols = {p.strip() for p in fields["protocols"].split(",")} if (
            "protocols" in fields) else None
        ports = _ranges(fields["dst_ports"]) if "dst_ports" in fields else None
        cubes.append((protocols, ports))
    return lambda p: any((protos is None or p[0] in protos)
                         and (ports is None or any(lo <= p[1] <= hi for lo, hi in ports))
                         for protos, ports in cubes)


def _nca_endpoint(text: str) -> list[str]:
    """A pod `ns/name` -> its workload; address ranges -> the probe addresses inside."""
    if not re.fullmatch(r"[0-9a-fA-F.:/,-]+", text):
        return [workload(text)]
    inside: list[str] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = (ipaddress.ip_address(x) for x in part.split("-"))
            inside += [str(a) for a in ADDRESSES if lo <= a <= hi]
        else:
            net = ipaddress.ip_network(part, strict=False)
            inside += [str(a) for a in ADDRESSES if a in net]
    return inside


def _ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        lo, _, hi = item.partition("-")
        out.append((int(lo), int(hi or lo)))
    return out
