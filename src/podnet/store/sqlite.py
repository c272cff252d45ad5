"""The embedded store: one SQLite file in WAL mode, shared by every process of a machine.

Why it is safe for many processes: every write runs in `BEGIN IMMEDIATE`, so writers take
SQLite's write lock in turn and each transaction sees the latest commit; readers never block
(WAL). Writers wait for their turn on a `flock` beside the database, which wakes them at once.
Why it is crash-safe: a change and its event are one transaction, and a process killed at any
instant leaves either all of it or none (with `synchronous=NORMAL` a power cut may lose the
last commits, never consistency). The global revision is the event log's AUTOINCREMENT key:
it only grows and orders commits, so watching is polling `events` after a revision.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from podnet.model import LabelSelector
from podnet.store.base import (
    Compacted,
    Conflict,
    Create,
    Delete,
    Event,
    EventType,
    Key,
    NotFound,
    Op,
    Resource,
    ResourceList,
    Unavailable,
    Update,
    Watch,
)
from podnet.store.sqlite_ip import SCHEMA as IP_SCHEMA
from podnet.store.sqlite_ip import SqliteIPStore

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
SCHEMA_VERSION = 1
# Events older than HISTORY revisions are forgotten, checked every COMPACT_EVERY revisions;
# a watch from before then gets Compacted and lists again (as from etcd after compaction).
HISTORY = 100_000
COMPACT_EVERY = 1_000
CHECKPOINT_EVERY = 100

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, created INTEGER NOT NULL, revision INTEGER NOT NULL, lease INTEGER,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resources_lease ON resources (lease) WHERE lease IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL,
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, created INTEGER NOT NULL, lease INTEGER
);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, revision);
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ttl REAL NOT NULL, expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expires ON leases (expires);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""

_COLUMNS = "kind, namespace, name, body, revision, created, lease"


class _Writer:
    """The write transaction: a reusable, reentrant context manager.

    A class rather than a generator because every allocation enters it several times.
    Writers first queue on a `flock` beside the database: a blocked flock wakes as soon as
    the holder is done, where SQLite's busy handler would sleep 1, 2, 5, 10... ms.
    """

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Connection:
        s = self._store
        s._lock.acquire()
        if s._depth:
            s._depth += 1
            return s._db
        try:
            fcntl.flock(s._writers, fcntl.LOCK_EX)
            try:
                s._execute("BEGIN IMMEDIATE")
            except BaseException:
                fcntl.flock(s._writers, fcntl.LOCK_UN)
                raise
        except BaseException:
            s._lock.release()
            raise
        s._depth = 1
        return s._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 _: object) -> None:
        s = self._store
        try:
            s._depth -= 1
            if s._depth:
                return
            try:
                if exc_type is None:
                    s._execute("COMMIT")
            finally:
                if s._db.in_transaction:
                    s._db.execute("ROLLBACK")
                fcntl.flock(s._writers, fcntl.LOCK_UN)
            if isinstance(exc, sqlite3.OperationalError):  # locked too long, disk full, read-only
                raise Unavailable(f"store {s.path}: {exc}") from exc
            s._commits += 1
            if s._commits % CHECKPOINT_EVERY == 0:
                s.checkpoint()
        finally:
            s._lock.release()


class SqliteStore:
    """A store in one SQLite file; one connection per instance, usable from several threads."""

    def __init__(self, path: str | Path, url: str | None = None, history: int = HISTORY) -> None:
        self.path = Path(path)
        self.history = history
        self.url = url or f"sqlite://{self.path.absolute()}"
        self._lock = threading.RLock()
        self._depth = 0
        self._writer = _Writer(self)
        self._commits = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writers = os.open(f"{self.path}-writers", os.O_RDWR | os.O_CREAT, 0o644)
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False, cached_statements=256)
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise Unavailable(f"{self.path}: cannot switch the store to WAL mode")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpoint()
            with self.transaction() as db:
                _ensure_schema(db, self.path)
        except (OSError, sqlite3.Error) as err:
            raise Unavailable(f"cannot open store {self.path}: {err}") from err

    def close(self) -> None:
        with self._lock:
            if self._commits:
                self.checkpoint()
            self._db.close()
            os.close(self._writers)

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (nested calls join the outer one); rolled back on any error."""
        return self._writer

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (and fsync), beside the writers, not before them.

        SQLite's automatic checkpoint would run inside a COMMIT, so every queued writer would
        wait for its fsync; each connection checkpoints every CHECKPOINT_EVERY commits instead,
        after its turn, and when it closes.
        """
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def query_one(self, sql: str, args: Sequence[object]) -> Any:
        """The first row of one SELECT (atomic on its own), inside a transaction or not."""
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.OperationalError as err:
                raise Unavailable(f"store {self.path}: {err}") from err

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs that see one commit."""
        with self._lock:
            if self._depth:
                yield self._db
                return
            self._execute("BEGIN")
            try:
                yield self._db
            except sqlite3.OperationalError as err:
                raise Unavailable(f"store {self.path}: {err}") from err
            finally:
                self._db.execute("COMMIT")

    def _execute(self, sql: str) -> None:
        try:
            self._db.execute(sql)
        except sqlite3.OperationalError as err:
            raise Unavailable(f"store {self.path}: {err}") from err

    # -- resources ----------------------------------------------------------------------------

    def revision(self) -> int:
        with self._lock:
            return _revision(self._db)

    def get(self, key: Key) -> Resource:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND "
                                   "namespace = ? AND name = ?",
                                   (key.kind, key.namespace, key.name)).fetchone()
        if row is None:
            raise NotFound(f"{key} not found")
        return _resource(row)

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ResourceList:
        with self.snapshot() as db:
            if namespace is None:
                rows = db.execute(f"SELECT {_COLUMNS} FROM resources WHERE kind = ? "
                                  "ORDER BY namespace, name", (kind,)).fetchall()
            else:
                rows = db.execute(f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND "
                                  "namespace = ? ORDER BY name", (kind, namespace)).fetchall()
            revision = _revision(db)
        items = (_resource(r) for r in rows)
        if selector is not None:
            items = (r for r in items if selector.matches(r.labels))
        return ResourceList(tuple(items), revision)

    def create(self, key: Key, body: Mapping[str, Any], lease: int | None = None) -> Resource:
        return self.commit([Create(key, body, lease)])[0]

    def update(self, key: Key, body: Mapping[str, Any], revision: int | None = None) -> Resource:
        return self.commit([Update(key, body, revision)])[0]

    def delete(self, key: Key, revision: int | None = None) -> Resource:
        return self.commit([Delete(key, revision)])[0]

    def commit(self, ops: Sequence[Op]) -> builtins.list[Resource]:
        with self.transaction() as db:
            self._expire_leases(db)
            before = _revision(db)
            written = [_apply(db, op) for op in ops]
            after = _revision(db)
            if self.history and before // COMPACT_EVERY != after // COMPACT_EVERY:
                _compact(db, after - self.history)
            return written

    # -- watch --------------------------------------------------------------------------------

    def events(self, watch: Watch, limit: int = 1000) -> builtins.list[Event]:
        with self.snapshot() as db:
            compacted = _meta(db, "compacted")
            if watch.since < compacted:
                raise Compacted(f"revision {watch.since} is compacted (history starts after "
                                f"{compacted})")
            sql = ("SELECT type, kind, namespace, name, body, revision, created, lease "
                   "FROM events WHERE revision > ?")
            args: list[Any] = [watch.since]
            if watch.kinds:
                sql += f" AND kind IN ({','.join('?' * len(watch.kinds))})"
                args += sorted(watch.kinds)
            rows = db.execute(sql + " ORDER BY revision LIMIT ?", [*args, limit]).fetchall()
        return [Event(EventType(r[0]), _resource(r[1:]), r[5]) for r in rows]

    def watch(self, watch: Watch, stop: threading.Event | None = None,
              poll: float = 0.05) -> Iterator[Event]:
        since = watch.since
        while stop is None or not stop.is_set():
            batch = self.events(Watch(since, watch.kinds))
            for event in batch:
                since = event.revision
                yield event
            if not batch:
                self._expire_due_leases()
                if stop is None:
                    time.sleep(poll)
                else:
                    stop.wait(poll)

    def compact(self, revision: int) -> None:
        """Forget the events up to `revision`; watches from before it get Compacted."""
        with self.transaction() as db:
            _compact(db, revision)

    # -- leases -------------------------------------------------------------------------------

    def grant_lease(self, ttl: float) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO leases (ttl, expires) VALUES (?, ?)",
                             (ttl, time.time() + ttl))
            return int(cur.lastrowid or 0)

    def keep_alive(self, lease: int) -> None:
        with self.transaction() as db:
            self._expire_leases(db)
            cur = db.execute("UPDATE leases SET expires = ? + ttl WHERE id = ?",
                             (time.time(), lease))
            if cur.rowcount == 0:
                raise NotFound(f"lease {lease} not found (expired or revoked)")

    def revoke_lease(self, lease: int) -> None:
        with self.transaction() as db:
            _end_lease(db, lease)

    def _expire_due_leases(self) -> None:
        with self._lock:
            due = self._db.execute("SELECT 1 FROM leases WHERE expires < ? LIMIT 1",
                                   (time.time(),)).fetchone()
        if due:
            with self.transaction() as db:
                self._expire_leases(db)

    def _expire_leases(self, db: sqlite3.Connection) -> None:
        for (lease,) in db.execute("SELECT id FROM leases WHERE expires < ?",
                                   (time.time(),)).fetchall():
            log.info("lease %s expired", lease)
            _end_lease(db, lease)

    # -- IPAM pools ---------------------------------------------------------------------------

    def ip_store(self, pool: str) -> SqliteIPStore:
        return SqliteIPStore(self, pool)

    def ip_pools(self) -> builtins.list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT pool FROM ip_reservations").fetchall()
        return sorted(r[0] for r in rows)


def _ensure_schema(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise Unavailable(f"store {path} has schema version {version}: written by a newer "
                          "podnet")
    if version < SCHEMA_VERSION:
        for statement in (SCHEMA + IP_SCHEMA).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _compact(db: sqlite3.Connection, revision: int) -> None:
    if revision <= 0:
        return
    db.execute("DELETE FROM events WHERE revision <= ?", (revision,))
    db.execute("INSERT INTO meta VALUES ('compacted', ?) ON CONFLICT (name) "
               "DO UPDATE SET value = max(value, excluded.value)", (revision,))


def _apply(db: sqlite3.Connection, op: Op) -> Resource:
    key = op.key
    row = db.execute(f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND namespace = ? AND "
                     "name = ?", (key.kind, key.namespace, key.name)).fetchone()
    if isinstance(op, Create):
        if row is not None:
            raise Conflict(f"{key} already exists")
        body = _dump(op.body)
        revision = _log(db, EventType.ADDED, key, body, None, op.lease)
        db.execute("INSERT INTO resources VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (key.kind, key.namespace, key.name, body, revision, revision, op.lease))
        return Resource(key, op.body, revision, revision, op.lease)
    if row is None:
        raise NotFound(f"{key} not found")
    current = _resource(row)
    if op.revision is not None and op.revision != current.revision:
        raise Conflict(f"{key} changed: at revision {current.revision}, not {op.revision}")
    if isinstance(op, Delete):
        _remove(db, current)
        return current
    body = _dump(op.body)
    revision = _log(db, EventType.MODIFIED, key, body, current.created, current.lease)
    db.execute("UPDATE resources SET body = ?, revision = ? WHERE kind = ? AND namespace = ? "
               "AND name = ?", (body, revision, key.kind, key.namespace, key.name))
    return Resource(key, op.body, revision, current.created, current.lease)


def _remove(db: sqlite3.Connection, current: Resource) -> None:
    key = current.key
    _log(db, EventType.DELETED, key, _dump(current.body), current.created, current.lease)
    db.execute("DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
               (key.kind, key.namespace, key.name))


def _end_lease(db: sqlite3.Connection, lease: int) -> None:
    rows = db.execute(f"SELECT {_COLUMNS} FROM resources WHERE lease = ? "
                      "ORDER BY kind, namespace, name", (lease,)).fetchall()
    for row in rows:
        _remove(db, _resource(row))
    db.execute("DELETE FROM leases WHERE id = ?", (lease,))


def _log(db: sqlite3.Connection, type_: EventType, key: Key, body: str, created: int | None,
         lease: int | None) -> int:
    """Append the event; its key is the new global revision (also `created` of a new object)."""
    cur = db.execute("INSERT INTO events (type, kind, namespace, name, body, created, lease) "
                     "VALUES (?, ?, ?, ?, ?, coalesce(?, (SELECT coalesce(max(seq), 0) + 1 "
                     "FROM sqlite_sequence WHERE name = 'events')), ?)",
                     (type_.value, key.kind, key.namespace, key.name, body, created, lease))
    return int(cur.lastrowid or 0)


def _revision(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return int(row[0]) if row else 0


def _meta(db: sqlite3.Connection, name: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def _resource(row: Sequence[Any]) -> Resource:
    kind, namespace, name, body, revision, created, lease = row
    return Resource(Key(kind, namespace, name), json.loads(body), revision, created, lease)


def _dump(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
