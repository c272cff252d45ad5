"""Pod addresses from a node subnet, kept in the store: what CNI ADD, DEL and GC rely on."""

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.ipam import (
    AddressRange,
    AlreadyAllocated,
    Attachment,
    IPAllocator,
    OutOfRange,
    RangeExhausted,
)
from podnet.store import Store, open_store

SUBNET = IPv4Network("10.244.3.0/24")


def allocator(store: Store, subnet: IPv4Network = SUBNET) -> IPAllocator:
    return IPAllocator(AddressRange.for_pods(subnet), store.ip_store(str(subnet)))


def test_first_address_is_after_the_overlay_address(store: Store) -> None:
    assert allocator(store).allocate(Attachment("c1")) == IPv4Address("10.244.3.1")


def test_allocating_twice_returns_the_same_address(store: Store) -> None:
    alloc = allocator(store)
    first = alloc.allocate(Attachment("c1", "eth0"), pod="shop/web")
    alloc.allocate(Attachment("c2"))
    assert alloc.allocate(Attachment("c1", "eth0")) == first
    assert alloc.allocate(Attachment("c1", "net1")) != first  # another interface, another key
    assert [r.pod for r in alloc.reservations()] == ["shop/web", None, None]


def test_release_is_idempotent_and_by_key(store: Store) -> None:
    alloc = allocator(store)
    ip = alloc.allocate(Attachment("c1"))
    other = alloc.allocate(Attachment("c2"))
    assert alloc.release(Attachment("c1")) == [ip]
    assert alloc.release(Attachment("c1")) == []
    assert alloc.release(Attachment("never")) == []
    assert [r.ip for r in alloc.reservations()] == [other]


def test_no_immediate_reuse_of_a_released_address(store: Store) -> None:
    alloc = allocator(store)
    first = alloc.allocate(Attachment("c1"))
    alloc.release(Attachment("c1"))
    assert alloc.allocate(Attachment("c2")) == first + 1


def test_cursor_is_shared_by_every_client_of_the_store(store: Store, store_url: str) -> None:
    allocator(store).allocate(Attachment("c1"))
    with open_store(store_url) as other:
        assert allocator(other).allocate(Attachment("c2")) == IPv4Address("10.244.3.2")


def test_full_subnet_is_a_clear_error_and_wraps_after_release(store: Store) -> None:
    alloc = allocator(store, IPv4Network("10.244.9.0/29"))
    got = [alloc.allocate(Attachment(f"c{i}")) for i in range(6)]
    assert [str(ip) for ip in got] == [f"10.244.9.{i}" for i in range(1, 7)]
    with pytest.raises(RangeExhausted, match=r"no free address in 10.244.9.0/29: all 6"):
        alloc.allocate(Attachment("c6"))
    alloc.release(Attachment("c2"))
    assert alloc.allocate(Attachment("c6")) == IPv4Address("10.244.9.3")


def test_requested_address(store: Store) -> None:
    alloc = allocator(store)
    wanted = IPv4Address("10.244.3.77")
    assert alloc.allocate(Attachment("c1"), requested=wanted) == wanted
    with pytest.raises(AlreadyAllocated, match=r"10\.244\.3\.77 is already allocated"):
        alloc.allocate(Attachment("c2"), requested=wanted)
    with pytest.raises(OutOfRange):
        alloc.allocate(Attachment("c2"), requested=IPv4Address("10.244.3.0"))
    assert alloc.allocate(Attachment("c2")) == IPv4Address("10.244.3.78")


def test_gc_releases_all_but_the_valid_attachments(store: Store) -> None:
    alloc = allocator(store)
    ips = {f"c{i}": alloc.allocate(Attachment(f"c{i}")) for i in range(5)}
    valid = {Attachment("c1"), Attachment("c3"), Attachment("gone")}
    released = alloc.gc(valid)
    assert sorted(r.attachment.container_id for r in released) == ["c0", "c2", "c4"]
    assert {r.attachment: r.ip for r in alloc.reservations()} == {
        Attachment("c1"): ips["c1"], Attachment("c3"): ips["c3"]}
    assert alloc.gc(valid) == []


def test_pools_are_independent(store: Store) -> None:
    one, two = allocator(store), allocator(store, IPv4Network("10.244.4.0/24"))
    assert one.allocate(Attachment("c1")) == IPv4Address("10.244.3.1")
    assert two.allocate(Attachment("c1")) == IPv4Address("10.244.4.1")
    assert store.ip_pools() == ["10.244.3.0/24", "10.244.4.0/24"]


ops = st.lists(st.tuples(st.booleans(), st.integers(0, 9)), max_size=60)


@settings(max_examples=40, deadline=None)
@given(ops=ops)
def test_any_sequence_keeps_addresses_unique(tmp_path_factory: pytest.TempPathFactory,
                                             ops: list[tuple[bool, int]]) -> None:
    """Invariant: each live attachment holds exactly one address, and no two hold the same."""
    path = tmp_path_factory.mktemp("hyp") / "state.db"
    with open_store(f"sqlite://{path}") as store:
        alloc = allocator(store, IPv4Network("10.0.0.0/29"))
        held: dict[str, IPv4Address] = {}
        for add, n in ops:
            key = f"c{n}"
            if add:
                try:
                    ip = alloc.allocate(Attachment(key))
                except RangeExhausted:
                    assert len(held) == 6 and key not in held
                    continue
                assert held.setdefault(key, ip) == ip  # type: ignore[arg-type]
            else:
                alloc.release(Attachment(key))
                held.pop(key, None)
            table = {r.attachment.container_id: r.ip for r in alloc.reservations()}
            assert table == held
            assert len(set(table.values())) == len(table)
