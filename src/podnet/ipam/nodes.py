"""Node registration and pod address allocation against a store: what an agent calls.

The cluster configuration is the `ClusterNetwork/default` resource. A node's lease is the
`SubnetLease/<node>` resource that agents list and watch; a `SubnetClaim/<subnet>` resource,
created in the same transaction, makes the subnet itself unique (a compare-and-create on each
key is all an etcd backend needs). Pod addresses live in the pool named after the subnet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from podnet.ipam.allocator import IPAllocator
from podnet.ipam.ranges import AddressRange
from podnet.ipam.subnets import (
    API_VERSION,
    ClusterConfig,
    SubnetLease,
    allocate_subnet,
    subnet_key,
)
from podnet.store.base import Conflict, Create, Delete, Key, NotFound, Resource, Store

log = logging.getLogger(__name__)

CLUSTER_KEY = Key("ClusterNetwork", "", "default")
LEASE_KIND = "SubnetLease"
CLAIM_KIND = "SubnetClaim"
_ATTEMPTS = 100


def ensure_cluster_config(store: Store, wanted: ClusterConfig | None = None) -> ClusterConfig:
    """The cluster's configuration; stored first as `wanted` (or the defaults) if absent.

    Conflict if the store holds a different configuration than `wanted`: changing the
    cluster CIDR under running nodes would strand their pods.
    """
    try:
        stored = cluster_config(store)
    except NotFound:
        config = wanted or ClusterConfig()
        try:
            store.create(CLUSTER_KEY, _body("ClusterNetwork", "default", config.spec()))
            log.info("cluster network initialised: %s", config)
            return config
        except Conflict:
            stored = cluster_config(store)
    if wanted is not None and wanted != stored:
        raise Conflict(f"the cluster network is {stored.cidr} with /{stored.subnet_prefix} "
                       f"node subnets already; refusing {wanted.cidr} /{wanted.subnet_prefix}")
    return stored


def cluster_config(store: Store) -> ClusterConfig:
    """The stored configuration; NotFound if the cluster network was never initialised."""
    return ClusterConfig.from_spec(store.get(CLUSTER_KEY).body["spec"])


def register_node(store: Store, node: str, attrs: Mapping[str, str] | None = None) -> SubnetLease:
    """The node's subnet lease: the one it holds (restart), else a new one from a free subnet.

    `attrs`, when given, replace the lease's attributes (an agent publishes its VTEP there).
    """
    config = ensure_cluster_config(store)
    for _ in range(_ATTEMPTS):
        try:
            lease = node_lease(store, node)
        except NotFound:
            subnet = allocate_subnet(config, node_leases(store))
            lease = SubnetLease(node, subnet, dict(attrs or {}))
            try:
                created = store.commit([
                    Create(Key(LEASE_KIND, "", node), _body(LEASE_KIND, node, lease.spec())),
                    Create(Key(CLAIM_KIND, "", subnet_key(subnet)),
                           _body(CLAIM_KIND, subnet_key(subnet), {"node": node})),
                ])
            except Conflict:
                continue  # another node took this subnet, or this node registered meanwhile
            log.info("node %s leased %s", node, subnet)
            return SubnetLease.from_spec(created[0].body["spec"], created[0].revision)
        if attrs is None or dict(attrs) == dict(lease.attrs):
            return lease
        changed = SubnetLease(node, lease.subnet, dict(attrs))
        try:
            updated = store.update(Key(LEASE_KIND, "", node),
                                   _body(LEASE_KIND, node, changed.spec()), lease.revision)
        except (Conflict, NotFound):
            continue
        return SubnetLease.from_spec(updated.body["spec"], updated.revision)
    raise Conflict(f"node {node}: could not register after {_ATTEMPTS} attempts")


def node_lease(store: Store, node: str) -> SubnetLease:
    """The node's lease; NotFound if the node has none."""
    return lease_of(store.get(Key(LEASE_KIND, "", node)))


def node_leases(store: Store) -> list[SubnetLease]:
    return [lease_of(r) for r in store.list(LEASE_KIND).items]


def lease_of(resource: Resource) -> SubnetLease:
    """The lease a `SubnetLease` resource (from list or watch) describes."""
    return SubnetLease.from_spec(resource.body["spec"], resource.revision)


def release_node(store: Store, node: str) -> SubnetLease | None:
    """Free the node's subnet and every pod address in it; None if it held nothing."""
    try:
        lease = node_lease(store, node)
    except NotFound:
        return None
    pod_allocator(store, lease).gc(valid=())
    try:
        store.commit([Delete(Key(LEASE_KIND, "", node)),
                      Delete(Key(CLAIM_KIND, "", subnet_key(lease.subnet)))])
    except NotFound:
        return None  # released by someone else meanwhile
    log.info("node %s released %s", node, lease.subnet)
    return lease


def pod_allocator(store: Store, lease: SubnetLease) -> IPAllocator:
    """The allocator of the pod addresses of a node's subnet."""
    return IPAllocator(AddressRange.for_pods(lease.subnet), store.ip_store(str(lease.subnet)))


def _body(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}

