"""Many ADDs and DELs at once, as a busy kubelet issues them: no duplicate address, no leak."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from netns import Agent, NetnsFactory, pod_ip
from podnet.store import open_store

pytestmark = pytest.mark.netns

PODS = 32


def test_32_concurrent_adds_and_dels_leave_no_duplicate_and_no_leak(
    agent: Agent, make_netns: NetnsFactory
) -> None:
    pods = [make_netns(f"p{i}") for i in range(PODS)]
    with ThreadPoolExecutor(max_workers=PODS) as pool:
        added = list(pool.map(lambda i: agent.add(f"c{i}", pods[i]), range(PODS)))
    assert [a.code for a in added] == [0] * PODS, [a.output for a in added if a.code]
    ips = [pod_ip(a) for a in added]
    assert len(set(ips)) == PODS
    assert pods[0].ping(ips[-1]) and pods[-1].ping(ips[0])

    with ThreadPoolExecutor(max_workers=PODS) as pool:
        deleted = list(pool.map(lambda i: agent.delete(f"c{i}", pods[i]), range(PODS)))
    assert [d.code for d in deleted] == [0] * PODS
    assert [name for name in agent.node.links() if name.startswith("pn")] == []
    store = open_store(agent.store_url)
    try:
        held = [r for pool_ in store.ip_pools() for r in store.ip_store(pool_).reservations()]
        assert held == []
        assert store.list("PodEndpoint").items == ()
    finally:
        store.close()
