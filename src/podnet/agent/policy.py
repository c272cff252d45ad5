"""Keeps the node's nftables table equal to what the policies say about the pods wired here.

The desired state is computed, not patched: on every change of pods, namespaces, policies or
endpoints the agent rebuilds the cluster from its copy of the store, resolves it with the
engine (the one definition of semantics), renders the node's table and, if it differs from
the last one applied, sends the difference to the kernel in one transaction (`NodeTable`:
rendering is whole, programming is incremental). A CNI ADD runs the same path with its new
endpoint before it returns, so a pod that a policy selects is never reachable unguarded.

The cluster is first built from the node's own pods alone (with every namespace and policy):
whether a pod is isolated depends on nothing but the pod and the policies, so the engine
tells from that small cluster whether one of them is. While none is, the table holds only
the node's pods' veths and addresses, and that small render is the table; only when a
policy isolates a local pod are peers needed, and the whole cluster is rendered.
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
from podnet.agent.relevance import Copy, copy_of, only_policies_elsewhere
from podnet.datapath.nft import Json, NodeTable
from podnet.model import Cluster, Direction, Manifest, decode
from podnet.model.load import Decoded, assemble
from podnet.policy import Engine
from podnet.policy.nftables import ChainCache, NodePod, render
from podnet.policy.selection import PodSelection
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
    """`desired_cluster` without decoding again what did not change: each namespace, pod,
    policy and endpoint is decoded once per revision. While a lab comes up every batch changes
    a pod, and decoding every object again each time was most of an agent's CPU
    (bench/lab.py)."""

    def __init__(self) -> None:
        self._decoded: dict[Key, tuple[int, Manifest, Decoded]] = {}
        self._endpoints: dict[Key, tuple[int, Endpoint]] = {}
        # The last cluster's selectors over its pods, and the policy chains compiled with
        # them: reused while the pods and namespaces stay the same (a policy change).
        self.selection: PodSelection | None = None
        self.chains = ChainCache()

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

    def endpoints(self, snapshot: Snapshot, node: str | None = None) -> dict[str, Endpoint]:
        """The endpoints of `snapshot` (only `node`'s, if given), by name."""
        decoded = {}
        for key, r in snapshot[ENDPOINT_KIND].items():
            if node is None or (r.body.get("spec") or {}).get("node") == node:
                cached = self._endpoints.get(key)
                if cached is None or cached[0] != r.revision:
                    cached = r.revision, Endpoint.from_body(r.body)
                decoded[key] = cached
        self._endpoints = decoded
        return {ep.name: ep for _, ep in decoded.values()}


def local_pods(cluster: Cluster, endpoints: Iterable[Endpoint]) -> list[NodePod]:
    """The pods of a node's `endpoints` that the cluster knows (a bare container is no pod)."""
    known = {p.key for p in cluster.pods if not p.host_network}
    return sorted((NodePod(ep.pod, ep.host_ifname, (ep.ip,)) for ep in endpoints
                   if ep.pod in known), key=lambda n: n.ifname)


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
    view = local_view(snapshot, node, extra)
    made = render_local(view, log_group) or render_whole(snapshot, node, extra, log_group)
    return made.document


@dataclasses.dataclass(frozen=True)
class LocalView:
    """What decides whether a policy isolates one of the node's pods: its endpoints, their
    pods, every namespace and policy (`objects`, a snapshot of those alone)."""

    endpoints: frozenset[Endpoint]
    objects: dict[str, dict[Key, Resource]]

    def inputs(self) -> tuple[frozenset[Endpoint], dict[Key, int]]:
        """Equal for two views whose small renders are equal."""
        return self.endpoints, {key: r.revision for objects in self.objects.values()
                                for key, r in objects.items()}


def local_view(snapshot: Snapshot, node: str, extra: Sequence[Endpoint] = (),
               cache: ClusterCache | None = None) -> LocalView:
    endpoints = _with_extra((cache or ClusterCache()).endpoints(snapshot, node),
                            [ep for ep in extra if ep.node == node])
    pods = snapshot["Pod"]
    local = {}
    for ep in endpoints.values():
        if ep.pod is not None:
            key = Key("Pod", ep.pod_namespace, ep.pod_name)
            if key in pods:
                local[key] = pods[key]
    return LocalView(frozenset(endpoints.values()),
                     {"Namespace": dict(snapshot["Namespace"]), "Pod": local,
                      "NetworkPolicy": dict(snapshot["NetworkPolicy"])})


def render_local(view: LocalView, log_group: int | None,
                 cache: ClusterCache | None = None) -> Rendered | None:
    """The node's table from its own pods alone, or None when a policy isolates one of them
    (then the table needs every pod: peers). Equal to the whole cluster's render otherwise:
    with no isolated pod, the table holds the local veths and addresses and nothing else."""
    cache = cache or ClusterCache()
    made = _rendered(cache.cluster(view.objects, view.endpoints), view.endpoints, log_group,
                     cache)
    return None if made.isolated else made


def render_whole(snapshot: Snapshot, node: str, extra: Sequence[Endpoint],
                 log_group: int | None, cache: ClusterCache | None = None) -> Rendered:
    """The node's table from the whole cluster, with what the metrics and the next batch's
    relevance need."""
    cache = cache or ClusterCache()
    endpoints = _with_extra(cache.endpoints(snapshot), extra).values()
    return _rendered(cache.cluster(snapshot, endpoints),
                     [ep for ep in endpoints if ep.node == node], log_group, cache)


def _with_extra(endpoints: dict[str, Endpoint], extra: Iterable[Endpoint]
                ) -> dict[str, Endpoint]:
    """The store's endpoints and an ADD's, which the store does not hold yet."""
    endpoints.update((ep.name, ep) for ep in extra if ep.name not in endpoints)
    return endpoints


def _rendered(cluster: Cluster, local_endpoints: Iterable[Endpoint], log_group: int | None,
              cache: ClusterCache) -> Rendered:
    local = local_pods(cluster, local_endpoints)
    res = Engine(cluster, cache.selection).resolution
    cache.selection = res.selection
    selected: dict[str, int] = {}
    policies: set[str] = set()
    for d in (Direction.INGRESS, Direction.EGRESS):
        isolating = [res.isolating_policies(d, int(res.class_of[res.pod_index[p.pod]]))
                     for p in local]
        selected[str(d).lower()] = sum(1 for names in isolating if names)
        policies.update(name for names in isolating for name in names)
    return Rendered(render(res, local, log_group=log_group, cache=cache.chains),
                    [p.pod for p in local], selected, frozenset(policies))


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
        self._clusters = ClusterCache()  # the whole cluster's objects
        self._local_clusters = ClusterCache()  # the node's pods, every namespace and policy
        # What the table was last rendered from, so that the next batch may be skipped:
        # the small render's inputs, or the store copy of a whole render and its local pods.
        self._inputs: tuple[frozenset[Endpoint], dict[Key, int]] | None = None
        self._rendered: Copy | None = None
        self._local: list[str] = []
        self._isolated = False  # whether a policy isolated a local pod at the last render

    def __call__(self, snapshot: Snapshot, extra: Sequence[Endpoint] = ()) -> None:
        with self._lock:
            self.metrics.policies.set(len(snapshot["NetworkPolicy"]))
            started = time.perf_counter()
            if not extra and self._rendered is not None and only_policies_elsewhere(
                    self._rendered, snapshot, self._local):
                self._rendered = copy_of(snapshot)
                log.debug("policy: the change cannot touch this node's table")
                return
            view = local_view(snapshot, self.node, extra, self._local_clusters)
            inputs = view.inputs()
            if inputs == self._inputs:
                log.debug("policy: no change of this node's pods, namespaces or policies")
                return
            # While a policy isolates a local pod the small render only finds that out again.
            made = (None if self._isolated
                    else render_local(view, self.log_group, self._local_clusters))
            if made is None:
                made = render_whole(snapshot, self.node, extra, self.log_group, self._clusters)
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
            # What the table was made of: the next batch may be judged against it. An ADD's
            # endpoint is the one the store will hold: the batch that brings it is skipped.
            self._isolated = made.isolated
            self._inputs = None if made.isolated else inputs
            self._rendered, self._local = ((copy_of(snapshot), made.pods)
                                           if made.isolated and not extra else (None, []))

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
