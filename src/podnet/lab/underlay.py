"""The lab's physical network: one bridge in its own namespace, each node a namespace on it.

```
 podnet-<lab>-underlay:  br0 192.0.2.1/24 (no forwarding: nothing leaves the lab)
   ├── u0 ─── eth0 192.0.2.10/24  podnet-<lab>-node-1   default via 192.0.2.1
   └── u1 ─── eth0 192.0.2.11/24  podnet-<lab>-node-2   default via 192.0.2.1
```
Nodes get a default route, as real machines have, so the agent finds its underlay the way
it would on a real node; what follows it ends at the bridge's namespace, which does not
forward. Nothing here touches the root namespace: every change goes through `rtnl(path)`.
"""

from __future__ import annotations

import contextlib
import errno

from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError

from podnet.datapath.netns import DatapathError, rtnl, run_in
from podnet.datapath.sysctl import read_sysctl, write_sysctl
from podnet.lab.state import NETNS_DIR, UNDERLAY_NET, LabPaths, node_address

BRIDGE = "br0"
GATEWAY = f"{UNDERLAY_NET}.1"
PREFIX_LEN = 24
ICMP_DEST_UNREACH = 3  # the bit of net.ipv4.icmp_ratemask that limits port unreachables


def create_netns(name: str) -> None:
    """A new named network namespace (`ip netns add`); an existing one is an error.

    Its ICMP destination-unreachable errors are not rate-limited: the prober reads a refusal
    (port unreachable) as "policy let the packet through", and the kernel's default limit
    (6 per peer, then one a second) would make a refusal look like a drop.
    """
    try:
        pyroute2_netns.create(name)
    except OSError as err:
        if err.errno == errno.EEXIST:
            raise DatapathError(f"network namespace {name} exists already") from err
        raise
    run_in(str(NETNS_DIR / name), _refuse_without_limit)


def _refuse_without_limit() -> None:
    mask = int(read_sysctl("net.ipv4.icmp_ratemask"))
    write_sysctl("net.ipv4.icmp_ratemask", str(mask & ~(1 << ICMP_DEST_UNREACH)))


def delete_netns(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        pyroute2_netns.remove(name)


def create_underlay(paths: LabPaths, mtu: int) -> None:
    create_netns(paths.underlay)
    with rtnl(paths.netns_path(paths.underlay)) as ul:
        ul.link("set", index=1, state="up")
        ul.link("add", ifname=BRIDGE, kind="bridge", br_stp_state=0, br_forward_delay=0)
        (index,) = ul.link_lookup(ifname=BRIDGE)
        ul.link("set", index=index, mtu=mtu, state="up")
        ul.addr("add", index=index, address=GATEWAY, prefixlen=PREFIX_LEN)


def add_node(paths: LabPaths, node: str, index: int, mtu: int) -> str:
    """The node's namespace with `eth0` on the underlay; returns the node's address."""
    netns = paths.node(node)
    address = node_address(index)
    create_netns(netns)
    port = f"u{index}"
    with rtnl(paths.netns_path(paths.underlay)) as ul:
        try:
            ul.link("add", ifname=port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": netns})
        except NetlinkError as err:
            raise DatapathError(f"cannot wire node {node} to the underlay: {err}") from err
        (bridge,) = ul.link_lookup(ifname=BRIDGE)
        (port_index,) = ul.link_lookup(ifname=port)
        ul.link("set", index=port_index, master=bridge, mtu=mtu, state="up")
    with rtnl(paths.netns_path(netns)) as nd:
        nd.link("set", index=1, state="up")
        (eth0,) = nd.link_lookup(ifname="eth0")
        nd.link("set", index=eth0, mtu=mtu, state="up")
        nd.addr("add", index=eth0, address=address, prefixlen=PREFIX_LEN)
        nd.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=eth0)
    return address
