"""Pod endpoints: what the agent records per attachment, and the pure decisions made over them.

An endpoint is the `PodEndpoint` resource `<containerID>:<ifname>` (neither may contain a
colon, so the name is unambiguous). It is what survives an agent restart: the agent re-reads
its node's endpoints and compares them with the kernel (`leaked_veths`), and what GC and CHECK
compare with (`stale`, `check_problems`). Nothing here touches the kernel or the store.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from podnet.datapath.routes import GATEWAY, PodRoutes
from podnet.datapath.rtnl import Link
from podnet.datapath.veth import HOST_MAC
from podnet.ipam import Attachment

KIND = "PodEndpoint"
API_VERSION = "podnet.io/v1"


@dataclass(frozen=True)
class Endpoint:
    """One pod interface wired by this agent: where it is and what it holds."""

    node: str
    container_id: str
    ifname: str
    ip: ipaddress.IPv4Address
    host_ifname: str
    netns: str
    mtu: int
    pod_namespace: str = ""
    pod_name: str = ""

    @property
    def attachment(self) -> Attachment:
        return Attachment(self.container_id, self.ifname)

    @property
    def name(self) -> str:
        return endpoint_name(self.container_id, self.ifname)

    @property
    def pod(self) -> str | None:
        """`namespace/name` when the runtime told us (CNI_ARGS K8S_POD_*)."""
        return f"{self.pod_namespace}/{self.pod_name}" if self.pod_name else None

    def body(self) -> dict[str, Any]:
        spec = {
            "node": self.node,
            "containerID": self.container_id,
            "ifname": self.ifname,
            "ip": str(self.ip),
            "hostInterface": self.host_ifname,
            "netns": self.netns,
            "mtu": self.mtu,
        }
        if self.pod_name:
            spec["pod"] = {"namespace": self.pod_namespace, "name": self.pod_name}
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": self.name},
                "spec": spec}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Endpoint:
        spec = body["spec"]
        pod = spec.get("pod") or {}
        return cls(
            node=spec["node"],
            container_id=spec["containerID"],
            ifname=spec["ifname"],
            ip=ipaddress.IPv4Address(spec["ip"]),
            host_ifname=spec["hostInterface"],
            netns=spec["netns"],
            mtu=int(spec["mtu"]),
            pod_namespace=pod.get("namespace", ""),
            pod_name=pod.get("name", ""),
        )


def endpoint_name(container_id: str, ifname: str) -> str:
    return f"{container_id}:{ifname}"


def stale(recorded: Iterable[Endpoint], valid: set[tuple[str, str]]) -> list[Endpoint]:
    """GC: the endpoints whose (containerID, ifname) the runtime no longer lists."""
    return [ep for ep in recorded if (ep.container_id, ep.ifname) not in valid]


def leaked_veths(recorded: Iterable[Endpoint], host_veths: Iterable[str]) -> list[str]:
    """Host veths with no endpoint: an ADD that crashed half-way, or a DEL lost with the agent."""
    known = {ep.host_ifname for ep in recorded}
    return sorted(set(host_veths) - known)


def check_problems(
    ep: Endpoint,
    pod_link: Link | None,
    pod_routes: PodRoutes | None,
    host_link: Link | None,
    host_oif: int | None,
    expected_ips: Iterable[ipaddress.IPv4Interface] = (),
) -> list[str]:
    """CHECK: every way the kernel differs from the endpoint (and prevResult's addresses)."""
    if pod_link is None or pod_routes is None:
        return [f"interface {ep.ifname} is missing in {ep.netns}"]
    problems = []
    if not pod_link.up:
        problems.append(f"interface {ep.ifname} is down")
    want = {ipaddress.IPv4Interface(f"{ep.ip}/32"), *expected_ips}
    missing = sorted(str(ip) for ip in want - pod_routes.addresses)
    if missing:
        problems.append(f"interface {ep.ifname} lacks address {', '.join(missing)}")
    if pod_routes.default_gateway != GATEWAY:
        problems.append(f"no default route via {GATEWAY} on {ep.ifname}")
    if pod_routes.gateway_mac not in (None, HOST_MAC):
        problems.append(f"gateway {GATEWAY} resolves to {pod_routes.gateway_mac}, not {HOST_MAC}")
    if not pod_routes.loopback_up:
        problems.append("loopback is down in the pod")
    if host_link is None:
        problems.append(f"host interface {ep.host_ifname} is missing")
    elif host_oif != host_link.index:
        problems.append(f"the node does not route {ep.ip} to {ep.host_ifname}")
    return problems
