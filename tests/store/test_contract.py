"""What every backend promises: revisions, compare-and-swap, atomic commits, watch, leases."""

import threading

import pytest

from podnet.model import parse_selector
from podnet.store import (
    Compacted,
    Conflict,
    Create,
    Delete,
    EventType,
    Key,
    NotFound,
    Store,
    Update,
    Watch,
    modify,
    open_store,
)

WEB = Key("Pod", "shop", "web")


def pod(name: str, **labels: str) -> dict[str, object]:
    return {"kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": {}}


def test_create_get_and_revisions_grow(store: Store) -> None:
    start = store.revision()  # 0 for a new SQLite store; etcd counts from 1, for all prefixes
    first = store.create(WEB, pod("web", app="web"))
    second = store.create(Key("Pod", "shop", "db"), pod("db"))
    assert start < first.revision < second.revision == store.revision()
    got = store.get(WEB)
    assert got.body == pod("web", app="web")
    assert got.revision == got.created == first.revision
    assert got.manifest()["metadata"]["resourceVersion"] == str(first.revision)


def test_create_twice_is_a_conflict(store: Store) -> None:
    store.create(WEB, pod("web"))
    with pytest.raises(Conflict, match="already exists"):
        store.create(WEB, pod("web", other="x"))
    assert store.get(WEB).labels == {}


def test_get_missing_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="Pod shop/web not found"):
        store.get(WEB)
    with pytest.raises(NotFound):
        store.update(WEB, pod("web"))
    with pytest.raises(NotFound):
        store.delete(WEB)


def test_update_guarded_by_revision(store: Store) -> None:
    created = store.create(WEB, pod("web"))
    updated = store.update(WEB, pod("web", v="2"), created.revision)
    assert updated.revision > created.revision and updated.created == created.revision
    with pytest.raises(Conflict, match="changed"):
        store.update(WEB, pod("web", v="3"), created.revision)
    assert store.get(WEB).labels == {"v": "2"}
    store.update(WEB, pod("web", v="4"))  # no revision: unconditional
    assert store.get(WEB).labels == {"v": "4"}


def test_delete_guarded_by_revision(store: Store) -> None:
    created = store.create(WEB, pod("web"))
    store.update(WEB, pod("web", v="2"))
    with pytest.raises(Conflict):
        store.delete(WEB, created.revision)
    deleted = store.delete(WEB)
    assert deleted.labels == {"v": "2"}
    with pytest.raises(NotFound):
        store.get(WEB)


def test_list_by_kind_namespace_and_selector(store: Store) -> None:
    store.create(Key("Pod", "shop", "web"), pod("web", app="web", tier="front"))
    store.create(Key("Pod", "shop", "db"), pod("db", app="db"))
    store.create(Key("Pod", "blog", "web"), pod("web", app="web"))
    store.create(Key("Namespace", "", "shop"), {"metadata": {"name": "shop"}})
    everything = store.list("Pod")
    assert [str(r.key) for r in everything.items] == ["Pod blog/web", "Pod shop/db", "Pod shop/web"]
    assert everything.revision == store.revision()
    assert [r.name for r in store.list("Pod", "shop").items] == ["db", "web"]
    selected = store.list("Pod", selector=parse_selector("app in (web),tier!=back"))
    assert [str(r.key) for r in selected.items] == ["Pod blog/web", "Pod shop/web"]
    assert [r.name for r in store.list("Namespace").items] == ["shop"]
    assert store.list("NetworkPolicy").items == ()


def test_commit_is_all_or_nothing(store: Store) -> None:
    store.create(WEB, pod("web"))
    before = store.revision()
    with pytest.raises(Conflict):
        store.commit([Create(Key("Pod", "shop", "new"), pod("new")),
                      Update(WEB, pod("web", v="2")),
                      Create(WEB, pod("web"))])
    assert store.revision() == before
    with pytest.raises(NotFound):
        store.get(Key("Pod", "shop", "new"))
    written = store.commit([Create(Key("Pod", "shop", "new"), pod("new")),
                            Delete(WEB)])
    assert [str(r.key) for r in written] == ["Pod shop/new", "Pod shop/web"]
    assert [r.name for r in store.list("Pod").items] == ["new"]


def test_events_after_a_revision_in_order(store: Store) -> None:
    start = store.create(Key("Namespace", "", "shop"), {"metadata": {"name": "shop"}}).revision
    store.create(WEB, pod("web"))
    store.update(WEB, pod("web", v="2"))
    store.delete(WEB)
    events = store.events(Watch(start))
    assert [(e.type, str(e.resource.key)) for e in events] == [
        (EventType.ADDED, "Pod shop/web"),
        (EventType.MODIFIED, "Pod shop/web"),
        (EventType.DELETED, "Pod shop/web"),
    ]
    assert [e.revision for e in events] == list(range(start + 1, start + 4))
    assert events[2].resource.labels == {"v": "2"}  # DELETED carries the last state
    assert store.events(Watch(0, frozenset({"Namespace"})))[0].resource.name == "shop"
    assert store.events(Watch(store.revision())) == []


def test_watch_follows_writes_of_another_client(store: Store, store_url: str) -> None:
    since = store.revision()
    stop = threading.Event()
    seen: list[tuple[EventType, str]] = []

    def follow() -> None:
        for event in store.watch(Watch(since, frozenset({"Pod"})), stop=stop, poll=0.01):
            seen.append((event.type, event.resource.name))
            if len(seen) == 3:
                stop.set()

    watcher = threading.Thread(target=follow)
    watcher.start()
    with open_store(store_url) as other:
        other.create(WEB, pod("web"))
        other.create(Key("Namespace", "", "shop"), {})
        modify(other, WEB, lambda body: body["metadata"]["labels"].update(v="2"))
        other.delete(WEB)
    watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert seen == [(EventType.ADDED, "web"), (EventType.MODIFIED, "web"),
                    (EventType.DELETED, "web")]


def test_compacted_history_is_refused(store: Store) -> None:
    store.create(WEB, pod("web"))
    store.update(WEB, pod("web", v="2"))
    if not hasattr(store, "compact"):
        pytest.skip("backend without compaction")
    store.compact(store.revision() - 1)
    with pytest.raises(Compacted):
        store.events(Watch(0))
    assert [e.type for e in store.events(Watch(store.revision() - 1))] == [EventType.MODIFIED]


def test_expired_lease_deletes_its_objects(store: Store) -> None:
    lease = store.grant_lease(0.2)
    store.create(Key("Pod", "shop", "leased"), pod("leased"), lease=lease)
    store.create(WEB, pod("web"))
    since = store.revision()
    store.keep_alive(lease)
    events = []
    stop = threading.Event()
    give_up = threading.Timer(10, stop.set)
    give_up.start()
    for event in store.watch(Watch(since), stop=stop, poll=0.02):
        events.append(event)
        stop.set()
    give_up.cancel()
    assert [(e.type, e.resource.name) for e in events] == [(EventType.DELETED, "leased")]
    assert [r.name for r in store.list("Pod").items] == ["web"]
    with pytest.raises(NotFound):
        store.keep_alive(lease)


def test_revoked_lease_deletes_its_objects(store: Store) -> None:
    lease = store.grant_lease(60)
    store.create(WEB, pod("web"), lease=lease)
    store.revoke_lease(lease)
    with pytest.raises(NotFound):
        store.get(WEB)
    store.revoke_lease(lease)  # already gone: no-op


def test_nothing_is_created_under_an_ended_lease(store: Store) -> None:
    lease = store.grant_lease(60)
    store.revoke_lease(lease)
    with pytest.raises(NotFound):
        store.create(WEB, pod("web"), lease=lease)
    with pytest.raises(NotFound):
        store.get(WEB)


def test_modify_retries_on_conflict(store: Store, store_url: str) -> None:
    store.create(WEB, pod("web"))
    calls = 0

    def add_label(body: dict[str, object]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone else writes between our read and our write
            with open_store(store_url) as other:
                other.update(WEB, pod("web", other="yes"))
        body["metadata"]["labels"]["mine"] = "yes"  # type: ignore[index]

    modify(store, WEB, add_label)
    assert calls == 2
    assert store.get(WEB).labels == {"other": "yes", "mine": "yes"}

