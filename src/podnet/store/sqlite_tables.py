"""The SQLite store's tables and the SQL on them: resources, their events, leases.

Every function here runs inside a transaction the caller holds (see sqlite.py): an object's
row and its event are always written together, which is what makes revisions gap-free and
a watch exact.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from podnet.store.base import (
    Conflict,
    Create,
    Delete,
    EventType,
    Key,
    NotFound,
    Op,
    Resource,
    Unavailable,
)
from podnet.store.sqlite_ip import SCHEMA as IP_SCHEMA

SCHEMA_VERSION = 1

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

COLUMNS = "kind, namespace, name, body, revision, created, lease"


def ensure_schema(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise Unavailable(f"store {path} has schema version {version}: written by a newer "
                          "podnet")
    if version < SCHEMA_VERSION:
        for statement in (SCHEMA + IP_SCHEMA).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def forget_events(db: sqlite3.Connection, revision: int) -> None:
    if revision <= 0:
        return
    db.execute("DELETE FROM events WHERE revision <= ?", (revision,))
    db.execute("INSERT INTO meta VALUES ('compacted', ?) ON CONFLICT (name) "
               "DO UPDATE SET value = max(value, excluded.value)", (revision,))


def apply_op(db: sqlite3.Connection, op: Op) -> Resource:
    key = op.key
    row = db.execute(f"SELECT {COLUMNS} FROM resources WHERE kind = ? AND namespace = ? AND "
                     "name = ?", (key.kind, key.namespace, key.name)).fetchone()
    if isinstance(op, Create):
        if row is not None:
            raise Conflict(f"{key} already exists")
        if op.lease is not None and db.execute("SELECT 1 FROM leases WHERE id = ?",
                                               (op.lease,)).fetchone() is None:
            # As etcd: an object under an ended lease would never be deleted.
            raise NotFound(f"{key}: lease {op.lease} not found (expired or revoked)")
        body = dump(op.body)
        revision = log_event(db, EventType.ADDED, key, body, None, op.lease)
        db.execute("INSERT INTO resources VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (key.kind, key.namespace, key.name, body, revision, revision, op.lease))
        return Resource(key, op.body, revision, revision, op.lease)
    if row is None:
        raise NotFound(f"{key} not found")
    current = resource_of(row)
    if op.revision is not None and op.revision != current.revision:
        raise Conflict(f"{key} changed: at revision {current.revision}, not {op.revision}")
    if isinstance(op, Delete):
        remove(db, current)
        return current
    body = dump(op.body)
    revision = log_event(db, EventType.MODIFIED, key, body, current.created, current.lease)
    db.execute("UPDATE resources SET body = ?, revision = ? WHERE kind = ? AND namespace = ? "
               "AND name = ?", (body, revision, key.kind, key.namespace, key.name))
    return Resource(key, op.body, revision, current.created, current.lease)


def remove(db: sqlite3.Connection, current: Resource) -> None:
    key = current.key
    log_event(db, EventType.DELETED, key, dump(current.body), current.created, current.lease)
    db.execute("DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
               (key.kind, key.namespace, key.name))


def end_lease(db: sqlite3.Connection, lease: int) -> None:
    rows = db.execute(f"SELECT {COLUMNS} FROM resources WHERE lease = ? "
                      "ORDER BY kind, namespace, name", (lease,)).fetchall()
    for row in rows:
        remove(db, resource_of(row))
    db.execute("DELETE FROM leases WHERE id = ?", (lease,))


def log_event(db: sqlite3.Connection, type_: EventType, key: Key, body: str, created: int | None,
         lease: int | None) -> int:
    """Append the event; its key is the new global revision (also `created` of a new object)."""
    cur = db.execute("INSERT INTO events (type, kind, namespace, name, body, created, lease) "
                     "VALUES (?, ?, ?, ?, ?, coalesce(?, (SELECT coalesce(max(seq), 0) + 1 "
                     "FROM sqlite_sequence WHERE name = 'events')), ?)",
                     (type_.value, key.kind, key.namespace, key.name, body, created, lease))
    return int(cur.lastrowid or 0)


def current_revision(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return int(row[0]) if row else 0


def meta(db: sqlite3.Connection, name: str) -> int:
    row = db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def resource_of(row: Sequence[Any]) -> Resource:
    kind, namespace, name, body, revision, created, lease = row
    return Resource(Key(kind, namespace, name), json.loads(body), revision, created, lease)


def dump(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
