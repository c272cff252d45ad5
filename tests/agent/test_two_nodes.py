"""Two agents, one per node namespace, sharing one store: as the lab runs them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from netns import Agent, NetnsFactory, pod_ip, run_cni
from podnet.store import open_store

pytestmark = pytest.mark.netns


@pytest.fixture
def second_agent(agent: Agent, make_netns: NetnsFactory, tmp_path: Path) -> Iterator[Agent]:
    """Name: second_agent. Scope: function. Depends: agent. node-2, on the first one's store."""
    other = Agent(node=make_netns("node2"), name="node-2", socket=str(tmp_path / "agent2.sock"),
                  store_url=agent.store_url, log=tmp_path / "agent2.log")
    other.start()
    try:
        yield other
    finally:
        other.stop()


def test_nodes_lease_their_own_subnets_and_gc_stays_on_its_node(
    agent: Agent, second_agent: Agent, make_netns: NetnsFactory
) -> None:
    # One pod per node: their addresses must come from different node subnets.
    a, b = make_netns("a"), make_netns("b")
    ip_a = ipaddress.ip_address(pod_ip(agent.add("ca", a)))
    ip_b = ipaddress.ip_address(pod_ip(second_agent.add("cb", b)))
    assert ipaddress.ip_network(f"{ip_a}/24", strict=False) != ipaddress.ip_network(
        f"{ip_b}/24", strict=False)
    # GC on node-1 with nothing valid must not touch node-2's pod.
    assert run_cni("GC", agent.conf(**{"cni.dev/valid-attachments": []})).code == 0
    store = open_store(agent.store_url)
    try:
        names = [(r.name, r.body["spec"]["node"]) for r in store.list("PodEndpoint").items]
        held = [r.attachment.container_id
                for pool in store.ip_pools() for r in store.ip_store(pool).reservations()]
    finally:
        store.close()
    assert names == [("cb:eth0", "node-2")]
    assert held == ["cb"]
