"""Datapath helpers in namespaces these tests make; and the guard that keeps the host safe."""

from __future__ import annotations

import ipaddress

import pytest

from netns import NetnsFactory
from podnet.datapath import routes, veth
from podnet.datapath.netns import (
    DatapathError,
    NetnsGone,
    assert_not_root,
    current_netns,
    is_root,
    rtnl,
)
from podnet.datapath.rtnl import NetlinkRefused, link_up, open_rtnl


def test_host_interface_names_fit_ifnamsiz_and_differ_per_attachment() -> None:
    names = {veth.host_ifname(f"c{i}", ifname) for i in range(1000) for ifname in ("eth0", "net1")}
    assert len(names) == 2000
    assert all(len(name) <= 15 and veth.is_host_ifname(name) for name in names)


@pytest.mark.netns
def test_writes_are_refused_in_the_root_namespace() -> None:
    if not is_root(current_netns()):
        pytest.skip("the test process is not in the root network namespace")
    with pytest.raises(DatapathError, match="root network namespace"):
        assert_not_root(current_netns())
    with pytest.raises(DatapathError), rtnl():
        pass


@pytest.mark.netns
def test_a_missing_namespace_is_reported_as_gone(make_netns: NetnsFactory) -> None:
    ns = make_netns("gone")
    make_netns.delete(ns)
    with pytest.raises(NetnsGone), rtnl(ns.path):
        pass


@pytest.mark.netns
def test_a_wired_veth_routes_between_node_and_pod(make_netns: NetnsFactory) -> None:
    node, pod = make_netns("node"), make_netns("pod")
    node.run("ip", "link", "set", "lo", "up")
    node.run("ip", "addr", "add", "192.0.2.11/32", "dev", "lo")
    ip = ipaddress.IPv4Address("10.244.9.5")
    host = veth.host_ifname("t1", "eth0")
    fast_node, fast_pod = open_rtnl(node.path), open_rtnl(pod.path)
    try:
        host_link = veth.create_veth(fast_node, host, pod.path, "eth0", 1450)
        with pytest.raises(veth.InterfaceExists):
            veth.create_veth(fast_node, veth.host_ifname("t2", "eth0"), pod.path, "eth0", 1450)
        assert (host_link.mac, host_link.mtu, host_link.up) == (veth.HOST_MAC, 1450, True)
        assert host_link.peer_index is not None
        pod_link = routes.configure_pod(fast_pod, host_link.peer_index, "eth0", ip)
        routes.route_to_pod(fast_node, ip, host_link.index)
    finally:
        fast_node.close()
        fast_pod.close()
    assert node.ping(str(ip))
    with rtnl(node.path) as n, rtnl(pod.path) as p:
        seen = routes.read_pod_routes(p, pod_link.index)
        assert seen.addresses == {ipaddress.IPv4Interface(f"{ip}/32")}
        assert (seen.default_gateway, seen.gateway_mac) == (routes.GATEWAY, veth.HOST_MAC)
        assert routes.route_oif(n, ip) == host_link.index
        assert veth.list_host_veths(n) == [host]
    fast_node = open_rtnl(node.path)
    try:
        assert veth.delete_veth(fast_node, host) is True
        assert veth.delete_veth(fast_node, host) is False
    finally:
        fast_node.close()
    assert pod.links() == ["lo"]


@pytest.mark.netns
def test_a_refused_request_names_itself(make_netns: NetnsFactory) -> None:
    node = make_netns("node")
    batch = open_rtnl(node.path)
    try:
        with pytest.raises(NetlinkRefused, match="bring up interface 4242"):
            batch.run(link_up(1), link_up(4242))
    finally:
        batch.close()
