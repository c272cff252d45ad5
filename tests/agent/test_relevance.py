"""Work an agent may skip: changes of policies that select none of its pods, and decoding
objects that did not change (the cluster cache)."""

from __future__ import annotations

from typing import Any

import pytest

from podnet.agent.policy import ClusterCache, desired_cluster
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
