"""Node liveness: each agent renews its node's Lease; `podnet get nodes` shows Ready or not,
and the agent's metrics count the renewals.

Topology: one node namespace with its agent, on SQLite and on etcd (one member on 127.0.0.1,
which the agent reaches from its namespace through the store URL's `netns=`; a member of its
own for the test that stops it, three for the quorum test). The agents run with a 2 s lease
renewed every 0.5 s, so a dead agent shows within seconds, and serve metrics on their node's
127.0.0.1; tests wait with deadlines, they do not time.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from etcd_cluster import LocalCluster, local_cluster
from netns import PODNET, Agent, NetnsFactory, until
from podnet.lab.etcd import wait_ready
from podnet.lab.metrics import fetch
from podnet.model import nodelease
from podnet.store import open_store

pytestmark = pytest.mark.netns

DURATION = 2  # seconds: the shortest lease etcd grants with its default election timeout
METRICS_PORT = 9471
LEASE_OPTIONS = ("--cluster-cidr", "10.244.0.0/16", "--node-lease-duration", str(DURATION),
                 "--node-lease-renew-interval", "0.5",
                 "--metrics-address", f"127.0.0.1:{METRICS_PORT}")
SETTLE = 20.0  # seconds anything may take on a loaded machine, beyond the lease's own time


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path_factory.mktemp("etcd"), 1) as cluster:
        yield cluster


def etcd_url(cluster: LocalCluster, timeout: float | None = None) -> str:
    """A fresh prefix of `cluster`, as the agent reaches it from inside its namespace."""
    base = cluster.url(timeout)
    prefix = f"/lease-{secrets.token_hex(4)}"
    hosts, _, query = base.partition("?")
    return f"{hosts}{prefix}?{'&'.join(filter(None, [query, own_netns()]))}"


def own_netns() -> str:
    """The option that makes the agent connect from this test's namespace (127.0.0.1 here)."""
    return f"netns=/proc/{os.getpid()}/ns/net"


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def node(request: pytest.FixtureRequest, make_netns: NetnsFactory,
         tmp_path: Path) -> Iterator[Agent]:
    """Name: node. Depends: make_netns. An agent with a short node lease, on each store."""
    if request.param == "etcd":
        url = etcd_url(request.getfixturevalue("etcd_member"))
    else:
        url = f"sqlite://{tmp_path}/state.db"
    running = start_agent(make_netns, tmp_path, url)
    try:
        yield running
    finally:
        resume(running)
        running.stop()


def start_agent(make_netns: NetnsFactory, tmp_path: Path, url: str) -> Agent:
    """node-1's agent on the store at `url`, in a new node namespace whose loopback is up."""
    node = make_netns("node")
    node.run("ip", "link", "set", "lo", "up")
    agent = Agent(node=node, name="node-1", socket=str(tmp_path / "agent.sock"),
                  store_url=url, log=tmp_path / "agent.log")
    agent.start(*LEASE_OPTIONS)
    return agent


def resume(agent: Agent) -> None:
    if agent.proc is not None and agent.proc.poll() is None:
        agent.proc.send_signal(signal.SIGCONT)


def get_node(agent: Agent) -> dict[str, Any]:
    """`podnet get nodes NAME -o json`, as a user runs it."""
    done = subprocess.run([PODNET, "get", "nodes", agent.name, "-o", "json", "--store",
                           agent.store_url], capture_output=True, text=True, check=True)
    node: dict[str, Any] = json.loads(done.stdout)
    return node


def ready(node: dict[str, Any]) -> dict[str, Any]:
    (condition,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    return condition


def is_ready(agent: Agent) -> bool:
    return ready(get_node(agent))["status"] == "True"


@contextmanager
def agent_on_etcd(make_netns: NetnsFactory, tmp_path: Path, members: int
                  ) -> Iterator[tuple[LocalCluster, Agent]]:
    """An etcd cluster of its own (its members the test may stop) and an agent on it that
    gives up on a call after 1 s."""
    with local_cluster(tmp_path / "etcd", members) as cluster:
        agent = start_agent(make_netns, tmp_path, etcd_url(cluster, timeout=1))
        try:
            yield cluster, agent
        finally:
            agent.stop()


class Renewals(NamedTuple):
    """The agent's node lease metrics, as a scrape shows them."""

    ok: float
    failed: float
    last: float  # the last renewal's unix time


def renewals(agent: Agent) -> Renewals:
    """Scraped from inside the agent's node, as Prometheus (or `podnet lab metrics`) would."""
    text = fetch(agent.node.path, "127.0.0.1", METRICS_PORT)
    found = {(s.name, s.labels.get("result")): s.value
             for family in text_string_to_metric_families(text) for s in family.samples}
    return Renewals(found["podnet_node_lease_renewals_total", "ok"],
                    found["podnet_node_lease_renewals_total", "failed"],
                    found["podnet_node_lease_last_renewal_timestamp_seconds", None])


def lease_objects(url: str) -> list[str]:
    """The node leases the store still holds; the empty commit lets SQLite end expired ones."""
    with open_store(url) as store:
        store.commit([])
        return [r.name for r in store.list(nodelease.KIND, nodelease.NAMESPACE).items]


def test_a_killed_agents_node_turns_not_ready_and_ready_again_with_its_subnet(
        node: Agent) -> None:
    until(lambda: is_ready(node), SETTLE, "node-1 Ready")
    before = get_node(node)
    assert ready(before)["reason"] == "AgentRenewingLease"
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait()
    until(lambda: not is_ready(node), DURATION + SETTLE, "node-1 NotReady after SIGKILL")
    assert ready(get_node(node))["status"] == "Unknown"
    node.start(*LEASE_OPTIONS)
    until(lambda: is_ready(node), SETTLE, "node-1 Ready after the restart")
    assert get_node(node)["spec"]["podCIDR"] == before["spec"]["podCIDR"]
    assert lease_objects(node.store_url) == ["node-1"]


def test_a_clean_shutdown_revokes_the_lease_at_once(node: Agent) -> None:
    until(lambda: is_ready(node), SETTLE, "node-1 Ready")
    node.stop()  # SIGTERM, and wait for the agent to exit
    condition = ready(get_node(node))
    assert condition["status"] == "Unknown" and condition["reason"] == "NodeLeaseMissing"
    assert "lastHeartbeatTime" not in condition
    assert lease_objects(node.store_url) == []


def test_an_agent_frozen_past_its_lease_takes_a_new_one_without_a_restart(node: Agent) -> None:
    until(lambda: is_ready(node), SETTLE, "node-1 Ready")
    assert node.proc is not None
    pid = node.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        until(lambda: lease_objects(node.store_url) == [], DURATION + SETTLE,
              "the store ends the frozen agent's lease and deletes its object")
        assert not is_ready(node)
    finally:
        os.kill(pid, signal.SIGCONT)
    until(lambda: is_ready(node), SETTLE, "node-1 Ready again, the same agent")
    assert node.proc.poll() is None and node.proc.pid == pid
    assert "ended (expired); taking a new one" in node.log.read_text()


def test_a_scrape_counts_the_renewals_and_says_when_the_last_was(node: Agent) -> None:
    mark = time.time()
    # The first renewal comes before the agent serves, but its socket accepts (a listening
    # socket queues connections) from before that renewal: wait for it.
    until(lambda: renewals(node).ok >= 1, SETTLE, "the first renewal counted")
    first = renewals(node)
    # The second renewal after the scrape began after the first of them was counted.
    until(lambda: renewals(node).ok >= first.ok + 2, SETTLE, "two more renewals counted")
    then = renewals(node)
    assert then.failed == 0
    assert mark < then.last <= time.time()
    heartbeat = nodelease.parse_time(ready(get_node(node))["lastHeartbeatTime"]).timestamp()
    assert heartbeat >= then.last  # the renewal the gauge shows, or a later one


@pytest.mark.etcd
def test_renewals_the_store_did_not_answer_are_counted_failed(
        make_netns: NetnsFactory, tmp_path: Path) -> None:
    with agent_on_etcd(make_netns, tmp_path, 1) as (cluster, agent):
        # Its first renewal: the agent has opened its stores (an outage before that is a
        # failed start, not a failed renewal).
        until(lambda: renewals(agent).ok >= 1, SETTLE, "the first renewal counted")
        (member,) = cluster.members
        cluster.stop(member)
        stopped = time.time()
        until(lambda: renewals(agent).failed >= 2, SETTLE, "failed renewals counted")
        down = renewals(agent)
        assert down.last <= stopped
        cluster.start(member)
        wait_ready(cluster.url(), timeout=60)
        restored = time.time()
        until(lambda: renewals(agent).last > restored, SETTLE,
              "a renewal counted after the store came back")
        assert renewals(agent).ok > down.ok


@pytest.mark.etcd
@pytest.mark.slow
def test_etcd_quorum_lost_and_restored_the_lease_comes_back_without_a_restart(
        make_netns: NetnsFactory, tmp_path: Path) -> None:
    with agent_on_etcd(make_netns, tmp_path, 3) as (cluster, agent):
        until(lambda: is_ready(agent), SETTLE, "node-1 Ready")
        assert agent.proc is not None
        pid = agent.proc.pid
        for member in cluster.members[1:]:
            cluster.stop(member)
        # Three failed renewals of at least a second each: the outage outlasts the lease.
        until(lambda: agent.log.read_text().count("lease not renewed") >= 3, 3 * SETTLE,
              "the agent reports failed renewals")
        for member in cluster.members[1:]:
            cluster.start(member)
        wait_ready(cluster.url(), timeout=60)
        restored = time.time()
        until(lambda: is_ready(agent) and nodelease.parse_time(
            ready(get_node(agent))["lastHeartbeatTime"]).timestamp() > restored,
            SETTLE, "node-1 renewed after quorum returned")
        assert agent.proc.poll() is None and agent.proc.pid == pid
