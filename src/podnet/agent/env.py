"""What every CNI handler works with: the node's address pool, its endpoints, its kernel handle.

One `Env` per agent. Handlers run on worker threads: each thread gets its own rtnetlink handle
in the agent's namespace (the node), and an attachment's ADD, DEL and CHECK are serialised by a
striped lock, while different attachments proceed in parallel. The store and IPAM transactions
keep addresses unique across threads and across agents sharing a store.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress

from pyroute2 import IPRoute

from podnet import ipam
from podnet.agent.endpoints import KIND, Endpoint, endpoint_name
from podnet.agent.metrics import Metrics
from podnet.datapath.netns import assert_not_root, current_netns
from podnet.datapath.rtnl import Rtnl, open_rtnl
from podnet.store import Conflict, Key, NotFound, Store

LOCK_STRIPES = 64


class Env:
    """The agent's state shared by the handlers of one node."""

    def __init__(self, node: str, store: Store, lease: ipam.SubnetLease, mtu: int) -> None:
        self.node = node
        self.store = store
        self.lease = lease
        self.mtu = mtu
        self.allocator = ipam.pod_allocator(store, lease)
        self.metrics = Metrics()
        self.metrics.watch_ipam(self.allocator)
        # Called by ADD with its endpoint before it returns: the node's policy for the pod.
        self.admit: Callable[[Endpoint], None] = lambda endpoint: None
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._local = threading.local()
        self._handles: list[IPRoute] = []
        self._batches: list[Rtnl] = []
        self._handles_lock = threading.Lock()

    def rtnl(self) -> IPRoute:
        """This thread's rtnetlink handle in the node (the agent's own namespace)."""
        handle: IPRoute | None = getattr(self._local, "rtnl", None)
        if handle is None:
            assert_not_root(current_netns())
            handle = IPRoute(groups=0)
            self._local.rtnl = handle
            with self._handles_lock:
                self._handles.append(handle)
        return handle

    def netlink(self) -> Rtnl:
        """This thread's batch socket in the node, for the hot path of ADD."""
        handle: Rtnl | None = getattr(self._local, "netlink", None)
        if handle is None:
            handle = open_rtnl()
            self._local.netlink = handle
            with self._handles_lock:
                self._batches.append(handle)
        return handle

    @contextmanager
    def attachment_lock(self, container_id: str, ifname: str) -> Iterator[None]:
        stripe = zlib.crc32(endpoint_name(container_id, ifname).encode()) % LOCK_STRIPES
        with self._stripes[stripe]:
            yield

    @contextmanager
    def all_attachments_locked(self) -> Iterator[None]:
        """GC runs alone: no ADD may be half-way while reservations are compared."""
        with ExitStack() as stack:
            for lock in self._stripes:
                stack.enter_context(lock)
            yield

    def endpoint(self, container_id: str, ifname: str) -> Endpoint | None:
        try:
            resource = self.store.get(Key(KIND, "", endpoint_name(container_id, ifname)))
        except NotFound:
            return None
        return Endpoint.from_body(resource.body)

    def endpoints(self) -> list[Endpoint]:
        """The endpoints this node's agent recorded."""
        found = (Endpoint.from_body(r.body) for r in self.store.list(KIND).items)
        return [ep for ep in found if ep.node == self.node]

    def record(self, ep: Endpoint) -> None:
        key = Key(KIND, "", ep.name)
        try:
            self.store.create(key, ep.body())
        except Conflict:  # a record left by an ADD that failed after writing it
            self.store.update(key, ep.body())

    def forget(self, container_id: str, ifname: str) -> None:
        with suppress(NotFound):
            self.store.delete(Key(KIND, "", endpoint_name(container_id, ifname)))

    def close(self) -> None:
        with self._handles_lock:
            for handle in self._handles:
                handle.close()
            for batch in self._batches:
                batch.close()
            self._handles.clear()
            self._batches.clear()
