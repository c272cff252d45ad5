"""Keeps the node's nftables table equal to what the policies say about the pods wired here.

The desired state is computed, not patched: on every change of pods, namespaces, policies or
endpoints the agent rebuilds the cluster from its copy of the store, resolves it with the
engine (the one definition of semantics), renders the node's table and, if it differs from
the last one applied, swaps it in one transaction. A CNI ADD runs the same path with its new
endpoint before it returns, so a pod that a policy selects is never reachable unguarded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Sequence

from podnet.agent.endpoints import KIND as ENDPOINT_KIND
from podnet.agent.endpoints import Endpoint
from podnet.agent.informer import Informer, Snapshot
from podnet.datapath.nft import Json, apply_ruleset
from podnet.model import Cluster, Manifest, build_cluster
from podnet.policy import Engine
from podnet.policy.nftables import NodePod, render
from podnet.store.base import ResourceStore

log = logging.getLogger(__name__)

KINDS = ("Namespace", "Pod", "NetworkPolicy", ENDPOINT_KIND)


def desired_cluster(snapshot: Snapshot, endpoints: Iterable[Endpoint]) -> Cluster:
    """The cluster the store describes, each pod with the address its agent gave it."""
    manifests = [Manifest("store", r.kind, r.namespace or None, r.name, dict(r.body))
                 for kind in ("Namespace", "Pod", "NetworkPolicy") for r in snapshot[kind].values()]
    cluster = build_cluster(manifests)
    addresses = {ep.pod: (ep.ip,) for ep in endpoints if ep.pod}
    pods = tuple(dataclasses.replace(p, ips=addresses[p.key]) if p.key in addresses else p
                 for p in cluster.pods)
    return dataclasses.replace(cluster, pods=pods)


def local_pods(cluster: Cluster, endpoints: Iterable[Endpoint], node: str) -> list[NodePod]:
    """The pods wired on `node` that the cluster knows (a bare container is no pod)."""
    known = {p.key for p in cluster.pods if not p.host_network}
    return sorted((NodePod(ep.pod, ep.host_ifname, (ep.ip,)) for ep in endpoints
                   if ep.node == node and ep.pod in known), key=lambda n: n.ifname)


def render_node(snapshot: Snapshot, node: str, extra: Sequence[Endpoint] = (),
                log_group: int | None = None) -> Json:
    endpoints = [Endpoint.from_body(r.body) for r in snapshot[ENDPOINT_KIND].values()]
    endpoints += [ep for ep in extra if ep.name not in {e.name for e in endpoints}]
    cluster = desired_cluster(snapshot, endpoints)
    return render(Engine(cluster).resolution, local_pods(cluster, endpoints, node),
                  log_group=log_group)


class PolicySync:
    """The reconciler; also called by CNI ADD with the endpoint it is about to report."""

    def __init__(self, node: str, store: ResourceStore, log_group: int | None = None) -> None:
        self.node = node
        self.log_group = log_group  # NFLOG group of every counted decision (the flow log)
        self._lock = threading.RLock()
        self.informer = Informer(store, KINDS, self, lock=self._lock)
        self._applied: str | None = None

    def __call__(self, snapshot: Snapshot, extra: Sequence[Endpoint] = ()) -> None:
        with self._lock:
            document = render_node(snapshot, self.node, extra, self.log_group)
            digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
            if digest == self._applied:
                return
            apply_ruleset(document)
            self._applied = digest
            log.info("policy: table applied (%d objects)", len(document["nftables"]))

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
