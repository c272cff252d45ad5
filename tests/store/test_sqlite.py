"""What only the SQLite backend does: its file, its schema version, its automatic compaction."""

import os
import resource
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from podnet.store import Compacted, Key, Unavailable, Watch, default_url, open_store, store_url
from podnet.store.sqlite import SqliteStore


def test_one_file_in_wal_mode(tmp_path: Path) -> None:
    with open_store(f"sqlite://{tmp_path}/deep/er/state.db") as store:
        store.create(Key("Namespace", "", "x"), {})
    db = sqlite3.connect(tmp_path / "deep/er/state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM resources").fetchone()[0] == 1


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    sqlite3.connect(path).execute("PRAGMA user_version = 99")
    with pytest.raises(Unavailable, match="schema version 99: written by a newer podnet"):
        SqliteStore(path)


def test_old_history_is_compacted_automatically(tmp_path: Path) -> None:
    """Events older than the kept history are forgotten; a lagging watch must list again."""
    with SqliteStore(tmp_path / "state.db", history=500) as store:
        for n in range(1200):
            store.create(Key("Pod", "shop", f"p{n}"), {"metadata": {"name": f"p{n}"}})
        with pytest.raises(Compacted):
            store.events(Watch(100))
        assert len(store.events(Watch(600))) == 600
        assert len(store.list("Pod").items) == 1200


def test_store_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODNET_STORE", "sqlite:///from/env.db")
    assert store_url("sqlite:///given.db") == "sqlite:///given.db"
    assert store_url() == "sqlite:///from/env.db"
    monkeypatch.delenv("PODNET_STORE")
    assert store_url() == default_url()
    assert default_url().startswith("sqlite:///") and default_url().endswith("podnet/state.db")


@pytest.mark.parametrize("url", ["etcd://127.0.0.1:2379", "sqlite://", "postgres://x", "state.db"])
def test_unusable_urls(url: str) -> None:
    with pytest.raises(Unavailable):
        open_store(url)


def test_a_file_that_is_not_a_store_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(Unavailable, match="cannot open store"):
        open_store(f"sqlite://{tmp_path}/state.db")


def test_a_store_that_became_read_only_is_unavailable(tmp_path: Path) -> None:
    """Errors while writing (here: the database turned read-only) are Unavailable, not SQLite's."""
    with open_store(f"sqlite://{tmp_path}/state.db") as store:
        store.create(Key("Namespace", "", "x"), {})
        assert isinstance(store, SqliteStore)
        store.query_one("PRAGMA query_only = ON", ())
        with pytest.raises(Unavailable, match="readonly"):
            store.create(Key("Namespace", "", "y"), {})
        assert [r.name for r in store.list("Namespace").items] == ["x"]


def test_a_waiter_wakes_for_each_commit_of_another_process(tmp_path: Path) -> None:
    """Each commit of another process ends the wait: none is slept through, even one whose
    `-wal` write woke the waiter before SQLite published it."""
    path = tmp_path / "state.db"
    with SqliteStore(path) as store:
        seen: list[int] = []

        def waiter() -> None:
            while len(seen) < 3:
                since = store.revision()
                store.wait(since, 120.0)  # each commit below wakes it long before
                if store.revision() > since:
                    seen.append(store.revision())

        thread = threading.Thread(target=waiter)
        thread.start()
        for n in range(3):
            time.sleep(0.3)  # let it sleep in its watch
            with SqliteStore(path) as other:  # a commit of another process, as agents see
                other.create(Key("Pod", "x", f"p{n}"), {"metadata": {"name": f"p{n}"}})
        thread.join(60)
        assert not thread.is_alive()
        assert seen == [1, 2, 3]
        store.wait(0, 120.0)  # behind the store: returns at once


def test_a_waiter_in_a_process_with_over_1024_files_open(tmp_path: Path) -> None:
    """A wait's fresh watch gets the lowest free descriptor: above 1023 in the lab's kubelet
    while it serves thousands of probes, past what select() takes (the kubelet died of it)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with SqliteStore(tmp_path / "state.db") as store:
            store.create(Key("Pod", "x", "p"), {"metadata": {"name": "p"}})
            assert max(held) > 1024
            store.wait(store.revision(), 0.2)  # nothing new: sleeps its timeout in the watch
            store.wait(0, 120.0)
    finally:
        for fd in held:
            os.close(fd)
