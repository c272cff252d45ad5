"""IPAM reservations in the SQLite store: the `IPStore` of one pool.

Duplicates are impossible by construction: the address is the primary key of its pool, and
an attachment may hold one address per pool (UNIQUE index), both checked by SQLite inside
the allocator's `BEGIN IMMEDIATE` transaction. The round-robin cursor host-local keeps in a
`last_reserved_ip` file is a row of `ip_cursors`, written in the same transaction.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from podnet.ipam.errors import AlreadyAllocated
from podnet.ipam.reservations import Attachment, Reservation
from podnet.model import IPAddress

if TYPE_CHECKING:
    from podnet.store.sqlite import SqliteStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS ip_reservations (
    pool TEXT NOT NULL, ip TEXT NOT NULL,
    container_id TEXT NOT NULL, ifname TEXT NOT NULL, pod TEXT,
    PRIMARY KEY (pool, ip)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS ip_reservations_owner
    ON ip_reservations (pool, container_id, ifname);
CREATE TABLE IF NOT EXISTS ip_cursors (
    pool TEXT NOT NULL, range_id TEXT NOT NULL, ip TEXT NOT NULL,
    PRIMARY KEY (pool, range_id)
) WITHOUT ROWID;
"""


class SqliteIPStore:
    """The reservations of `pool`, kept in the store's database."""

    def __init__(self, store: SqliteStore, pool: str) -> None:
        self._store = store
        self.pool = pool

    def transaction(self) -> AbstractContextManager[object]:
        return self._store.transaction()

    def reserve(self, attachment: Attachment, ip: IPAddress, range_id: str,
                pod: str | None = None) -> bool:
        text = str(ip)
        with self._store.transaction() as db:
            try:
                cur = db.execute(
                    "INSERT INTO ip_reservations VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (pool, ip) DO NOTHING",
                    (self.pool, text, attachment.container_id, attachment.ifname, pod))
            except sqlite3.IntegrityError as err:
                raise AlreadyAllocated(f"{attachment} already holds an address in "
                                       f"{self.pool}") from err
            if cur.rowcount == 0:
                return False
            db.execute("INSERT INTO ip_cursors VALUES (?, ?, ?) ON CONFLICT (pool, range_id) "
                       "DO UPDATE SET ip = excluded.ip", (self.pool, range_id, text))
            return True

    def last_reserved(self, range_id: str) -> IPAddress | None:
        row = self._store.query_one(
            "SELECT ip FROM ip_cursors WHERE pool = ? AND range_id = ?", (self.pool, range_id))
        return ipaddress.ip_address(row[0]) if row else None

    def get_by_owner(self, attachment: Attachment) -> list[IPAddress]:
        row = self._store.query_one(
            "SELECT ip FROM ip_reservations WHERE pool = ? AND container_id = ? AND ifname = ?",
            (self.pool, attachment.container_id, attachment.ifname))
        return [ipaddress.ip_address(row[0])] if row else []

    def release_by_owner(self, attachment: Attachment) -> list[IPAddress]:
        with self._store.transaction() as db:
            rows = db.execute("DELETE FROM ip_reservations WHERE pool = ? AND container_id = ? "
                              "AND ifname = ? RETURNING ip",
                              (self.pool, attachment.container_id, attachment.ifname)).fetchall()
        return [ipaddress.ip_address(r[0]) for r in rows]

    def reservations(self) -> Iterator[Reservation]:
        with self._store.snapshot() as db:
            rows = db.execute("SELECT ip, container_id, ifname, pod FROM ip_reservations "
                              "WHERE pool = ?", (self.pool,)).fetchall()
        found = [Reservation(ipaddress.ip_address(ip), Attachment(cid, ifname), pod)
                 for ip, cid, ifname, pod in rows]
        return iter(sorted(found, key=lambda r: (r.ip.version, r.ip)))
