"""What every store backend offers: Kubernetes-like resources with revisions, watch and leases.

The shape is etcd's, so that an etcd backend drops in beside SQLite: one global revision that
only grows, writes guarded by compare-and-swap on an object's revision (`resourceVersion`),
several writes committed together or not at all (`commit`, etcd's Txn), and leases with a TTL
whose expiry deletes the objects attached to them. Agents reconcile from `list` + `watch`.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from podnet.errors import PodnetError
from podnet.model import LabelSelector

if TYPE_CHECKING:
    import threading

    from podnet.ipam.reservations import IPStore


class StoreError(PodnetError):
    """A store operation that cannot be done."""


class NotFound(StoreError, LookupError):
    """The object (or lease) does not exist."""


class Conflict(StoreError):
    """A compare-and-swap lost: the object exists already, or changed since it was read."""


class Unavailable(StoreError):
    """The store cannot be reached or opened, or stayed locked for too long."""


class Compacted(StoreError):
    """A watch asked for a revision older than the history the store still keeps."""


class EventType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Key:
    """Where an object lives; `namespace` is "" for cluster-scoped kinds (Namespace, Node)."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True)
class Resource:
    """One stored object: its key, its JSON body, and the revision that last wrote it."""

    key: Key
    body: Mapping[str, Any]
    revision: int
    created: int
    lease: int | None = None

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def namespace(self) -> str:
        return self.key.namespace

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def labels(self) -> dict[str, str]:
        meta = self.body.get("metadata") or {}
        return dict(meta.get("labels") or {})

    def manifest(self) -> dict[str, Any]:
        """The body as `get -o json` shows it: with `metadata.resourceVersion`."""
        body = dict(self.body)
        meta = dict(body.get("metadata") or {})
        meta["resourceVersion"] = str(self.revision)
        body["metadata"] = meta
        return body


@dataclass(frozen=True)
class Event:
    """A change seen by a watch; a DELETED event carries the object as it was last stored."""

    type: EventType
    resource: Resource
    revision: int


@dataclass(frozen=True)
class ResourceList:
    """The objects of a list, and the revision they were read at (where a watch resumes)."""

    items: tuple[Resource, ...]
    revision: int


@dataclass(frozen=True)
class Create:
    """Create `key`; fails with Conflict if it exists (etcd: compare create_revision == 0)."""

    key: Key
    body: Mapping[str, Any]
    lease: int | None = None


@dataclass(frozen=True)
class Update:
    """Replace `key`'s body; with `revision`, only if the object is still at that revision."""

    key: Key
    body: Mapping[str, Any]
    revision: int | None = None


@dataclass(frozen=True)
class Delete:
    """Delete `key`; with `revision`, only if the object is still at that revision."""

    key: Key
    revision: int | None = None


Op = Create | Update | Delete


@dataclass(frozen=True)
class Watch:
    """What a watch follows: changes after `since`, of `kinds` (every kind if empty)."""

    since: int
    kinds: frozenset[str] = field(default_factory=frozenset)


class SingleWrites:
    """create, update and delete as one-operation commits, for any backend's `commit`."""

    def commit(self, ops: Sequence[Op]) -> builtins.list[Resource]:
        raise NotImplementedError

    def create(self, key: Key, body: Mapping[str, Any], lease: int | None = None) -> Resource:
        return self.commit([Create(key, body, lease)])[0]

    def update(self, key: Key, body: Mapping[str, Any], revision: int | None = None) -> Resource:
        return self.commit([Update(key, body, revision)])[0]

    def delete(self, key: Key, revision: int | None = None) -> Resource:
        return self.commit([Delete(key, revision)])[0]


@runtime_checkable
class ChangeWaiter(Protocol):
    """A store that can tell a watcher when to look again, instead of being polled."""

    def wait(self, since: int, timeout: float) -> None:
        """Return when the store may hold changes after revision `since`, or after `timeout`."""
        ...


class ResourceStore(Protocol):
    """Objects keyed by (kind, namespace, name), versioned by one global revision."""

    def revision(self) -> int:
        """The store's current revision (0 when nothing was ever written)."""
        ...

    def get(self, key: Key) -> Resource:
        """The object at `key`; NotFound if there is none."""
        ...

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ResourceList:
        """Objects of a kind, in one namespace (None: all), whose labels match `selector`."""
        ...

    def commit(self, ops: Sequence[Op]) -> builtins.list[Resource]:
        """Apply `ops` atomically: all, or none (Conflict or NotFound names the first failure).

        Returns the written objects in order (for a Delete: the object as it was).
        """
        ...

    def create(self, key: Key, body: Mapping[str, Any], lease: int | None = None) -> Resource:
        ...

    def update(self, key: Key, body: Mapping[str, Any], revision: int | None = None) -> Resource:
        ...

    def delete(self, key: Key, revision: int | None = None) -> Resource:
        ...

    def events(self, watch: Watch, limit: int = 1000) -> builtins.list[Event]:
        """Changes after `watch.since`, oldest first, without waiting; Compacted if forgotten."""
        ...

    def watch(self, watch: Watch, stop: threading.Event | None = None,
              poll: float = 0.05) -> Iterator[Event]:
        """Every change after `watch.since`, exactly once and in order, until `stop` is set."""
        ...

    def grant_lease(self, ttl: float) -> int:
        """A new lease that expires `ttl` seconds from now unless kept alive."""
        ...

    def keep_alive(self, lease: int) -> None:
        """Restart the lease's TTL; NotFound if it has expired or was revoked."""
        ...

    def revoke_lease(self, lease: int) -> None:
        """End the lease now, deleting the objects attached to it (absent lease: no-op)."""
        ...


class Store(ResourceStore, Protocol):
    """A whole backend: resources, and the address reservations of IPAM pools."""

    url: str

    def ip_store(self, pool: str) -> IPStore:
        """The reservations of one address pool (a node's subnet)."""
        ...

    def ip_pools(self) -> builtins.list[str]:
        """Pools that hold reservations."""
        ...

    def close(self) -> None:
        ...

    def __enter__(self) -> Self:
        ...

    def __exit__(self, *exc: object) -> None:
        ...


def modify(store: ResourceStore, key: Key,
           change: Callable[[dict[str, Any]], None], attempts: int = 50) -> Resource:
    """Read, change a copy of the body, write back if nothing changed meanwhile; retry if it did.

    The read-modify-write every controller does (client-go's RetryOnConflict). NotFound if
    the object does not exist.
    """
    for _ in range(attempts):
        current = store.get(key)
        body = copy.deepcopy(dict(current.body))
        change(body)
        if body == current.body:
            return current
        try:
            return store.update(key, body, current.revision)
        except Conflict:
            continue
    raise Conflict(f"{key} kept changing: gave up after {attempts} attempts")
