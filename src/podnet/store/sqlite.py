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
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from podnet.model import LabelSelector
from podnet.store.base import (
    Compacted,
    Event,
    EventType,
    Key,
    NotFound,
    Op,
    Resource,
    ResourceList,
    SingleWrites,
    Unavailable,
    Watch,
)
from podnet.store.checkpoint import Checkpointer
from podnet.store.notify import DirectoryWatch
from podnet.store.sqlite_ip import SqliteIPStore
from podnet.store.sqlite_tables import (
    COLUMNS,
    apply_op,
    current_revision,
    end_lease,
    ensure_schema,
    forget_events,
    meta,
    resource_of,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
# Events older than HISTORY revisions are forgotten, checked every COMPACT_EVERY revisions;
# a watch from before then gets Compacted and lists again (as from etcd after compaction).
HISTORY = 100_000
COMPACT_EVERY = 1_000
CHECKPOINT_EVERY = 500  # commits of one connection; the WAL stays under a few MB
RECHECK = 0.25  # seconds a waiter sleeps at most between two looks at the revision
FIRST_RECHECK = 0.002  # ... and at first, doubled up to RECHECK (SqliteStore.wait)


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
                s._checkpointer.request()
        finally:
            s._lock.release()


class SqliteStore(SingleWrites):
    """A store in one SQLite file; one connection per instance, usable from several threads."""

    def __init__(self, path: str | Path, url: str | None = None, history: int = HISTORY) -> None:
        self.path = Path(path)
        self.history = history
        self.url = url or f"sqlite://{self.path.absolute()}"
        self._lock = threading.RLock()
        self._depth = 0
        self._writer = _Writer(self)
        self._commits = 0
        self._checkpointer = Checkpointer(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writers = os.open(f"{self.path}-writers", os.O_RDWR | os.O_CREAT, 0o644)
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False, cached_statements=256)
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise Unavailable(f"{self.path}: cannot switch the store to WAL mode")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpoint.py
            with self.transaction() as db:
                ensure_schema(db, self.path)
        except (OSError, sqlite3.Error) as err:
            with contextlib.suppress(AttributeError):
                self._db.close()
            with contextlib.suppress(AttributeError):
                os.close(self._writers)
            raise Unavailable(f"cannot open store {self.path}: {err}") from err

    def close(self) -> None:
        with self._lock:
            self._checkpointer.close()
            if self._commits:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
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
            return current_revision(self._db)

    def get(self, key: Key) -> Resource:
        with self._lock:
            row = self._db.execute(f"SELECT {COLUMNS} FROM resources WHERE kind = ? AND "
                                   "namespace = ? AND name = ?",
                                   (key.kind, key.namespace, key.name)).fetchone()
        if row is None:
            raise NotFound(f"{key} not found")
        return resource_of(row)

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ResourceList:
        with self.snapshot() as db:
            if namespace is None:
                rows = db.execute(f"SELECT {COLUMNS} FROM resources WHERE kind = ? "
                                  "ORDER BY namespace, name", (kind,)).fetchall()
            else:
                rows = db.execute(f"SELECT {COLUMNS} FROM resources WHERE kind = ? AND "
                                  "namespace = ? ORDER BY name", (kind, namespace)).fetchall()
            revision = current_revision(db)
        items = (resource_of(r) for r in rows)
        if selector is not None:
            items = (r for r in items if selector.matches(r.labels))
        return ResourceList(tuple(items), revision)

    def commit(self, ops: Sequence[Op]) -> builtins.list[Resource]:
        with self.transaction() as db:
            self._expire_leases(db)
            before = current_revision(db)
            written = [apply_op(db, op) for op in ops]
            after = current_revision(db)
            if self.history and before // COMPACT_EVERY != after // COMPACT_EVERY:
                forget_events(db, after - self.history)
            return written

    # -- watch --------------------------------------------------------------------------------

    def events(self, watch: Watch, limit: int = 1000) -> builtins.list[Event]:
        with self.snapshot() as db:
            compacted = meta(db, "compacted")
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
        return [Event(EventType(r[0]), resource_of(r[1:]), r[5]) for r in rows]

    def wait(self, since: int, timeout: float) -> None:
        """Sleep until the store holds changes after `since` (a commit), or `timeout`.

        inotify wakes us when the `-wal` file is written, but a commit becomes visible a moment
        later (SQLite then publishes it in the memory-mapped `-shm`, which raises no event): a
        reader between the two sees nothing new and would sleep through the commit (as would one
        whose watch began just after the write). So after the watch begins and after each
        wake-up the revision is looked at again soon (FIRST_RECHECK), then less and less often,
        every RECHECK seconds at least.
        """
        deadline = time.monotonic() + timeout
        if self.revision() > since:
            return
        watcher = DirectoryWatch(self.path.parent, self.path.name)
        pause = FIRST_RECHECK
        try:
            while self.revision() <= since and (left := deadline - time.monotonic()) > 0:
                woke = watcher.wait(min(left, pause))
                pause = FIRST_RECHECK if woke else min(2 * pause, RECHECK)
        finally:
            watcher.close()

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
            forget_events(db, revision)

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
            end_lease(db, lease)

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
            end_lease(db, lease)

    # -- IPAM pools ---------------------------------------------------------------------------

    def ip_store(self, pool: str) -> SqliteIPStore:
        return SqliteIPStore(self, pool)

    def ip_pools(self) -> builtins.list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT pool FROM ip_reservations").fetchall()
        return sorted(r[0] for r in rows)

