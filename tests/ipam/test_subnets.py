"""Node subnet leases: disjoint, kept across restarts, freed with the node."""

from ipaddress import IPv4Address, IPv4Network

import pytest

from podnet import ipam
from podnet.ipam import Attachment, ClusterConfig, OutOfRange, RangeExhausted, SubnetLease
from podnet.store import Conflict, Key, Store, Watch, open_store


def lease(node: str, subnet: str) -> SubnetLease:
    return SubnetLease(node, IPv4Network(subnet))


def test_allocate_subnet_takes_the_lowest_free() -> None:
    config = ClusterConfig(IPv4Network("10.244.0.0/16"), 24)
    assert ipam.allocate_subnet(config, []) == IPv4Network("10.244.0.0/24")
    held = [lease("a", "10.244.0.0/24"), lease("b", "10.244.2.0/24")]
    assert ipam.allocate_subnet(config, held) == IPv4Network("10.244.1.0/24")


def test_allocate_subnet_when_the_cluster_is_full() -> None:
    config = ClusterConfig(IPv4Network("10.244.0.0/23"), 24)
    held = [lease("a", "10.244.0.0/24"), lease("b", "10.244.1.0/24")]
    with pytest.raises(RangeExhausted, match="no free /24 subnet left in cluster CIDR"):
        ipam.allocate_subnet(config, held)


def test_subnet_size_must_fit() -> None:
    with pytest.raises(OutOfRange):
        ClusterConfig(IPv4Network("10.244.0.0/16"), 12)


def test_cluster_config_is_initialised_once(store: Store) -> None:
    wanted = ClusterConfig(IPv4Network("10.10.0.0/16"), 26)
    assert ipam.ensure_cluster_config(store, wanted) == wanted
    assert ipam.ensure_cluster_config(store) == wanted
    assert ipam.ensure_cluster_config(store, wanted) == wanted
    with pytest.raises(Conflict, match=r"already; refusing 10.244.0.0/16"):
        ipam.ensure_cluster_config(store, ClusterConfig())


def test_cluster_config_defaults(store: Store) -> None:
    config = ipam.ensure_cluster_config(store)
    assert (config.cidr, config.subnet_prefix) == (IPv4Network("10.244.0.0/16"), 24)


def test_restarted_node_keeps_its_subnet(store: Store, store_url: str) -> None:
    first = ipam.register_node(store, "node-a")
    ipam.register_node(store, "node-b")
    with open_store(store_url) as restarted:
        again = ipam.register_node(restarted, "node-a")
    assert (again.node, again.subnet) == ("node-a", first.subnet)


def test_attrs_are_published_to_watchers(store: Store) -> None:
    since = store.revision()
    ipam.register_node(store, "node-a", attrs={"ip": "192.0.2.11"})
    ipam.register_node(store, "node-a", attrs={"ip": "192.0.2.99"})
    leases = [ipam.lease_of(e.resource) for e in store.events(Watch(since,
                                                                     frozenset({"SubnetLease"})))]
    assert [dict(x.attrs) for x in leases] == [{"ip": "192.0.2.11"}, {"ip": "192.0.2.99"}]
    assert ipam.node_lease(store, "node-a").attrs == {"ip": "192.0.2.99"}


def test_deleting_the_node_frees_its_subnet_and_addresses(store: Store) -> None:
    a = ipam.register_node(store, "node-a")
    ipam.register_node(store, "node-b")
    ipam.pod_allocator(store, a).allocate(Attachment("c1"))
    assert ipam.release_node(store, "node-a") == a
    assert ipam.release_node(store, "node-a") is None
    assert list(store.ip_store(str(a.subnet)).reservations()) == []
    c = ipam.register_node(store, "node-c")
    assert c.subnet == a.subnet
    # The pool's cursor survives: addresses of the deleted node's pods are not reused at once.
    assert ipam.pod_allocator(store, c).allocate(Attachment("c9")) == IPv4Address("10.244.0.2")
    assert [x.node for x in ipam.node_leases(store)] == ["node-b", "node-c"]
    with pytest.raises(Conflict):
        store.create(Key("SubnetClaim", "", "10.244.1.0-24"), {})
