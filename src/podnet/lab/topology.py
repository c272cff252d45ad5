"""The pods a scenario needs, as the Kubernetes e2e suite lays them out (netpol/model.go).

Namespaces x, y, z; pods named a, b, c labelled `pod: <name>`; each pod serves each port on
each protocol from its own container, with the named port `serve-<port>-<protocol>`. A Model
renders the manifests the lab creates and the `Cluster` the policy engine reads, from one
description, so the expectation and the experiment always talk about the same pods.

Address plan (DESIGN.md §4): node i has the pod subnet 10.244.i.0/24 and the underlay
address 192.0.2.(i+1); pods are numbered from .2 in their node's subnet. Without nodes,
every pod is in 10.244.0.0/24 and has no nodeName.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from podnet.lab.reachability import PodString, Reachability
from podnet.model import Cluster, IPAddress, Manifest, Protocol, build_cluster

PORTS = (80, 81)
PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)
NAMESPACES = ("x", "y", "z")
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"
_SOURCE = "<model>"

Manifests = list[dict[str, Any]]


@dataclass(frozen=True)
class Container:
    """One server: a port on a protocol."""

    port: int
    protocol: Protocol

    @property
    def name(self) -> str:
        return f"cont-{self.port}-{self.protocol.lower()}"

    @property
    def port_name(self) -> str:
        return f"serve-{self.port}-{self.protocol.lower()}"

    def manifest(self) -> dict[str, Any]:
        """The container spec: agnhost serving this port, as upstream runs it."""
        spec: dict[str, Any] = {"name": self.name, "image": AGNHOST}
        if self.protocol is Protocol.SCTP:
            spec["command"] = ["/agnhost", "porter"]
            spec["env"] = [{"name": f"SERVE_SCTP_PORT_{self.port}", "value": "foo"}]
        else:
            flag = "--tcp" if self.protocol is Protocol.TCP else "--udp"
            spec["command"] = ["/agnhost", "serve-hostname", flag, "--http=false",
                               "--port", str(self.port)]
        spec["ports"] = [{"containerPort": self.port, "name": self.port_name,
                          "protocol": str(self.protocol)}]
        return spec


@dataclass(frozen=True)
class ModelNamespace:
    name: str
    labels: Mapping[str, str]

    def manifest(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": self.name, "labels": dict(self.labels)}}


@dataclass(frozen=True)
class ModelPod:
    namespace: str
    name: str
    containers: tuple[Container, ...]
    ip: IPAddress
    labels: Mapping[str, str]
    node_name: str | None = None

    @property
    def key(self) -> PodString:
        return PodString.of(self.namespace, self.name)

    def manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"terminationGracePeriodSeconds": 0,
                                "containers": [c.manifest() for c in self.containers]}
        if self.node_name is not None:
            spec["nodeName"] = self.node_name
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": dict(self.labels)},
            "spec": spec,
            "status": {"podIP": str(self.ip), "podIPs": [{"ip": str(self.ip)}]},
        }


@dataclass(frozen=True)
class Model:
    """Namespaces x pods x ports x protocols; immutable, label changes give a new Model."""

    namespaces: tuple[ModelNamespace, ...]
    pods: tuple[ModelPod, ...]
    nodes: tuple[str, ...] = field(default=())

    @classmethod
    def from_pod_strings(
        cls,
        *pods: str,
        ports: Sequence[int] = PORTS,
        protocols: Sequence[Protocol] = PROTOCOLS,
        namespaces: Sequence[str] = NAMESPACES,
        nodes: Sequence[str] = (),
    ) -> Model:
        """A minimal topology ("x/a", "y/b"...); namespaces x, y, z exist even without pods."""
        if not pods:
            raise ValueError("a model needs at least one pod")
        keys = [PodString(p) for p in pods]
        if len(set(keys)) != len(keys):
            raise ValueError(f"pods repeated in {list(pods)}")
        names = list(namespaces) + sorted({k.namespace for k in keys} - set(namespaces))
        containers = tuple(Container(port, proto) for port in ports for proto in protocols)
        count: dict[int, int] = {}
        model_pods = []
        for i, key in enumerate(keys):
            node = i % len(nodes) if nodes else 0
            count[node] = count.get(node, 0) + 1
            model_pods.append(ModelPod(
                namespace=key.namespace,
                name=key.pod_name,
                containers=containers,
                ip=ipaddress.IPv4Address(f"10.244.{node}.{count[node] + 1}"),
                labels={"pod": key.pod_name},
                node_name=nodes[node] if nodes else None,
            ))
        return cls(
            namespaces=tuple(ModelNamespace(n, {"ns": n}) for n in names),
            pods=tuple(model_pods),
            nodes=tuple(nodes),
        )

    @classmethod
    def grid(
        cls,
        namespaces: Sequence[str] = NAMESPACES,
        pod_names: Sequence[str] = ("a", "b", "c"),
        **options: Any,
    ) -> Model:
        """Every pod name in every namespace, as upstream's NewModel."""
        pods = [f"{ns}/{p}" for ns in namespaces for p in pod_names]
        return cls.from_pod_strings(*pods, namespaces=namespaces, **options)

    def pod_strings(self) -> tuple[PodString, ...]:
        return tuple(p.key for p in self.pods)

    def pod(self, key: str) -> ModelPod:
        for p in self.pods:
            if p.key == key:
                return p
        raise KeyError(f"no pod {key!r} in the model {list(self.pod_strings())}")

    def with_pod_labels(self, key: str, labels: Mapping[str, str]) -> Model:
        """The model after adding (or overwriting) labels on one pod."""
        target = self.pod(key)
        new = replace(target, labels={**target.labels, **labels})
        return replace(self, pods=tuple(new if p is target else p for p in self.pods))

    def with_namespace_labels(self, name: str, labels: Mapping[str, str]) -> Model:
        """The model after adding (or overwriting) labels on one namespace."""
        if name not in {n.name for n in self.namespaces}:
            raise KeyError(f"no namespace {name!r} in the model")
        return replace(self, namespaces=tuple(
            replace(n, labels={**n.labels, **labels}) if n.name == name else n
            for n in self.namespaces
        ))

    def reachability(self, default: bool = True) -> Reachability:
        """A Reachability over all pods, everything expected `default` (upstream: allowed)."""
        return Reachability(self.pod_strings(), default)

    def manifests(self) -> Manifests:
        """Nodes, namespaces and pods, as YAML-ready dicts."""
        nodes = [_node_manifest(i, name) for i, name in enumerate(self.nodes)]
        return (nodes + [n.manifest() for n in self.namespaces]
                + [p.manifest() for p in self.pods])

    def cluster(self, objects: Iterable[Mapping[str, Any]] = ()) -> Cluster:
        """The cluster of these pods plus `objects` (NetworkPolicies, more pods), as if loaded
        from files: defaulted and validated by podnet.model (ManifestError if one is invalid)."""
        return build_cluster(_manifest(body) for body in [*self.manifests(), *objects])


def _node_manifest(index: int, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": f"10.244.{index}.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": f"192.0.2.{index + 1}"}]},
    }


def _manifest(body: Mapping[str, Any]) -> Manifest:
    meta = body.get("metadata") or {}
    kind = str(body.get("kind", ""))
    namespace = None if kind in ("Namespace", "Node") else meta.get("namespace", "default")
    return Manifest(_SOURCE, kind, namespace, str(meta.get("name", "")), dict(body))
