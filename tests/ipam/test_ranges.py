"""Which addresses of a node subnet pods get, and in which order."""

from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address

import pytest

from podnet.ipam import AddressRange, OutOfRange


def test_pod_range_keeps_overlay_address_and_broadcast() -> None:
    r = AddressRange.for_pods(IPv4Network("10.244.3.0/24"))
    assert (r.first, r.last, len(r)) == (IPv4Address("10.244.3.1"), IPv4Address("10.244.3.254"),
                                         254)
    assert r.gateway == IPv4Address("10.244.3.0")
    assert r.gateway not in r and IPv4Address("10.244.3.255") not in r
    assert IPv4Address("10.244.3.7") in r and IPv4Address("10.244.4.7") not in r


def test_ipv6_pod_range_has_no_broadcast() -> None:
    r = AddressRange.for_pods(IPv6Network("fd00:10:244:3::/120"))
    assert (str(r.first), str(r.last)) == ("fd00:10:244:3::1", "fd00:10:244:3::ff")
    assert ip_address("10.0.0.1") not in r


@pytest.mark.parametrize(("previous", "expected"), [
    (None, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]),
    ("10.0.0.3", ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    ("10.0.0.6", ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]),
    ("192.168.0.1", ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]),
], ids=["from the start", "after the last one", "wraps around", "stale cursor"])
def test_round_robin_visits_every_address_once(previous: str | None, expected: list[str]) -> None:
    r = AddressRange.for_pods(IPv4Network("10.0.0.0/29"))
    start = ip_address(previous) if previous else None
    assert [str(ip) for ip in r.after(start)] == expected


def test_subnet_too_small_for_pods() -> None:
    with pytest.raises(OutOfRange, match="too small"):
        AddressRange.for_pods(IPv4Network("10.0.0.0/31"))
