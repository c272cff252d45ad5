"""A local copy of some kinds of the store, kept by list + watch, as Kubernetes informers do.

Reconcilers do not follow events one by one: after each batch of changes (everything the
store had to say at that moment) they get the whole, current copy and compute what the
kernel should hold. So a burst of changes costs one reconciliation, and a relist (after a
compacted history or a lost store) is the same code path as any other change. While batches
follow each other within BURST seconds, the informer waits COALESCE before the next read: a
lab coming up commits every 15 ms or so, and each informer of each agent woke and reconciled
after nearly every commit. A change after a quiet moment is read at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from types import MappingProxyType

from podnet.store.base import (
    ChangeWaiter,
    Compacted,
    EventType,
    Key,
    Resource,
    ResourceStore,
    StoreError,
    Watch,
)

log = logging.getLogger(__name__)

Snapshot = Mapping[str, Mapping[Key, Resource]]  # kind -> key -> object
IDLE_CHECK = 0.5  # seconds a store that signals changes may stay silent before we look anyway
COALESCE = 0.1  # seconds between two reads at least, while in a burst of changes
BURST = 2 * COALESCE  # a batch this soon after the last one: a burst (the wait included)


class Informer:
    """Keeps `kinds` of `store` in memory and calls `on_change(snapshot)` after every batch."""

    def __init__(self, store: ResourceStore, kinds: Iterable[str],
                 on_change: Callable[[Snapshot], None], poll: float = 0.05,
                 retry: float = 1.0, lock: AbstractContextManager[object] | None = None) -> None:
        self.store = store
        self.kinds = frozenset(kinds)
        self.on_change = on_change
        self.poll = poll
        self.retry = retry
        # Held while the copy changes and while on_change runs: others may drain() under it.
        self.lock = lock if lock is not None else threading.RLock()
        self._objects: dict[str, dict[Key, Resource]] = {k: {} for k in self.kinds}
        self.revision = 0
        self._listed = False

    def snapshot(self) -> Snapshot:
        return MappingProxyType({k: MappingProxyType(v) for k, v in self._objects.items()})

    def relist(self) -> None:
        # Events after the revision read first are replayed over the lists: applying an
        # object's change twice is harmless, missing one is not.
        revision = self.store.revision()
        for kind in self.kinds:
            self._objects[kind] = {r.key: r for r in self.store.list(kind).items}
        self.revision = revision
        self._listed = True

    def refresh(self) -> None:
        """Catch up with the store now (from the caller's thread, under `lock`)."""
        with self.lock:
            if self._listed:
                try:
                    self.drain()
                    return
                except Compacted:
                    pass
            self.relist()

    def drain(self) -> bool:
        """Apply everything the store has after our revision; True if anything changed."""
        changed = False
        while True:
            head = self.store.revision()
            events = self.store.events(Watch(self.revision, self.kinds))
            if not events:
                # Nothing of our kinds up to `head` (read first): later waits start there.
                self.revision = max(self.revision, head)
                return changed
            for event in events:
                objects = self._objects[event.resource.kind]
                if event.type is EventType.DELETED:
                    objects.pop(event.resource.key, None)
                else:
                    objects[event.resource.key] = event.resource
                self.revision = event.revision
            changed = True

    def run(self, stop: threading.Event) -> None:
        """List and reconcile, then reconcile after each batch of changes, until `stop`.

        A failed reconciliation is tried again after `retry` seconds even without changes.
        """
        failed = busy = False
        last = float("-inf")  # when the last batch of changes was reconciled
        while not stop.is_set():
            try:
                with self.lock:
                    if not self._listed:
                        self.relist()
                        failed = not self._notify()
                    elif self.drain() or failed:
                        busy, last = time.monotonic() - last < BURST, time.monotonic()
                        failed = not self._notify()
            except Compacted:
                log.warning("watch history compacted at %d: listing again", self.revision)
                self._listed = False
                continue
            except StoreError as err:
                log.warning("store: %s; retrying in %.1fs", err, self.retry)
                stop.wait(self.retry)
                continue
            if failed or not isinstance(self.store, ChangeWaiter):
                stop.wait(self.retry if failed else self.poll)
            else:
                if busy:  # batches follow each other closely: let the next one gather
                    stop.wait(COALESCE)
                self.store.wait(self.revision, IDLE_CHECK)

    def _notify(self) -> bool:
        try:
            self.on_change(self.snapshot())
        except Exception:  # logged and retried: the agent must keep serving
            log.exception("reconciliation failed; retrying")
            return False
        return True
