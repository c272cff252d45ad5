"""Work an agent may skip: changes of policies that select none of its pods, decoding objects
that did not change (the cluster cache), and the whole cluster's render while no policy
isolates a pod of the node (the small render: it must give the same table, and give way)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podnet.agent.endpoints import KIND as ENDPOINT_KIND
from podnet.agent.endpoints import Endpoint
from podnet.agent.policy import (
    KINDS,
    ClusterCache,
    desired_cluster,
    local_view,
    render_local,
    render_whole,
)
from podnet.agent.relevance import copy_of, only_policies_elsewhere
from podnet.store.base import Key, Resource

LOCAL = ["x/a"]  # the node's pod; x/b and y/c live on other nodes


def resource(kind: str, namespace: str, name: str, revision: int,
             spec: dict[str, Any] | None = None, labels: dict[str, str] | None = None
             ) -> Resource:
    body = {"metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            **({"spec": spec} if spec is not None else {})}
    return Resource(Key(kind, namespace, name), body, revision, revision)


def policy(namespace: str, name: str, revision: int, app: str) -> Resource:
    return resource("NetworkPolicy", namespace, name, revision,
                    {"podSelector": {"matchLabels": {"app": app}}})


def snapshot(*resources: Resource) -> dict[str, dict[Key, Resource]]:
    pods = [resource("Pod", "x", "a", 1, {}, {"app": "a"}),
            resource("Pod", "x", "b", 2, {}, {"app": "b"}),
            resource("Pod", "y", "c", 3, {}, {"app": "a"})]
    out: dict[str, dict[Key, Resource]] = {k: {} for k in ("Namespace", "Pod", "NetworkPolicy",
                                                             "Endpoint")}
    for r in (*pods, *resources):
        out[r.kind][r.key] = r
    return out


BEFORE = snapshot(policy("x", "old", 10, "a"))


@pytest.mark.parametrize("after, skipped", [
    pytest.param(snapshot(policy("x", "old", 10, "a")), True, id="nothing changed"),
    pytest.param(snapshot(policy("x", "old", 10, "a"), policy("x", "new", 11, "b")), True,
                 id="a policy for a pod of another node"),
    pytest.param(snapshot(policy("x", "old", 10, "a"), policy("z", "new", 11, "a")), True,
                 id="the same labels in another namespace"),
    pytest.param(snapshot(policy("x", "old", 10, "a"), policy("x", "new", 11, "a")), False,
                 id="a policy for the node's pod"),
    pytest.param(snapshot(policy("x", "old", 11, "b")), False,
                 id="a policy that stops selecting the node's pod"),
    pytest.param(snapshot(), False, id="a policy of the node's pod deleted"),
    pytest.param(snapshot(policy("x", "old", 10, "a"), resource("Pod", "y", "d", 11, {})),
                 False, id="a pod added elsewhere (peers may change)"),
    pytest.param(snapshot(policy("x", "old", 10, "a"),
                          resource("NetworkPolicy", "x", "bad", 11, {"podSelector": 7})),
                 False, id="an invalid policy: the full path reports it"),
])
def test_only_changes_of_policies_selecting_no_local_pod_are_skipped(
        after: dict[str, dict[Key, Resource]], skipped: bool) -> None:
    assert only_policies_elsewhere(copy_of(BEFORE), after, LOCAL) is skipped


def test_the_cluster_cache_builds_what_the_store_describes_across_changes() -> None:
    cache = ClusterCache()
    steps = [
        BEFORE,
        snapshot(policy("x", "old", 11, "b")),  # a policy changed
        snapshot(policy("x", "old", 11, "b"), resource("Pod", "y", "d", 12, {})),  # a pod
        snapshot(policy("x", "old", 11, "b"), policy("z", "new", 13, "a")),  # no Namespace z
        snapshot(),  # all policies gone
    ]
    for step in steps:
        assert cache.cluster(step, []) == desired_cluster(step, [])


# -- the small render: the node's pods alone, while no policy isolates one of them ---------

NODES = ("n1", "n2")
APPS = ("a", "b")


def pod(namespace: str, name: str, app: str, host_network: bool = False) -> Resource:
    spec: dict[str, Any] = {"containers": [{"name": "c", "ports": [
        {"name": "http", "containerPort": 80 if app == "a" else 8080}]}]}
    if host_network:
        spec["hostNetwork"] = True
    return resource("Pod", namespace, name, 1, spec, {"app": app})


def endpoint(node: str, namespace: str, name: str, index: int) -> Resource:
    ep = Endpoint(node=node, container_id=f"c{index}", ifname="eth0",
                  ip=ipaddress.IPv4Address(f"10.244.0.{index + 2}"),
                  host_ifname=f"veth{index:08x}", netns=f"/run/netns/p{index}", mtu=1450,
                  pod_namespace=namespace, pod_name=name)
    return Resource(Key(ENDPOINT_KIND, "", ep.name), ep.body(), 1, 1)


def peer_policy(namespace: str, name: str, app: str, peer: dict[str, Any],
                types: list[str]) -> Resource:
    """A policy selecting `app` pods, each of its rules from/to `peer`."""
    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": app}} if app else {},
                            "policyTypes": types}
    if "Ingress" in types:
        spec["ingress"] = [{"from": [peer], "ports": [{"port": "http"}]}]
    if "Egress" in types:
        spec["egress"] = [{"to": [peer]}]
    return resource("NetworkPolicy", namespace, name, 1, spec)


PEERS = [{"podSelector": {"matchLabels": {"app": "a"}}},
         {"namespaceSelector": {"matchLabels": {"team": "y"}}},
         {"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.0.3/32"]}}]
TYPES = [["Ingress"], ["Egress"], ["Ingress", "Egress"]]
pods_st = st.lists(st.tuples(st.sampled_from(("x", "y")), st.sampled_from(APPS),
                             st.sampled_from(NODES), st.booleans(),
                             st.sampled_from((False, False, False, True))),
                   max_size=6)
policies_st = st.lists(st.tuples(st.sampled_from(("x", "y", "z")),
                                 st.sampled_from(("", *APPS, "c")),
                                 st.sampled_from(range(len(PEERS))),
                                 st.sampled_from(range(len(TYPES)))), max_size=3)


def cluster_snapshot(pods: list[tuple[str, str, str, bool, bool]],
                     policies: list[tuple[str, str, int, int]]) -> dict[str, dict[Key, Resource]]:
    """Pods (namespace, app, node, wired, hostNetwork) and policies (namespace, app, peer,
    types); namespace y is labelled team=y."""
    out: dict[str, dict[Key, Resource]] = {k: {} for k in KINDS}
    objects = [resource("Namespace", "", "x", 1, {}, {"team": "x"}),
               resource("Namespace", "", "y", 1, {}, {"team": "y"})]
    for i, (namespace, app, node, wired, host) in enumerate(pods):
        objects.append(pod(namespace, f"p{i}", app, host))
        if wired:
            objects.append(endpoint(node, namespace, f"p{i}", i))
    objects.append(endpoint("n1", "", "", 99))  # a bare container: no pod of the cluster
    for i, (namespace, app, peer, types) in enumerate(policies):
        objects.append(peer_policy(namespace, f"np{i}", app, PEERS[peer], TYPES[types]))
    for r in objects:
        out[r.kind][r.key] = r
    return out


@settings(max_examples=150, deadline=None)
@given(pods_st, policies_st, st.sampled_from(NODES))
def test_the_small_render_is_the_whole_render_unless_a_local_pod_is_isolated(
        pods: list[tuple[str, str, str, bool, bool]], policies: list[tuple[str, str, int, int]],
        node: str) -> None:
    snap = cluster_snapshot(pods, policies)
    whole = render_whole(snap, node, (), None)
    small = render_local(local_view(snap, node), None)
    if small is None:
        assert whole.isolated  # the whole render is needed: peers
    else:
        assert not whole.isolated
        assert small.document == whole.document
        assert small.pods == whole.pods


@pytest.mark.parametrize("pods, policies", [
    pytest.param([("x", "a", "n1", True, False)], [("x", "a", 0, 0)],
                 id="a policy selects the node's pod"),
    pytest.param([("x", "a", "n1", True, False)], [("x", "", 2, 1)],
                 id="an empty selector, egress to an ipBlock"),
    pytest.param([("x", "a", "n1", True, False), ("y", "b", "n2", True, False)],
                 [("x", "a", 1, 2)], id="peers by namespace on another node"),
])
def test_the_small_render_gives_way_when_a_local_pod_is_isolated(
        pods: list[tuple[str, str, str, bool, bool]],
        policies: list[tuple[str, str, int, int]]) -> None:
    assert render_local(local_view(cluster_snapshot(pods, policies), "n1"), None) is None


@pytest.mark.parametrize("pods, policies", [
    pytest.param([("x", "a", "n1", True, False)], [], id="no policy"),
    pytest.param([("x", "a", "n1", True, False)], [("y", "a", 0, 2)],
                 id="the same labels in another namespace"),
    pytest.param([("x", "a", "n1", True, False), ("x", "b", "n2", True, False)],
                 [("x", "b", 0, 2)], id="a policy for a pod of another node"),
    pytest.param([("x", "a", "n1", True, True)], [("x", "a", 0, 2)],
                 id="a selected pod in the host network has no veth"),
])
def test_the_small_render_serves_when_no_local_pod_is_isolated(
        pods: list[tuple[str, str, str, bool, bool]],
        policies: list[tuple[str, str, int, int]]) -> None:
    snap = cluster_snapshot(pods, policies)
    small = render_local(local_view(snap, "n1"), None)
    assert small is not None
    assert small.document == render_whole(snap, "n1", (), None).document


def test_an_added_pods_endpoint_counts_as_the_one_the_store_will_hold() -> None:
    # ADD renders with its endpoint before recording it; the batch that brings the record
    # has the same inputs, so the agent skips it.
    snap = cluster_snapshot([("x", "a", "n1", True, False)], [])
    recorded = snap[ENDPOINT_KIND].pop(Key(ENDPOINT_KIND, "", "c0:eth0"))
    added = Endpoint.from_body(recorded.body)
    before = local_view(snap, "n1", [added]).inputs()
    snap[ENDPOINT_KIND][recorded.key] = recorded
    assert local_view(snap, "n1").inputs() == before
