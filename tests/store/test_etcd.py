"""What only the etcd backend has to show: IPAM by compare-and-create, watches that survive a
member's restart, compaction, and calls that fail in bounded time when etcd cannot answer."""

import ipaddress
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from etcd_cluster import local_cluster
from podnet import ipam
from podnet.lab.etcd import wait_ready
from podnet.store import (
    Compacted,
    Create,
    Event,
    EventType,
    Key,
    Unavailable,
    Watch,
    open_store,
)
from podnet.store.etcd import EtcdStore
from podnet.store.etcd_client import decode
from podnet.store.etcd_follow import Follower

pytestmark = pytest.mark.etcd


@pytest.fixture
def etcd_url(etcd_endpoint: str) -> str:
    return f"etcd://{etcd_endpoint}/test-{secrets.token_hex(6)}"


@pytest.fixture
def etcd_store(etcd_url: str) -> Iterator[EtcdStore]:
    with open_store(etcd_url) as store:
        assert isinstance(store, EtcdStore)
        yield store


def test_pod_addresses_are_unique_under_concurrent_allocation(etcd_url: str) -> None:
    with open_store(etcd_url) as store:
        lease = ipam.register_node(store, "node-1")

    def allocate(i: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        with open_store(etcd_url) as mine:  # one client each, as agents and CNI calls are
            return ipam.pod_allocator(mine, lease).allocate(ipam.Attachment(f"c{i}"), f"ns/p{i}")

    with ThreadPoolExecutor(8) as pool:
        ips = list(pool.map(allocate, range(40)))
    assert len(set(ips)) == 40 and all(ip in lease.subnet for ip in ips)
    with open_store(etcd_url) as store:
        allocator = ipam.pod_allocator(store, lease)
        assert allocator.allocate(ipam.Attachment("c7"), "ns/p7") == ips[7]  # ADD twice
        assert allocator.release(ipam.Attachment("c7")) == [ips[7]]
        assert allocator.release(ipam.Attachment("c7")) == []
        released = allocator.gc(valid={ipam.Attachment(f"c{i}") for i in range(10)})
        assert len(released) == 30  # c10..c39
        assert sorted(r.attachment.container_id for r in allocator.reservations()) == [
            f"c{i}" for i in range(10) if i != 7]
        assert store.ip_pools() == [str(lease.subnet)]


def test_nodes_registering_at_once_get_disjoint_subnets(etcd_url: str) -> None:
    def register(i: int) -> ipam.SubnetLease:
        with open_store(etcd_url) as mine:
            return ipam.register_node(mine, f"node-{i}", attrs={"publicIP": f"192.0.2.{i}"})

    with ThreadPoolExecutor(8) as pool:
        leases = list(pool.map(register, range(12)))
    assert len({lease.subnet for lease in leases}) == 12
    with open_store(etcd_url) as store:
        assert ipam.register_node(store, "node-3").subnet == leases[3].subnet  # a restart


def test_events_of_one_commit_share_a_revision_and_are_never_split(etcd_store: EtcdStore) -> None:
    since = etcd_store.revision()
    etcd_store.commit([Create(Key("Pod", "x", f"p{i}"), {}) for i in range(5)])
    events = etcd_store.events(Watch(since), limit=2)
    assert [e.resource.name for e in events] == [f"p{i}" for i in range(5)]
    assert {e.revision for e in events} == {since + 1}


def test_compacted_history_ends_events_and_watch(tmp_path: Path) -> None:
    # An etcd of its own: compaction is global, and other tests read history from 0.
    with local_cluster(tmp_path, 1) as cluster, open_store(cluster.url()) as store:
        since = store.revision()
        store.create(Key("Pod", "x", "a"), {})
        store.update(Key("Pod", "x", "a"), {"v": 2})
        store.compact(store.revision())  # type: ignore[attr-defined]
        with pytest.raises(Compacted):
            store.events(Watch(since))
        with pytest.raises(Compacted):
            next(iter(store.watch(Watch(since), stop=threading.Event())))


def test_watch_resumes_after_the_member_restarts(tmp_path: Path) -> None:
    with local_cluster(tmp_path, 1) as cluster, open_store(cluster.url(timeout=1)) as store:
        seen: list[Event] = []
        stop = threading.Event()

        def follow() -> None:
            for event in store.watch(Watch(since), stop=stop, poll=0.02):
                seen.append(event)
                if event.resource.name == "last":
                    stop.set()

        since = store.revision()
        watcher = threading.Thread(target=follow)
        watcher.start()
        try:
            store.create(Key("Pod", "x", "before"), {})
            cluster.stop(cluster.members[0])
            cluster.start(cluster.members[0])
            wait_ready(cluster.url())
            store.create(Key("Pod", "x", "after"), {})
            store.create(Key("Pod", "x", "last"), {})
            watcher.join(timeout=30)
        finally:
            stop.set()
            watcher.join()
    assert [(e.type, e.resource.name) for e in seen] == [
        (EventType.ADDED, "before"), (EventType.ADDED, "after"), (EventType.ADDED, "last")]


def test_calls_fail_in_bounded_time_without_quorum(tmp_path: Path) -> None:
    with local_cluster(tmp_path, 3) as cluster:
        url = cluster.url(timeout=1)
        with open_store(url) as store:
            store.create(Key("Pod", "x", "a"), {})
            for member in cluster.members[1:]:
                cluster.stop(member)
            for call in (store.revision, lambda: store.create(Key("Pod", "x", "b"), {}),
                         lambda: store.list("Pod")):
                began = time.monotonic()
                with pytest.raises(Unavailable):
                    call()
                assert time.monotonic() - began < 3 * 1 + 2  # one timeout per member at most
            for member in cluster.members[1:]:
                cluster.start(member)
            wait_ready(url)
            # A write that timed out may still be applied once quorum is back (the member
            # kept the proposal): "b" may exist now. Callers treat Unavailable as "unknown".
            store.create(Key("Pod", "x", "c"), {})
            assert {"a", "c"} <= {r.name for r in store.list("Pod").items}


def test_wait_wakes_on_a_change_of_another_client(etcd_store: EtcdStore, etcd_url: str) -> None:
    since = etcd_store.revision()
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: (etcd_store.wait(since, 60),
                                              woke.set()))
    waiter.start()
    with open_store(etcd_url) as other:
        other.create(Key("Pod", "x", "a"), {})
    waiter.join(timeout=20)
    assert woke.is_set()


def test_the_kept_open_watch_forgets_whole_revisions_and_events_still_answer(
        etcd_store: EtcdStore) -> None:
    since = etcd_store.revision()
    follower = Follower(lambda after: etcd_store._watch_stream(after, None), since, keep=3)
    try:
        etcd_store.commit([Create(Key("Pod", "x", f"p{i}"), {}) for i in range(2)])
        for i in range(3):
            etcd_store.create(Key("Pod", "x", f"q{i}"), {})
        current = etcd_store.revision()
        assert follower.read(since, current, 10) is None  # forgotten: the store reads history
        held = follower.read(current - 2, current, 10)
        assert held is not None
        assert [decode(e["kv"]["key"]).decode().rsplit("/", 1)[1] for e in held] == ["q1", "q2"]
    finally:
        follower.close()
    assert [e.resource.name for e in etcd_store.events(Watch(since))] == [
        "p0", "p1", "q0", "q1", "q2"]
