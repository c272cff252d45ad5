"""The agent's node lease: created under a store lease, renewed in the background, revoked on stop.

Renewal runs on its own thread with its own store connection, so that a store that hangs
(etcd without quorum: every call waits for its timeout) delays neither CNI ADD nor the policy
sync. A failed renewal is logged and tried again at the next interval. A store lease that
ended meanwhile (it expired while the store was unreachable or the agent frozen) is replaced
by a new one and the object created again: the agent never needs a restart for that.

The lease says only whether the agent is alive. Its expiry withdraws nothing: the node keeps
its subnet lease, and other nodes keep their routes to it (docs/store.md, "Node liveness").
"""

from __future__ import annotations

import datetime
import logging
import threading
from contextlib import suppress
from typing import TYPE_CHECKING

from podnet.model import nodelease
from podnet.model.nodelease import NodeLease
from podnet.store import Key, NotFound, ResourceStore, StoreError

if TYPE_CHECKING:  # the CLI reads node leases without loading prometheus_client
    from podnet.agent.metrics import Metrics

log = logging.getLogger(__name__)


class NodeLeaseKeeper:
    """Holds `node`'s Lease: renews it every `interval` seconds; its TTL is `duration`. Each
    renewal, done or failed, is counted in `metrics`."""

    def __init__(self, store: ResourceStore, node: str, duration: int, interval: float,
                 metrics: Metrics) -> None:
        self.store = store
        self.node = node
        self.duration = duration
        self.interval = interval
        self.metrics = metrics
        self.key = Key(nodelease.KIND, nodelease.NAMESPACE, node)
        self._lease: int | None = None  # the store lease the object lives under
        self._object: NodeLease | None = None
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        """Take the lease now (before the agent serves), then renew it until `stop` is set."""
        self._try_renew()
        self._thread = threading.Thread(target=self._run, args=(stop,), name="node-lease",
                                        daemon=True)
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self._try_renew()

    def _try_renew(self) -> None:
        try:
            renewed = self.renew()
        except StoreError as err:
            self.metrics.lease_renewed(None)
            log.warning("node %s: lease not renewed (%s); trying again in %.1f s",
                        self.node, err, self.interval)
        else:
            self.metrics.lease_renewed(renewed.renew_time)

    def renew(self) -> NodeLease:
        """Keep the store lease alive and record the renewal; take a new lease if it ended.
        The lease as written."""
        now = datetime.datetime.now(datetime.UTC)
        if self._lease is not None and self._object is not None:
            try:
                self.store.keep_alive(self._lease)
            except NotFound:
                log.warning("node %s: store lease %d ended (expired); taking a new one",
                            self.node, self._lease)
                self._lease = None
            else:
                renewed = self._object.renewed(now)
                try:
                    self.store.update(self.key, renewed.body())
                except NotFound:  # the object alone was deleted (`podnet delete lease`)
                    self.store.create(self.key, renewed.body(), self._lease)
                self._object = renewed
                return renewed
        return self._acquire(now)

    def _acquire(self, now: datetime.datetime) -> NodeLease:
        """A new store lease, and the object under it (an earlier agent's goes first)."""
        delete_node_lease(self.store, self.node)
        lease = self.store.grant_lease(self.duration)
        created = NodeLease(self.node, self.duration, now, now)
        self.store.create(self.key, created.body(), lease)
        self._lease, self._object = lease, created
        log.info("node %s: holds node lease %d (%d s, renewed every %.1f s)",
                 self.node, lease, self.duration, self.interval)
        return created

    def release(self) -> None:
        """Clean shutdown: wait for the renewal thread, then end the lease (NotReady at once)."""
        if self._thread is not None:
            self._thread.join()
        if self._lease is None:
            return
        try:
            self.store.revoke_lease(self._lease)
        except StoreError as err:
            log.warning("node %s: lease %d not revoked (%s); it expires in %d s",
                        self.node, self._lease, err, self.duration)
        self._lease = None


def node_leases(store: ResourceStore) -> dict[str, NodeLease]:
    """Every node's Lease, by node: what `get nodes` and the report judge readiness from."""
    return {r.name: NodeLease.from_body(r.body)
            for r in store.list(nodelease.KIND, nodelease.NAMESPACE).items}


def delete_node_lease(store: ResourceStore, node: str) -> None:
    """End `node`'s Lease and the store lease it lives under, if any (NotReady at once)."""
    with suppress(NotFound):
        current = store.get(Key(nodelease.KIND, nodelease.NAMESPACE, node))
        if current.lease is not None:
            store.revoke_lease(current.lease)  # deletes the object with it
        else:
            store.delete(current.key)
