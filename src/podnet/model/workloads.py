"""Controllers (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job) expanded into their pods.

Offline there is no controller manager, so podnet plays it: each controller yields the pods
its controller would create from the template, with names and labels of the same shape
(`web-7c9f8d6b5d-x2x4z`, `db-0`). Suffixes are derived from a hash, so loads are repeatable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from podnet.model.core import decode_pod
from podnet.model.fields import Field
from podnet.model.objects import Node, Pod

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")

# The alphabet of apimachinery's rand.String: no vowels, no confusable digits.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    replicas: int
    template: Pod

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def pods(self, nodes: tuple[Node, ...]) -> list[Pod]:
        """The pods the controller would run (a DaemonSet: one per node, or one without nodes)."""
        labels = dict(self.template.labels)
        if self.kind == "Deployment":
            template_hash = _suffix(self.key, "template", 10)
            labels["pod-template-hash"] = template_hash
            base = f"{self.name}-{template_hash}"
            names = [f"{base}-{_suffix(base, str(i), 5)}" for i in range(self.replicas)]
        elif self.kind == "StatefulSet":
            names = [f"{self.name}-{i}" for i in range(self.replicas)]
        elif self.kind == "DaemonSet":
            count = len(nodes) or 1
            names = [f"{self.name}-{_suffix(self.key, str(i), 5)}" for i in range(count)]
        else:
            if self.kind == "Job":
                labels.setdefault("job-name", self.name)
                labels.setdefault("batch.kubernetes.io/job-name", self.name)
            names = [f"{self.name}-{_suffix(self.key, str(i), 5)}" for i in range(self.replicas)]
        pods = []
        for i, name in enumerate(names):
            pod_labels = dict(labels)
            node_name = self.template.node_name
            if self.kind == "StatefulSet":
                pod_labels["statefulset.kubernetes.io/pod-name"] = name
                pod_labels["apps.kubernetes.io/pod-index"] = str(i)
            if self.kind == "DaemonSet" and nodes:
                node_name = nodes[i].name
            pods.append(replace(self.template, name=name, labels=pod_labels, node_name=node_name))
        return pods

    def owner(self, pod_name: str) -> tuple[str, str]:
        """The (kind, name) a pod of this workload names as its controller."""
        if self.kind == "Deployment":
            return "ReplicaSet", pod_name.rsplit("-", 1)[0]
        return self.kind, self.name

    def owns(self, owner_kind: str, owner_name: str) -> bool:
        """Whether a pod with this owner reference was made by this workload."""
        if self.kind == "Deployment":
            return owner_kind == "ReplicaSet" and owner_name.startswith(f"{self.name}-")
        return owner_kind == self.kind and owner_name == self.name


def decode_workload(f: Field, kind: str, namespace: str, name: str) -> Workload:
    spec = f.get("spec")
    count_f = spec.get("parallelism" if kind == "Job" else "replicas")
    replicas = count_f.integer() if count_f.present else 1
    if replicas < 0:
        count_f.report(f"Invalid value: {replicas}: must be greater than or equal to 0")
    template = decode_pod(spec.get("template"), namespace, "")
    return Workload(kind, namespace, name, max(replicas, 0), template)


def _suffix(seed: str, salt: str, length: int) -> str:
    digest = hashlib.sha256(f"{seed}/{salt}".encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])
