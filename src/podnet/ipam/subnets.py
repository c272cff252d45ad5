"""Cluster network configuration and node subnet leases; choosing a free subnet is pure.

As flannel's `allocateSubnet`: the choice is made from a snapshot of the leases, and the store
makes it stick with compare-and-create, so two nodes registering at once can both choose the
same subnet but only one gets it; the other chooses again from a fresh snapshot.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podnet.ipam.errors import OutOfRange, RangeExhausted

API_VERSION = "podnet.io/v1"
DEFAULT_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
DEFAULT_SUBNET_PREFIX = 24
DEFAULT_SUBNET_PREFIX_V6 = 80


@dataclass(frozen=True)
class ClusterConfig:
    """The pod address space of the cluster and the size of each node's share of it."""

    cidr: ipaddress.IPv4Network = DEFAULT_CIDR
    subnet_prefix: int = DEFAULT_SUBNET_PREFIX
    cidr_v6: ipaddress.IPv6Network | None = None
    subnet_prefix_v6: int = DEFAULT_SUBNET_PREFIX_V6

    def __post_init__(self) -> None:
        if not self.cidr.prefixlen <= self.subnet_prefix <= 30:
            raise OutOfRange(f"node subnet size /{self.subnet_prefix} does not fit cluster CIDR "
                             f"{self.cidr} (needs /{self.cidr.prefixlen}../30)")
        if self.cidr_v6 is not None and not (
                self.cidr_v6.prefixlen <= self.subnet_prefix_v6 <= 126):
            raise OutOfRange(f"node subnet size /{self.subnet_prefix_v6} does not fit cluster "
                             f"CIDR {self.cidr_v6}")

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"clusterCIDR": str(self.cidr), "nodeSubnetPrefix":
                                self.subnet_prefix}
        if self.cidr_v6 is not None:
            spec |= {"clusterCIDRv6": str(self.cidr_v6), "nodeSubnetPrefixV6":
                     self.subnet_prefix_v6}
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ClusterConfig:
        v6 = spec.get("clusterCIDRv6")
        return cls(ipaddress.IPv4Network(spec["clusterCIDR"]), int(spec["nodeSubnetPrefix"]),
                   ipaddress.IPv6Network(v6) if v6 else None,
                   int(spec.get("nodeSubnetPrefixV6", DEFAULT_SUBNET_PREFIX_V6)))


@dataclass(frozen=True)
class SubnetLease:
    """A node's share of the cluster CIDR, kept across restarts until the node is deleted.

    `attrs` holds what other nodes need to reach this one (underlay address, VTEP MAC), as
    flannel's lease attributes do; `revision` is the store revision the lease was read at.
    """

    node: str
    subnet: ipaddress.IPv4Network
    attrs: Mapping[str, str] = field(default_factory=dict)
    revision: int = 0

    def spec(self) -> dict[str, Any]:
        return {"node": self.node, "subnet": str(self.subnet), "attrs": dict(self.attrs)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], revision: int = 0) -> SubnetLease:
        return cls(str(spec["node"]), ipaddress.IPv4Network(spec["subnet"]),
                   dict(spec.get("attrs") or {}), revision)


def allocate_subnet(config: ClusterConfig, leases: Iterable[SubnetLease]) -> ipaddress.IPv4Network:
    """The lowest subnet of the cluster CIDR that no lease holds; RangeExhausted if none."""
    taken = {lease.subnet for lease in leases}
    for subnet in config.cidr.subnets(new_prefix=config.subnet_prefix):
        if subnet not in taken:
            return subnet
    raise RangeExhausted(f"no free /{config.subnet_prefix} subnet left in cluster CIDR "
                         f"{config.cidr} ({len(taken)} nodes hold one)")


def subnet_key(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """A store name for a subnet: `10.244.3.0-24`."""
    return str(subnet).replace("/", "-").replace(":", "-")
