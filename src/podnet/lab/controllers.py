"""The lab's control plane in miniature: controllers make pods, the scheduler places them.

Pure: given what the store holds, say which Pod objects should be created, deleted or
placed. The kubelet writes the answers back to the store, exactly as Kubernetes' controller
manager and scheduler would, so `podnet apply` of a Deployment makes pods appear.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podnet.model import Manifest, Node, decode
from podnet.model.workloads import WORKLOAD_KINDS, Workload

CREATED_BY = "podnet.dev/created-by"  # annotation on the pods the lab's controllers made

Body = Mapping[str, Any]


@dataclass(frozen=True)
class PodChanges:
    create: list[dict[str, Any]]
    delete: list[tuple[str, str]]  # (namespace, name)


def controller_changes(controllers: Iterable[Body], pods: Iterable[Body],
                       nodes: Sequence[str]) -> PodChanges:
    """Pods to create for the controllers, and pods the lab made that no controller wants."""
    node_objects = tuple(Node(n) for n in nodes)
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for body in controllers:
        workload = _workload(body)
        template = body["spec"].get("template") or {}
        for pod in workload.pods(node_objects):
            wanted[(pod.namespace, pod.name)] = _pod_body(workload, template, pod.name,
                                                          dict(pod.labels), pod.node_name)
    existing = {(_meta(p).get("namespace", "default"), _meta(p)["name"]): p for p in pods}
    create = [body for key, body in wanted.items() if key not in existing]
    delete = [key for key, body in existing.items()
              if (_meta(body).get("annotations") or {}).get(CREATED_BY) and key not in wanted]
    return PodChanges(create, delete)


def schedule(pods: Iterable[Body], nodes: Sequence[str]) -> dict[tuple[str, str], str]:
    """A node for every pod without one: the least loaded, ties to the first in lab order."""
    load: Counter[str] = Counter(dict.fromkeys(nodes, 0))
    pending = []
    for body in pods:
        node = (body.get("spec") or {}).get("nodeName")
        if node:
            load[node] += 1
        else:
            pending.append((_meta(body).get("namespace", "default"), _meta(body)["name"]))
    placed = {}
    for key in sorted(pending):
        node = min(nodes, key=lambda n: (load[n], nodes.index(n)))
        load[node] += 1
        placed[key] = node
    return placed


def is_controller(kind: str) -> bool:
    return kind in WORKLOAD_KINDS


def _workload(body: Body) -> Workload:
    meta = _meta(body)
    manifest = Manifest("store", str(body["kind"]), meta.get("namespace", "default"),
                        meta["name"], dict(body))
    workload = decode(manifest)
    assert isinstance(workload, Workload)
    return workload


def _pod_body(workload: Workload, template: Body, name: str, labels: dict[str, str],
              node: str | None) -> dict[str, Any]:
    owner_kind, owner_name = workload.owner(name)
    spec = copy.deepcopy(dict(template.get("spec") or {}))
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": workload.namespace,
            "labels": labels,
            "annotations": {CREATED_BY: f"{workload.kind}/{workload.name}"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind,
                                 "name": owner_name, "controller": True}],
        },
        "spec": spec,
    }


def _meta(body: Body) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = body.get("metadata") or {}
    return meta
