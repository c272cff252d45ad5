"""The hot path's rtnetlink messages, packed by hand: the bytes pyroute2's message classes
encode for the same request, and links read back as pyroute2 decodes them."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, nlmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from netns import NetnsFactory
from podnet.datapath import routes, rtnl
from podnet.datapath.netns import rtnl as iproute_in
from podnet.datapath.veth import HOST_MAC, link_of

POD = ipaddress.IPv4Address("10.244.0.5")
GATEWAY = ipaddress.IPv4Address("169.254.1.1")


def pyroute2(cls: type[nlmsg], fields: dict[str, int], attrs: list[tuple[str, Any]],
             kind: int, flags: int = 0) -> bytes:
    """The message as pyroute2 encodes it, with the header `rtnl._build` gives sequence 7."""
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    msg["header"]["type"] = kind
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
    msg["header"]["sequence_number"] = 7
    msg.encode()
    return bytes(msg.data)


VETH_PEER = [("IFLA_IFNAME", "eth0"), ("IFLA_NET_NS_FD", 5), ("IFLA_MTU", 1450)]
CASES = [
    pytest.param(
        rtnl.new_veth("pn0123456789a", HOST_MAC, 1450, "eth0", 5),
        pyroute2(ifinfmsg, {"flags": 1, "change": 1}, [
            ("IFLA_IFNAME", "pn0123456789a"), ("IFLA_ADDRESS", HOST_MAC), ("IFLA_MTU", 1450),
            ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", {
                "attrs": [("VETH_INFO_PEER", {"attrs": VETH_PEER})]})]})],
            rtnl.RTM_NEWLINK, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL), id="veth"),
    pytest.param(rtnl.get_link("pn0123456789a"),
                 pyroute2(ifinfmsg, {}, [("IFLA_IFNAME", "pn0123456789a")], rtnl.RTM_GETLINK),
                 id="look up"),
    pytest.param(rtnl.delete_link("eth10"),
                 pyroute2(ifinfmsg, {}, [("IFLA_IFNAME", "eth10")], rtnl.RTM_DELLINK),
                 id="delete"),
    pytest.param(rtnl.link_up(3),
                 pyroute2(ifinfmsg, {"index": 3, "flags": 1, "change": 1}, [],
                          rtnl.RTM_NEWLINK), id="up"),
    pytest.param(rtnl.add_address(3, POD, 32),
                 pyroute2(ifaddrmsg, {"family": 2, "prefixlen": 32, "index": 3},
                          [("IFA_LOCAL", str(POD)), ("IFA_ADDRESS", str(POD))],
                          rtnl.RTM_NEWADDR, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL),
                 id="address"),
    pytest.param(rtnl.pin_neighbour(3, GATEWAY, HOST_MAC),
                 pyroute2(ndmsg, {"family": 2, "ifindex": 3, "state": 0x80},
                          [("NDA_DST", str(GATEWAY)), ("NDA_LLADDR", HOST_MAC)],
                          rtnl.RTM_NEWNEIGH, rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE),
                 id="neighbour"),
    pytest.param(rtnl.route(ipaddress.IPv4Network("0.0.0.0/0"), 3, GATEWAY, onlink=True),
                 pyroute2(rtmsg, {"family": 2, "dst_len": 0, "table": 254, "proto": 4,
                                  "type": 1, "scope": 0, "flags": 4},
                          [("RTA_OIF", 3), ("RTA_GATEWAY", str(GATEWAY))],
                          rtnl.RTM_NEWROUTE, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL),
                 id="default route"),
    pytest.param(rtnl.route(ipaddress.IPv4Network(f"{POD}/32"), 7, replace=True),
                 pyroute2(rtmsg, {"family": 2, "dst_len": 32, "table": 254, "proto": 4,
                                  "type": 1, "scope": 253, "flags": 0},
                          [("RTA_OIF", 7), ("RTA_DST", str(POD))],
                          rtnl.RTM_NEWROUTE, rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE),
                 id="host route"),
]


@pytest.mark.parametrize("request_, expected", CASES)
def test_a_request_is_what_pyroute2_would_send(request_: rtnl.Request, expected: bytes) -> None:
    assert rtnl._build(request_, 7) == expected


@pytest.mark.netns
def test_a_link_reads_back_as_pyroute2_decodes_it(make_netns: NetnsFactory) -> None:
    node, pod = make_netns("node"), make_netns("pod")
    node.run("ip", "link", "add", "pnlong-name-x", "mtu", "1400", "address", HOST_MAC, "type",
             "veth", "peer", "name", "eth0", "netns", pod.path)
    node.run("ip", "link", "set", "pnlong-name-x", "up")
    batch = rtnl.open_rtnl(node.path)
    try:
        (found,) = batch.run(rtnl.get_link("pnlong-name-x"))
    finally:
        batch.close()
    with iproute_in(node.path) as ipr:
        (msg,) = ipr.link("get", ifname="pnlong-name-x")
    assert found == link_of(msg)
    assert (found.name, found.mac, found.mtu, found.up) == ("pnlong-name-x", HOST_MAC, 1400, True)
    assert found.peer_index is not None


@pytest.mark.netns
def test_proxy_arp_by_netlink_is_what_the_sysctls_say(make_netns: NetnsFactory) -> None:
    node, pod = make_netns("node"), make_netns("pod")
    node.run("ip", "link", "add", "pnhost", "type", "veth", "peer", "name", "eth0", "netns",
             pod.path)
    assert node.run("sysctl", "-n", "net.ipv4.conf.pnhost.proxy_arp").strip() == "0"
    assert node.run("sysctl", "-n", "net.ipv4.neigh.pnhost.proxy_delay").strip() != "0"
    batch = rtnl.open_rtnl(node.path)
    try:
        (link,) = batch.run(rtnl.get_link("pnhost"))
        batch.run(*routes.answer_arp(link.index))
    finally:
        batch.close()
    assert node.run("sysctl", "-n", "net.ipv4.conf.pnhost.proxy_arp").strip() == "1"
    assert node.run("sysctl", "-n", "net.ipv4.neigh.pnhost.proxy_delay").strip() == "0"
