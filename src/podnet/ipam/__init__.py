"""IP address management: node subnet leases and pod addresses, kept in the store."""

from podnet.ipam.allocator import IPAllocator
from podnet.ipam.errors import AlreadyAllocated, OutOfRange, RangeExhausted
from podnet.ipam.nodes import (
    CLUSTER_KEY,
    LEASE_KIND,
    cluster_config,
    ensure_cluster_config,
    lease_of,
    node_lease,
    node_leases,
    pod_allocator,
    register_node,
    release_node,
)
from podnet.ipam.ranges import AddressRange
from podnet.ipam.reservations import Attachment, IPStore, Reservation
from podnet.ipam.subnets import ClusterConfig, SubnetLease, allocate_subnet

__all__ = [
    "CLUSTER_KEY",
    "LEASE_KIND",
    "AddressRange",
    "AlreadyAllocated",
    "Attachment",
    "ClusterConfig",
    "IPAllocator",
    "IPStore",
    "OutOfRange",
    "RangeExhausted",
    "Reservation",
    "SubnetLease",
    "allocate_subnet",
    "cluster_config",
    "ensure_cluster_config",
    "lease_of",
    "node_lease",
    "node_leases",
    "pod_allocator",
    "register_node",
    "release_node",
]
