"""Pods wired by a real agent through the real `podnet-cni`, in namespaces these tests make.

The topology: one node namespace running the agent, and pod namespaces created as a runtime
would. Each test states which pods it needs and why.
"""

from __future__ import annotations

import json

import pytest

from netns import NODE_ADDRESS, Agent, Netns, NetnsFactory, pod_ip

pytestmark = pytest.mark.netns

PEER_SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], 7070)); s.listen(1); print('ready', flush=True)\n"
    "c, peer = s.accept(); print(peer[0], flush=True)\n"
)
CLIENT = "import socket,sys; socket.create_connection((sys.argv[1], 7070), timeout=10).close()"


def peer_seen_by(server: Netns, bind: str, client: Netns, target: str) -> str:
    """The source address a TCP server in `server` sees when `client` connects to `target`."""
    proc = server.popen("python3", "-c", PEER_SERVER, bind)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        client.run("python3", "-c", CLIENT, target)
        return proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def test_add_reports_the_pod_interface_and_routes(agent: Agent,
                                                   make_netns: NetnsFactory) -> None:
    pod = make_netns("pod")
    added = agent.add("c1", pod, args="K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0")
    assert added.code == 0, added.output
    host, inner = added.output["interfaces"]  # type: ignore[misc]
    assert inner == {"name": "eth0", "mac": inner["mac"], "mtu": 1450, "sandbox": pod.path}
    assert host["name"] in agent.node.links()
    (ip,) = added.output["ips"]  # type: ignore[misc]
    assert ip["address"].endswith("/32") and ip["gateway"] == "169.254.1.1"
    assert added.output["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    routes = json.loads(pod.run("ip", "-j", "route", "show"))
    assert routes == [{"dst": "default", "gateway": "169.254.1.1", "dev": "eth0",
                       "protocol": "static", "flags": ["onlink"]}]
    assert "UP" in json.loads(pod.run("ip", "-j", "link", "show", "lo"))[0]["flags"]


def test_pods_on_one_node_talk_without_nat(agent: Agent, make_netns: NetnsFactory) -> None:
    # a and b: two pods, so that one is the sender and the other the receiver.
    a, b = make_netns("a"), make_netns("b")
    ip_a, ip_b = pod_ip(agent.add("ca", a)), pod_ip(agent.add("cb", b))
    assert a.ping(ip_b) and b.ping(ip_a)
    assert peer_seen_by(b, "0.0.0.0", a, ip_b) == ip_a


def test_two_processes_in_one_pod_talk_on_localhost(agent: Agent,
                                                    make_netns: NetnsFactory) -> None:
    pod = make_netns("pod")
    assert agent.add("c1", pod).code == 0
    assert peer_seen_by(pod, "127.0.0.1", pod, "127.0.0.1") == "127.0.0.1"


def test_the_node_and_its_host_network_processes_reach_every_local_pod(
    agent: Agent, make_netns: NetnsFactory
) -> None:
    pods = [make_netns(f"p{i}") for i in range(3)]
    ips = [pod_ip(agent.add(f"c{i}", pod)) for i, pod in enumerate(pods)]
    assert all(agent.node.ping(ip) for ip in ips)
    # A host-network process: it runs in the node namespace and is seen with the node's address.
    for pod, ip in zip(pods, ips, strict=True):
        assert peer_seen_by(pod, ip, agent.node, ip) == NODE_ADDRESS


def test_mtu_comes_from_the_config(agent: Agent, make_netns: NetnsFactory) -> None:
    pod = make_netns("pod")
    assert agent.add("c1", pod, mtu=1400).code == 0
    assert json.loads(pod.run("ip", "-j", "link", "show", "eth0"))[0]["mtu"] == 1400
