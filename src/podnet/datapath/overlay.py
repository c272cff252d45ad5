"""How a node reaches the pod subnets of the other nodes: VXLAN, or host-gw routes.

Design note (as flannel's vxlan backend, with static entries instead of L2/L3-miss callouts).
Each node has one VXLAN device, `podnet.1` (VNI 1, UDP 8472, no learning), holding its
subnet's `.0` as a /32, with MTU = underlay MTU - 50 (outer IPv4 20 + UDP 8 + VXLAN 8 +
inner Ethernet 14). For each remote node it costs three kernel entries, written in this order:

| entry      | what                                              | why                          |
|------------|---------------------------------------------------|------------------------------|
| neighbour  | remote `.0` -> remote VTEP MAC, permanent         | no ARP across the overlay    |
| FDB        | remote VTEP MAC -> remote node's underlay IP      | where to send the UDP packet |
| route      | remote subnet via remote `.0` dev podnet.1 onlink | last: it makes the path live |
|            | src <this node's underlay address>                | node traffic keeps its IP    |

The route goes last, or the kernel would ARP for the gateway before the neighbour exists;
a failure removes what was added. `host-gw` needs one entry per remote node instead (the
route `remote subnet via remote node IP`) and no encapsulation, but all nodes must share an
L2 segment, as the lab's underlay bridge does.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from podnet.datapath.netns import DatapathError

log = logging.getLogger(__name__)

VXLAN_NAME = "podnet.1"
VXLAN_VNI = 1
VXLAN_PORT = 8472
VXLAN_OVERHEAD = 50
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 4
AF_INET = 2
MAIN_TABLE = 254


@dataclass(frozen=True)
class Underlay:
    """The node's interface towards the other nodes, and its address there."""

    ifname: str
    index: int
    address: ipaddress.IPv4Address
    mtu: int


@dataclass(frozen=True)
class Peer:
    """A remote node as its subnet lease describes it."""

    node: str
    subnet: ipaddress.IPv4Network
    public_ip: ipaddress.IPv4Address
    vtep_mac: str | None = None

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The remote VTEP's address: its subnet's `.0`."""
        return self.subnet.network_address


class Backend(Protocol):
    """How remote subnets are reached; one instance per node agent."""

    name: str

    def setup(self, node: IPRoute, subnet: ipaddress.IPv4Network) -> dict[str, str]:
        """Prepare the node; return the lease attributes other nodes need to reach it."""

    def add_peer(self, node: IPRoute, peer: Peer) -> None: ...

    def remove_peer(self, node: IPRoute, peer: Peer) -> None: ...

    def pod_mtu(self) -> int:
        """The MTU pods on this node must use so that their packets cross the underlay."""


def find_underlay(node: IPRoute, ifname: str | None = None) -> Underlay:
    """`ifname`, or the interface of the default route, with its first global IPv4 address."""
    if ifname is None:
        defaults = [r for r in node.route("dump", family=AF_INET, table=MAIN_TABLE)
                    if r["dst_len"] == 0 and r.get("oif")]
        index = defaults[0].get("oif") if defaults else None
    else:
        found = node.link_lookup(ifname=ifname)
        index = found[0] if found else None
    if index is None:
        raise DatapathError(f"no underlay interface {ifname or '(default route)'} on this node")
    (link,) = node.link("get", index=index)
    for msg in node.addr("dump", index=index, family=AF_INET):
        if msg["scope"] == 0:
            return Underlay(link.get("ifname"), index,
                            ipaddress.IPv4Address(msg.get("address")), link.get("mtu"))
    raise DatapathError(f"underlay interface {link.get('ifname')} has no IPv4 address")


class VxlanBackend:
    name = "vxlan"

    def __init__(self, underlay: Underlay) -> None:
        self.underlay = underlay
        self.index: int | None = None

    def pod_mtu(self) -> int:
        return self.underlay.mtu - VXLAN_OVERHEAD

    def setup(self, node: IPRoute, subnet: ipaddress.IPv4Network) -> dict[str, str]:
        """Create `podnet.1` (or keep it, across agent restarts) with the subnet's `.0`/32."""
        found = node.link_lookup(ifname=VXLAN_NAME)
        if not found:
            try:
                node.link("add", ifname=VXLAN_NAME, kind="vxlan", vxlan_id=VXLAN_VNI,
                          vxlan_port=VXLAN_PORT, vxlan_local=str(self.underlay.address),
                          vxlan_link=self.underlay.index, vxlan_learning=0)
            except NetlinkError as err:
                raise DatapathError(f"cannot create {VXLAN_NAME}: {err}") from err
            found = node.link_lookup(ifname=VXLAN_NAME)
        self.index = found[0]
        node.link("set", index=self.index, mtu=self.pod_mtu(), state="up")
        address = str(subnet.network_address)
        held = {m.get("address") for m in node.addr("dump", index=self.index, family=AF_INET)}
        for stale in held - {address}:
            node.addr("del", index=self.index, address=stale, prefixlen=32)
        if address not in held:
            node.addr("add", index=self.index, address=address, prefixlen=32)
        (link,) = node.link("get", index=self.index)
        return {"backend": self.name, "publicIP": str(self.underlay.address),
                "vtepMAC": link.get("address")}

    def add_peer(self, node: IPRoute, peer: Peer) -> None:
        if peer.vtep_mac is None:
            raise DatapathError(f"node {peer.node} publishes no VTEP MAC (is it in vxlan mode?)")
        ifindex, mac = self._ifindex(), peer.vtep_mac
        steps: list[tuple[Callable[[], object], Callable[[], object]]] = [
            (lambda: node.neigh("replace", dst=str(peer.gateway), lladdr=mac, ifindex=ifindex,
                                state=NUD_PERMANENT),
             lambda: node.neigh("del", dst=str(peer.gateway), lladdr=mac, ifindex=ifindex)),
            (lambda: node.fdb("replace", ifindex=ifindex, lladdr=mac, dst=str(peer.public_ip),
                              state=NUD_PERMANENT, flags=NTF_SELF),
             lambda: node.fdb("del", ifindex=ifindex, lladdr=mac, dst=str(peer.public_ip))),
            # `prefsrc`: the node's own traffic to remote pods leaves from its underlay
            # address, as in host-gw mode: a host-network pod has its node's address.
            (lambda: node.route("replace", dst=str(peer.subnet), gateway=str(peer.gateway),
                                oif=ifindex, flags=RTNH_F_ONLINK,
                                prefsrc=str(self.underlay.address)),
             lambda: node.route("del", dst=str(peer.subnet))),
        ]
        _all_or_nothing(steps, f"peer {peer.node} ({peer.subnet} via {peer.public_ip})")

    def remove_peer(self, node: IPRoute, peer: Peer) -> None:
        ifindex = self._ifindex()
        _tolerant(lambda: node.route("del", dst=str(peer.subnet)))
        if peer.vtep_mac is not None:
            _tolerant(lambda: node.fdb("del", ifindex=ifindex, lladdr=peer.vtep_mac,
                                       dst=str(peer.public_ip)))
            _tolerant(lambda: node.neigh("del", dst=str(peer.gateway), lladdr=peer.vtep_mac,
                                         ifindex=ifindex))

    def _ifindex(self) -> int:
        if self.index is None:
            raise DatapathError(f"{VXLAN_NAME} is not set up yet")
        return self.index


class HostGwBackend:
    name = "host-gw"

    def __init__(self, underlay: Underlay) -> None:
        self.underlay = underlay

    def pod_mtu(self) -> int:
        return self.underlay.mtu

    def setup(self, node: IPRoute, subnet: ipaddress.IPv4Network) -> dict[str, str]:
        with contextlib.suppress(NetlinkError):  # a node switched from vxlan: drop the device
            node.link("del", ifname=VXLAN_NAME)
        return {"backend": self.name, "publicIP": str(self.underlay.address)}

    def add_peer(self, node: IPRoute, peer: Peer) -> None:
        try:
            node.route("replace", dst=str(peer.subnet), gateway=str(peer.public_ip),
                       oif=self.underlay.index)
        except NetlinkError as err:
            raise DatapathError(f"cannot route {peer.subnet} via {peer.public_ip}: {err}") from err

    def remove_peer(self, node: IPRoute, peer: Peer) -> None:
        _tolerant(lambda: node.route("del", dst=str(peer.subnet)))


BACKENDS: dict[str, Callable[[Underlay], Backend]] = {
    VxlanBackend.name: VxlanBackend,
    HostGwBackend.name: HostGwBackend,
}


def _all_or_nothing(steps: list[tuple[Callable[[], object], Callable[[], object]]],
                    what: str) -> None:
    done: list[Callable[[], object]] = []
    try:
        for do, undo in steps:
            do()
            done.append(undo)
    except NetlinkError as err:
        for undo in reversed(done):
            _tolerant(undo)
        raise DatapathError(f"cannot add {what}: {err}") from err


def _tolerant(call: Callable[[], object]) -> None:
    """Removal that counts "already gone" as done."""
    try:
        call()
    except NetlinkError as err:
        if err.code not in (errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL):
            raise
        log.debug("already gone: %s", err)
