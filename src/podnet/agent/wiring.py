"""Wiring one pod into the node, and reading it back: the agent's only kernel calls.

The order is fixed, as in the reference ptp plugin: the veth (pod end created inside the pod),
then the pod side (loopback, address, gateway, default route), then the host side (proxy ARP,
the /32 route last, so the node never routes to a pod that is not ready). A failure removes
the veth, which takes every address and route on it along.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass

from pyroute2 import IPRoute

from podnet.agent.endpoints import Endpoint
from podnet.datapath import routes, veth
from podnet.datapath.netns import DatapathError, NetnsGone
from podnet.datapath.netns import rtnl as iproute_in
from podnet.datapath.rtnl import Link, Rtnl, start_rtnl


@dataclass(frozen=True)
class Wired:
    """The two ends of a freshly wired pod, as the Result reports them."""

    host: Link
    pod: Link


@dataclass(frozen=True)
class Observed:
    """A pod's wiring as the kernel holds it now; None where something is missing."""

    pod_link: Link | None
    pod_routes: routes.PodRoutes | None
    host_link: Link | None
    host_oif: int | None


def wire_pod(node: Rtnl, ep: Endpoint) -> Wired:
    """Create and configure both ends for `ep`; nothing is left behind on failure."""
    # The pod's netlink socket is made by a thread of its own while the node makes the veth.
    pod_rtnl = start_rtnl(ep.netns)
    try:
        host_link = veth.create_veth(node, ep.host_ifname, ep.netns, ep.ifname, ep.mtu)
    except BaseException:
        with suppress(OSError, DatapathError):
            pod_rtnl().close()
        raise
    try:
        pod = pod_rtnl()
        try:
            if host_link.peer_index is None:
                raise DatapathError(f"the kernel did not say where {ep.host_ifname}'s peer is")
            pod_link = routes.configure_pod(pod, host_link.peer_index, ep.ifname, ep.ip)
        finally:
            pod.close()
        routes.route_to_pod(node, ep.ip, host_link.index)
    except BaseException:
        veth.delete_veth(node, ep.host_ifname)
        raise
    return Wired(host=host_link, pod=pod_link)


def unwire_pod(node: Rtnl, host_ifname: str) -> bool:
    """Remove the pod's veth (its route goes with it); False if it was already gone."""
    return veth.delete_veth(node, host_ifname)


def observe_pod(node: IPRoute, ep: Endpoint) -> Observed:
    """Read back what CHECK compares; a vanished namespace reads as a missing interface."""
    host_link = veth.get_link(node, ep.host_ifname)
    host_oif = routes.route_oif(node, ep.ip)
    try:
        with iproute_in(ep.netns) as pod:
            pod_link = veth.get_link(pod, ep.ifname)
            pod_routes = None if pod_link is None else routes.read_pod_routes(pod, pod_link.index)
    except NetnsGone:
        pod_link, pod_routes = None, None
    return Observed(pod_link, pod_routes, host_link, host_oif)
