"""The agent's pure decisions: what GC removes, which veths leaked, the stored form."""

from __future__ import annotations

import ipaddress

from podnet.agent.endpoints import Endpoint, leaked_veths, stale


def make_endpoint(container_id: str, host: str = "pn00000000001", pod: str = "") -> Endpoint:
    namespace, _, name = pod.partition("/")
    return Endpoint(node="n1", container_id=container_id, ifname="eth0",
                    ip=ipaddress.IPv4Address("10.244.0.7"), host_ifname=host,
                    netns="/run/netns/p", mtu=1450, pod_namespace=namespace, pod_name=name)


def test_an_endpoint_survives_the_store_round_trip() -> None:
    ep = make_endpoint("c1", pod="shop/web-0")
    assert Endpoint.from_body(ep.body()) == ep
    assert (ep.name, ep.pod) == ("c1:eth0", "shop/web-0")


def test_gc_keeps_exactly_the_listed_attachments() -> None:
    recorded = [make_endpoint("c1"), make_endpoint("c2"), make_endpoint("c3")]
    assert [ep.container_id for ep in stale(recorded, {("c2", "eth0"), ("c3", "net1")})] == [
        "c1", "c3"]


def test_veths_without_an_endpoint_are_leaked() -> None:
    recorded = [make_endpoint("c1", host="pnaaaaaaaaaaa")]
    assert leaked_veths(recorded, ["pnaaaaaaaaaaa", "pnbbbbbbbbbbb"]) == ["pnbbbbbbbbbbb"]
