"""PortSet algebra: what a rule admits and what a pair may use."""

from podnet.model import Protocol
from podnet.policy import PortSet


def test_union_merges_adjacent_and_overlapping_ranges() -> None:
    ports = PortSet.of(Protocol.TCP, 80, 80) | PortSet.of(Protocol.TCP, 81, 90)
    ports |= PortSet.of(Protocol.TCP, 85, 100) | PortSet.of(Protocol.UDP, 53, 53)
    assert str(ports) == "TCP 80-100; UDP 53"
    assert ports.allows(Protocol.TCP, 100)
    assert not ports.allows(Protocol.TCP, 101)
    assert not ports.allows(Protocol.SCTP, 80)


def test_intersection_with_all_is_identity_and_other_protocols_need_both() -> None:
    tcp80 = PortSet.of(Protocol.TCP, 80, 80)
    assert PortSet.all() & tcp80 == tcp80
    assert (PortSet.of(Protocol.TCP, 1, 100) & PortSet.of(Protocol.TCP, 50, 200)) == (
        PortSet.of(Protocol.TCP, 50, 100))
    assert (PortSet.all() & PortSet.all()).is_all()
    assert not (PortSet.all() & tcp80).other
    assert (tcp80 & PortSet.of(Protocol.UDP, 80, 80)).is_empty()


def test_rendering_for_people_and_programs() -> None:
    ports = PortSet.of(Protocol.TCP) | PortSet.of(Protocol.UDP, 8000, 8080)
    assert str(ports) == "TCP *; UDP 8000-8080"
    assert ports.to_json() == {"TCP": ["1-65535"], "UDP": ["8000-8080"]}
    assert str(PortSet.all()) == "all"
    assert str(PortSet.none()) == "none"
