"""Keeps the node's nftables table equal to what the policies say about the pods wired here.

The desired state is computed, not patched: on every change of pods, namespaces, policies or
endpoints the agent rebuilds the cluster from its copy of the store, resolves it with the
engine (the one definition of semantics), renders the node's table and, if it differs from
the last one applied, sends the difference to the kernel in one transaction (`NodeTable`:
rendering is whole, programming is incremental). A CNI ADD runs the same path with its new
endpoint before it returns, so a pod that a policy selects is never reachable unguarded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Sequence

from podnet.agent.endpoints import KIND as ENDPOINT_KIND
from podnet.agent.endpoints import Endpoint
from podnet.agent.informer import Informer, Snapshot
from podnet.agent.metrics import Metrics
from podnet.agent.relevance import Copy, copy_of, only_policies_elsewhere, only_remote_pods
from podnet.datapath.nft import Json, NodeTable
from podnet.model import Cluster, Direction, Manifest, decode
from podnet.model.load import Decoded, assemble
from podnet.policy import Engine
from podnet.policy.nftables import NodePod, render
from podnet.store.base import Key, Resource, ResourceStore

log = logging.getLogger(__name__)

KINDS = ("Namespace", "Pod", "NetworkPolicy", ENDPOINT_KIND)


def desired_cluster(snapshot: Snapshot, endpoints: Iterable[Endpoint]) -> Cluster:
    """The cluster the store describes, each pod with the address its agent gave it."""
    return ClusterCache().cluster(snapshot, endpoints)


def _manifest(r: Resource) -> Manifest:
    return Manifest("store", r.kind, r.namespace or None, r.name, dict(r.body))


def with_addresses(cluster: Cluster, endpoints: Iterable[Endpoint]) -> Cluster:
    addresses = {ep.pod: (ep.ip,) for ep in endpoints if ep.pod}
    pods = tuple(dataclasses.replace(p, ips=addresses[p.key]) if p.key in addresses else p
                 for p in cluster.pods)
    return dataclasses.replace(cluster, pods=pods)


class ClusterCache:
    """`desired_cluster` without decoding again what did not change: each namespace, pod and
    policy is decoded once per revision. While a lab comes up every batch changes a pod, and
    decoding every object again each time was most of an agent's CPU (bench/lab.py)."""

    def __init__(self) -> None:
        self._decoded: dict[Key, tuple[int, Manifest, Decoded]] = {}

    def cluster(self, snapshot: Snapshot, endpoints: Iterable[Endpoint]) -> Cluster:
        decoded: dict[Key, tuple[int, Manifest, Decoded]] = {}
        for kind in ("Namespace", "Pod", "NetworkPolicy"):
            for key, r in snapshot[kind].items():
                cached = self._decoded.get(key)
                if cached is None or cached[0] != r.revision:
                    manifest = _manifest(r)
                    cached = r.revision, manifest, decode(manifest)
                decoded[key] = cached
        self._decoded = decoded
        return with_addresses(assemble([(m, obj) for _, m, obj in decoded.values()]), endpoints)


def local_pods(cluster: Cluster, endpoints: Iterable[Endpoint], node: str) -> list[NodePod]:
    """The pods wired on `node` that the cluster knows (a bare container is no pod)."""
    known = {p.key for p in cluster.pods if not p.host_network}
    return sorted((NodePod(ep.pod, ep.host_ifname, (ep.ip,)) for ep in endpoints
                   if ep.node == node and ep.pod in known), key=lambda n: n.ifname)


@dataclasses.dataclass(frozen=True)
class Rendered:
    """A node's table and what it was rendered for."""

    document: Json
    pods: list[str]  # the local pods, `ns/name`
    selected: dict[str, int]  # per direction, the local pods a policy isolates
    policies: frozenset[str]  # the policies that isolate at least one of them

    @property
    def isolated(self) -> bool:
        return any(self.selected.values())


def render_node(snapshot: Snapshot, node: str, extra: Sequence[Endpoint] = (),
                log_group: int | None = None) -> Json:
    return _render_node(snapshot, node, extra, log_group).document


def _render_node(snapshot: Snapshot, node: str, extra: Sequence[Endpoint],
                 log_group: int | None, cache: ClusterCache | None = None) -> Rendered:
    """The node's table, with what the metrics and the next batch's relevance need."""
    endpoints = [Endpoint.from_body(r.body) for r in snapshot[ENDPOINT_KIND].values()]
    endpoints += [ep for ep in extra if ep.name not in {e.name for e in endpoints}]
    cluster = (cache or ClusterCache()).cluster(snapshot, endpoints)
    local = local_pods(cluster, endpoints, node)
    res = Engine(cluster).resolution
    selected: dict[str, int] = {}
    policies: set[str] = set()
    for d in (Direction.INGRESS, Direction.EGRESS):
        isolating = [res.isolating_policies(d, int(res.class_of[res.pod_index[p.pod]]))
                     for p in local]
        selected[str(d).lower()] = sum(1 for names in isolating if names)
        policies.update(name for names in isolating for name in names)
    return Rendered(render(res, local, log_group=log_group), [p.pod for p in local], selected,
                    frozenset(policies))


class PolicySync:
    """The reconciler; also called by CNI ADD with the endpoint it is about to report."""

    def __init__(self, node: str, store: ResourceStore, log_group: int | None = None,
                 metrics: Metrics | None = None) -> None:
        self.node = node
        self.log_group = log_group  # NFLOG group of every counted decision (the flow log)
        self.metrics = metrics or Metrics()
        self._lock = threading.RLock()
        self.informer = Informer(store, KINDS, self, lock=self._lock)
        self._table = NodeTable()
        self._clusters = ClusterCache()
        self._rendered: Copy | None = None  # the store copy the table was last rendered from
        self._local: list[str] = []  # ... for these pods
        self._isolated = True  # ... whether a policy isolated one of them

    def __call__(self, snapshot: Snapshot, extra: Sequence[Endpoint] = ()) -> None:
        with self._lock:
            self.metrics.policies.set(len(snapshot["NetworkPolicy"]))
            if not extra and self._rendered is not None and (
                    only_policies_elsewhere(self._rendered, snapshot, self._local)
                    or (not self._isolated
                        and only_remote_pods(self._rendered, snapshot, self.node))):
                self._rendered = copy_of(snapshot)
                log.debug("policy: the change cannot touch this node's table")
                return
            started = time.perf_counter()
            made = _render_node(snapshot, self.node, extra, self.log_group, self._clusters)
            document = made.document
            self.metrics.policy_state(len(made.pods), made.selected, len(made.policies))
            rendered = time.perf_counter()
            if not self._table.holds(document):
                with self.metrics.applying(document):
                    sent = self._table.apply(document)
                log.info("policy: table applied (%d objects; render %.0f ms, nft %.0f ms): "
                         "%d commands", len(document["nftables"]), 1e3 * (rendered - started),
                         1e3 * (time.perf_counter() - rendered), sent)
            else:
                log.debug("policy: table unchanged (render %.0f ms)", 1e3 * (rendered - started))
            # What the table was made of: the next batch may be judged against it.
            self._rendered, self._local = ((copy_of(snapshot), made.pods) if not extra
                                           else (None, []))
            self._isolated = made.isolated

    def admit(self, endpoint: Endpoint) -> None:
        """Program the table for a pod being added, from the store as it is now."""
        with self._lock:
            self.informer.refresh()
            self(self.informer.snapshot(), [endpoint])

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(stop,), name="podnet-policy",
                                  daemon=True)
        thread.start()
        return thread

    def _run(self, stop: threading.Event) -> None:
        self.informer.run(stop)
