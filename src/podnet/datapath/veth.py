"""The veth pair that joins a pod to its node: one end in the node, one in the pod.

Design note (routed model, as Calico): every host end carries the same MAC, `ee:ee:ee:ee:ee:ee`,
and no address. The pod's only neighbour is its gateway `169.254.1.1`, pinned to that MAC, so a
pod never has to ARP for anything; proxy ARP on the host end still answers if an entry is lost.
Host ends are named `pn` + a hash of (container ID, interface), so DEL and GC find the link from
the attachment alone, and the name fits IFNAMSIZ.
"""

from __future__ import annotations

import errno
import hashlib
import os

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from podnet.datapath import rtnl
from podnet.datapath.netns import DatapathError, NetnsGone
from podnet.datapath.rtnl import Link, Rtnl

HOST_PREFIX = "pn"
HOST_MAC = "ee:ee:ee:ee:ee:ee"


class InterfaceExists(DatapathError):
    """The pod already has an interface by that name (SPEC: ADD must then fail)."""


def host_ifname(container_id: str, ifname: str) -> str:
    """The node-side name of an attachment's veth: `pn` + 11 hex digits (13 <= IFNAMSIZ-1)."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return HOST_PREFIX + digest[:11]


def is_host_ifname(name: str) -> bool:
    """Whether `name` has the shape of `host_ifname`'s names (resync removes leaked ones)."""
    suffix = name.removeprefix(HOST_PREFIX)
    return len(name) == 13 and suffix != name and all(c in "0123456789abcdef" for c in suffix)


def get_link(ipr: IPRoute, name: str) -> Link | None:
    """The link called `name` in `ipr`'s namespace, or None."""
    try:
        (msg,) = ipr.link("get", ifname=name)
    except NetlinkError as err:
        if err.code == errno.ENODEV:
            return None
        raise
    return link_of(msg)


def link_of(msg: ifinfmsg) -> Link:
    """The `Link` a netlink link message describes."""
    return Link(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        mac=msg.get_attr("IFLA_ADDRESS"),
        mtu=msg.get_attr("IFLA_MTU"),
        up=bool(msg["flags"] & 1),
        peer_index=msg.get_attr("IFLA_LINK"),
    )


def create_veth(node: Rtnl, host_name: str, pod_netns: str, pod_ifname: str, mtu: int) -> Link:
    """Create the pair with the pod end already inside `pod_netns`; returns the host end, up.

    Its `peer_index` numbers the pod end inside the pod, which spares the pod a look-up."""
    try:
        fd = os.open(pod_netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise NetnsGone(f"network namespace {pod_netns} does not exist") from err
    try:
        (host,) = node.run(
            rtnl.new_veth(host_name, HOST_MAC, mtu, pod_ifname, fd), rtnl.get_link(host_name)
        )
    except rtnl.NetlinkRefused as err:
        if err.errno == errno.EEXIST:
            raise InterfaceExists(
                f"interface {pod_ifname} in {pod_netns} or {host_name} on the node already exists"
            ) from err
        raise
    finally:
        os.close(fd)
    return host


def delete_veth(node: Rtnl, host_name: str) -> bool:
    """Delete the pair by its host end; False if it was already gone (DEL is idempotent)."""
    try:
        node.run(rtnl.delete_link(host_name))
    except rtnl.NetlinkRefused as err:
        if err.errno == errno.ENODEV:
            return False
        raise
    return True


def list_host_veths(node: IPRoute) -> list[str]:
    """The names of every podnet host end in the node."""
    names = (msg.get("ifname") for msg in node.link("dump"))
    return sorted(name for name in names if name and is_host_ifname(name))
