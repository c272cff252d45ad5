"""Pods on two nodes reach each other through the overlay (VXLAN or host-gw), without NAT,
and a node that leaves takes its routes, neighbours and FDB entries from the other."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netns import Agent, Netns, NetnsFactory, pod_ip
from podnet import ipam
from podnet.store import open_store

pytestmark = pytest.mark.netns

MESSAGE_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000)); s.listen(); print("ready", flush=True)
c, addr = s.accept(); size = 0
while chunk := c.recv(65536):
    size += len(chunk)
c.sendall(f"{addr[0]} {size}".encode()); c.close()
"""
MESSAGE_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=10)
c.sendall(b"x" * 10_000_000); c.shutdown(socket.SHUT_WR); print(c.recv(100).decode())
"""


def underlay(make_netns: NetnsFactory, count: int) -> list[Netns]:
    """`count` node namespaces on one bridge, 192.0.2.11 and up, default route via .1."""
    bridge = make_netns("underlay")
    bridge.run("ip", "link", "add", "br0", "type", "bridge")
    bridge.run("ip", "addr", "add", "192.0.2.1/24", "dev", "br0")
    bridge.run("ip", "link", "set", "br0", "up")
    nodes = []
    for i in range(count):
        node = make_netns(f"node{i}")
        bridge.run("ip", "link", "add", f"u{i}", "type", "veth", "peer", "name", "eth0",
                   "netns", node.name)
        bridge.run("ip", "link", "set", f"u{i}", "master", "br0", "up")
        node.run("ip", "link", "set", "lo", "up")
        node.run("ip", "addr", "add", f"192.0.2.{11 + i}/24", "dev", "eth0")
        node.run("ip", "link", "set", "eth0", "up")
        node.run("ip", "route", "add", "default", "via", "192.0.2.1")
        nodes.append(node)
    return nodes


@pytest.fixture(params=["vxlan", "host-gw"])
def two_nodes(request: pytest.FixtureRequest, make_netns: NetnsFactory,
              tmp_path: Path) -> Iterator[list[Agent]]:
    store = f"sqlite://{tmp_path / 'state.db'}"
    agents = [Agent(node, f"node-{i + 1}", str(tmp_path / f"n{i}.sock"), store,
                    tmp_path / f"n{i}.log") for i, node in enumerate(underlay(make_netns, 2))]
    try:
        for a in agents:
            a.start("--backend", request.param)
        yield agents
    finally:
        for a in agents:
            a.stop()


def wait_for(condition: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_pods_on_two_nodes_talk_without_nat(two_nodes: list[Agent],
                                            make_netns: NetnsFactory) -> None:
    pods = [make_netns(f"pod{i}") for i in range(2)]
    ips = [pod_ip(a.add(f"c{i}", p)) for i, (a, p) in enumerate(zip(two_nodes, pods,
                                                                        strict=True))]
    assert ips[0].startswith("10.244.") and ips[0].rsplit(".", 1)[0] != ips[1].rsplit(".", 1)[0]
    assert wait_for(lambda: pods[0].ping(ips[1])), "the overlay route never appeared"
    server = pods[1].popen("python3", "-c", MESSAGE_SERVER)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        answer = pods[0].run("python3", "-c", MESSAGE_CLIENT, ips[1]).split()
    finally:
        server.kill()
        server.wait()
    assert answer == [ips[0], "10000000"]  # the receiver saw the sender's pod IP, all of it
    assert two_nodes[0].node.ping(ips[1])  # the node itself reaches remote pods


def test_a_node_that_leaves_is_removed_from_the_others(two_nodes: list[Agent]) -> None:
    one, two = two_nodes
    with open_store(one.store_url) as store:
        lease = ipam.node_lease(store, two.name)
        assert wait_for(lambda: str(lease.subnet) in one.node.run("ip", "route"))
        two.stop()
        ipam.release_node(store, two.name)
    assert wait_for(lambda: str(lease.subnet) not in one.node.run("ip", "route"))
    if lease.attrs["backend"] == "vxlan":
        assert lease.attrs["vtepMAC"] not in one.node.run("ip", "neigh", "show", "dev",
                                                          "podnet.1")
        assert lease.attrs["vtepMAC"] not in one.node.run("bridge", "fdb", "show", "dev",
                                                          "podnet.1")
