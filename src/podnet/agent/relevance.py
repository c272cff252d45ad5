"""Which store changes cannot change a node's table, so that its agent need not render it.

A node's table holds only the policies that select one of its pods (their isolation and
their rules); peers, ports and addresses come from pods, namespaces and endpoints. So a
batch that changes nothing but NetworkPolicies, none of which selects a local pod before or
after the change, leaves the table as it is: most policy changes of a cluster concern pods
on a few nodes, and the other agents skip the whole rebuild (cluster, engine, render).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from podnet.agent.informer import Snapshot
from podnet.model import Manifest, ManifestError, NetworkPolicy, decode
from podnet.store.base import Key, Resource

POLICY = "NetworkPolicy"
Copy = Mapping[str, Mapping[Key, Resource]]


def copy_of(snapshot: Snapshot) -> Copy:
    """The informer's snapshot is a live view; this is a frozen shallow copy."""
    return {kind: dict(objects) for kind, objects in snapshot.items()}


def only_policies_elsewhere(before: Copy, after: Snapshot, local_pods: Iterable[str]) -> bool:
    """Whether `after` differs from `before` only in policies that select none of `local_pods`
    (`ns/name`), in their old and in their new form."""
    if set(before) != set(after):
        return False
    for kind, objects in after.items():
        if kind != POLICY and _revisions(before[kind]) != _revisions(objects):
            return False
    old, new = before[POLICY], after[POLICY]
    changed = [r for key in old.keys() | new.keys() if _revision(old, key) != _revision(new, key)
               for r in (old.get(key), new.get(key)) if r is not None]
    pods = after["Pod"]
    labels = {}
    for key in local_pods:
        namespace, name = key.split("/", 1)
        pod = pods.get(Key("Pod", namespace, name))
        if pod is None:
            return False
        labels[key] = (namespace, pod.labels)
    for resource in changed:
        try:
            policy = decode(Manifest("store", POLICY, resource.namespace, resource.name,
                                     dict(resource.body)))
        except ManifestError:
            return False  # let the full path report it
        assert isinstance(policy, NetworkPolicy)
        if any(ns == policy.namespace and policy.pod_selector.matches(pod_labels)
               for ns, pod_labels in labels.values()):
            return False
    return True


def _revision(objects: Mapping[Key, Resource], key: Key) -> int | None:
    resource = objects.get(key)
    return None if resource is None else resource.revision


def _revisions(objects: Mapping[Key, Resource]) -> dict[Key, int]:
    return {key: r.revision for key, r in objects.items()}
