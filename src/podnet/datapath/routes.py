"""Addresses, routes and the gateway neighbour of the routed model (DESIGN §3).

Inside the pod: `eth0` holds `podIP/32`, the gateway `169.254.1.1` is pinned to the host end's
MAC, and `default via 169.254.1.1 dev eth0 onlink` sends everything to the node; `onlink` is
what lets a /32 interface use a gateway outside its own prefix. On the node: `podIP/32 dev <host
veth>`, so all traffic, same-node too, is routed by the node.
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.datapath import rtnl
from podnet.datapath.netns import DatapathError
from podnet.datapath.rtnl import Link, Rtnl
from podnet.datapath.veth import HOST_MAC

GATEWAY = ipaddress.IPv4Address("169.254.1.1")
DEFAULT = ipaddress.IPv4Network("0.0.0.0/0")
LOOPBACK_INDEX = 1  # `lo` is index 1 in every network namespace
MAIN_TABLE = 254


@dataclass(frozen=True)
class PodRoutes:
    """What a pod interface holds, as read back from the kernel (for CHECK)."""

    addresses: frozenset[ipaddress.IPv4Interface]
    default_gateway: ipaddress.IPv4Address | None
    gateway_mac: str | None
    loopback_up: bool


def bring_up_loopback(node: Rtnl) -> None:
    """`lo` up. On a node this also creates the kernel's local routing table: without it every
    neighbour is classed as broadcast (NOARP, ff:ff:ff:ff:ff:ff) and TCP to pods is dropped."""
    node.run(rtnl.link_up(LOOPBACK_INDEX))


def configure_pod(pod: Rtnl, index: int, ifname: str, address: ipaddress.IPv4Address) -> Link:
    """Loopback up, interface `index` up with `address/32`, the pinned gateway, the default
    route; returns the interface as configured (checking that `index` is `ifname`)."""
    (link,) = pod.run(
        rtnl.link_up(LOOPBACK_INDEX),
        rtnl.link_up(index),
        rtnl.add_address(index, address, 32),
        rtnl.pin_neighbour(index, GATEWAY, HOST_MAC),
        rtnl.route(DEFAULT, index, GATEWAY, onlink=True),
        rtnl.get_link(ifname),
    )
    if link.index != index:
        raise DatapathError(f"{ifname} is interface {link.index}, not {index}, in the pod")
    return link


def answer_arp(host_index: int) -> list[rtnl.Request]:
    """Proxy ARP on a host veth, answering at once (the default proxy_delay holds replies up
    to 0.8 s): the sysctls `conf.<veth>.proxy_arp` and `neigh.<veth>.proxy_delay`, set by
    netlink so that they join the route's batch."""
    return [rtnl.proxy_arp(host_index), rtnl.no_proxy_delay(host_index)]


def route_to_pod(node: Rtnl, address: ipaddress.IPv4Address, host_index: int) -> None:
    """Proxy ARP on the host veth, then `address/32 dev <host veth>` on the node (replacing a
    stale route left by a lost pod): one batch, the route last."""
    node.run(*answer_arp(host_index),
             rtnl.route(ipaddress.IPv4Network(f"{address}/32"), host_index, replace=True))


def route_oif(node: IPRoute, address: ipaddress.IPv4Address) -> int | None:
    """The interface the node actually sends `address`'s packets out of, or None."""
    try:
        (msg,) = node.route("get", dst=str(address))
    except NetlinkError as err:
        if err.code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return None
        raise
    oif: int | None = msg.get("oif")
    return oif


def read_pod_routes(pod: IPRoute, index: int) -> PodRoutes:
    """The addresses, default gateway and gateway neighbour on pod interface `index`."""
    addresses = frozenset(
        ipaddress.IPv4Interface(f"{msg.get('address')}/{msg['prefixlen']}")
        for msg in pod.addr("dump", index=index, family=2)
    )
    gateway = None
    for msg in pod.route("dump", family=2, table=MAIN_TABLE):
        if msg["dst_len"] == 0 and msg.get("oif") == index and msg.get("gateway"):
            gateway = ipaddress.IPv4Address(msg.get("gateway"))
    mac = None
    for msg in pod.neigh("dump", ifindex=index, family=2):
        if msg.get("dst") == str(GATEWAY):
            mac = msg.get("lladdr")
    (lo,) = pod.link("get", index=LOOPBACK_INDEX)
    return PodRoutes(addresses, gateway, mac, bool(lo["flags"] & 1))
