"""A generated cluster for the analyzer benchmark: namespaces, pods and NetworkPolicies.

Realistic in shape and deterministic from a seed. Namespaces carry team/env labels; pods
come in Deployment-like groups (the same app/tier/version labels, a ReplicaSet owner, named
container ports, an IP in 10.244.0.0/16), written as Pods so that both analyzers read them
as they would read a `kubectl get pods -o yaml` dump. Policies mix what real clusters have:
default-deny, podSelector and namespaceSelector peers, matchExpressions, named ports and
numeric ranges with endPort, and egress to ipBlocks with except.

ipBlocks stay outside the cluster CIDR on purpose: whether an ipBlock selects pod IPs is
left to the implementation by the API, and network-config-analyzer never matches pods by
IP, so a block over pod IPs would make the two tools disagree by definition.

    python bench/generate.py --pods 200 --policies 40 --seed 1 OUT_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POD_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
PODS_PER_NODE = 250
PODS_PER_NAMESPACE = 50

TEAMS = ("payments", "search", "identity", "catalog", "shipping", "platform", "data", "web")
ENVS = ("prod", "staging", "dev")
VERSIONS = ("v1", "v2", "v3")
APPS = ("cart", "checkout", "auth", "profile", "ledger", "index", "query", "ingest", "report",
        "notify", "mailer", "gateway", "images", "pricing", "stock", "orders", "billing", "feed")

# What each tier listens on: (name, port, protocol). Names are IANA_SVC_NAMEs.
TIER_PORTS: dict[str, tuple[tuple[str, int, str], ...]] = {
    "frontend": (("http", 8080, "TCP"), ("metrics", 9090, "TCP")),
    "backend": (("http", 8080, "TCP"), ("grpc", 50051, "TCP"), ("metrics", 9090, "TCP")),
    "db": (("postgres", 5432, "TCP"), ("metrics", 9187, "TCP")),
    "cache": (("redis", 6379, "TCP"),),
    "queue": (("amqp", 5672, "TCP"), ("stats", 15692, "TCP"), ("discovery", 4369, "UDP")),
}
TIERS = tuple(TIER_PORTS)
EXTERNAL = ("0.0.0.0/0", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
PARTNERS = (("203.0.113.0/24", ("203.0.113.128/25",)), ("198.51.100.0/24", ("198.51.100.0/28",)))
LOAD_BALANCERS = ("198.18.0.0/15", ("198.18.0.0/24",))


@dataclass
class Group:
    """A Deployment's pods: same namespace and labels, so the same connectivity."""

    namespace: str
    app: str
    tier: str
    version: str
    replicas: int


@dataclass
class Cluster:
    namespaces: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)


def generate(pods: int, policies: int, seed: int) -> Cluster:
    """`pods` pods in Deployment-like groups and `policies` NetworkPolicies, all from `seed`."""
    rng = random.Random(seed)
    names = [f"{TEAMS[i % len(TEAMS)]}-{ENVS[i % len(ENVS)]}-{i}"
             for i in range(max(2, -(-pods // PODS_PER_NAMESPACE)))]
    cluster = Cluster(namespaces=[_namespace(n) for n in names])
    groups = list(_groups(rng, names, pods))
    ips = POD_CIDR.hosts()
    for index, group in enumerate(groups):
        cluster.pods += _pods(seed, index, group, ips)
    cluster.policies = list(_policies(rng, names, groups, policies))
    return cluster


def write(cluster: Cluster, out: Path) -> list[Path]:
    """Three files, as `kubectl get -o yaml` would dump them; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, items in (("namespaces", cluster.namespaces), ("pods", cluster.pods),
                        ("policies", cluster.policies)):
        path = out / f"{name}.yaml"
        text = yaml.dump({"apiVersion": "v1", "kind": "List", "items": items},
                         Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
        path.write_text(text)
        files.append(path)
    return files


def _namespace(name: str) -> dict[str, Any]:
    team, env, _ = name.split("-")
    labels = {"kubernetes.io/metadata.name": name, "team": team, "env": env}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _groups(rng: random.Random, namespaces: list[str], pods: int) -> Iterator[Group]:
    left = pods
    index = 0
    while left > 0:
        replicas = min(left, rng.choice((1, 2, 2, 3, 3, 4, 5, 8)))
        namespace = namespaces[index % len(namespaces)]
        app = f"{APPS[rng.randrange(len(APPS))]}-{index}"
        yield Group(namespace, app, rng.choice(TIERS), rng.choice(VERSIONS), replicas)
        left -= replicas
        index += 1


def _pods(seed: int, index: int, g: Group, ips: Iterator[ipaddress.IPv4Address]
          ) -> list[dict[str, Any]]:
    template_hash = _suffix(f"{seed}/{g.namespace}/{g.app}", 10)
    replica_set = f"{g.app}-{template_hash}"
    labels = {"app": g.app, "tier": g.tier, "version": g.version,
              "pod-template-hash": template_hash}
    ports = [{"name": n, "containerPort": p, "protocol": proto}
             for n, p, proto in TIER_PORTS[g.tier]]
    pods = []
    for r in range(g.replicas):
        ip = next(ips)
        node = f"node-{(int(ip) - int(POD_CIDR.network_address)) // PODS_PER_NODE}"
        pods.append({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{replica_set}-{_suffix(f'{replica_set}/{r}', 5)}",
                "namespace": g.namespace,
                "labels": dict(labels),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                     "name": replica_set, "controller": True}],
            },
            "spec": {"nodeName": node, "containers": [
                {"name": g.app, "image": f"registry.example/{g.app}:{g.version}", "ports": ports}]},
            "status": {"phase": "Running", "podIP": str(ip), "podIPs": [{"ip": str(ip)}]},
        })
    return pods


def _policies(rng: random.Random, namespaces: list[str], groups: list[Group], count: int
              ) -> Iterator[dict[str, Any]]:
    """Default-deny first (a third of namespaces isolate egress too), then allow rules."""
    made = 0
    for i, ns in enumerate(namespaces):
        if made == count:
            return
        types = ["Ingress", "Egress"] if i % 3 == 0 else ["Ingress"]
        spec: dict[str, Any] = {"podSelector": {}, "policyTypes": types}
        if "Egress" in types:  # DNS stays open, as every real default-deny-egress does
            spec["egress"] = [{"to": [{"namespaceSelector": {}}],
                               "ports": [{"protocol": "UDP", "port": 53},
                                         {"protocol": "TCP", "port": 53}]}]
        made += 1
        yield _policy(ns, "default-deny", spec)
    by_ns: dict[str, list[Group]] = {}
    for g in groups:
        by_ns.setdefault(g.namespace, []).append(g)
    makers = (_from_tier, _from_teams, _from_expressions, _port_range, _egress_external,
              _egress_to_tier, _from_load_balancers)
    while made < count:
        ns = namespaces[made % len(namespaces)]
        target = rng.choice(by_ns[ns])
        maker = makers[rng.randrange(len(makers))]
        name = f"{maker.__name__[1:].replace('_', '-')}-{target.app}-{made}"
        made += 1
        yield _policy(ns, name, maker(rng, target, namespaces))


def _policy(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _app(g: Group) -> dict[str, Any]:
    return {"matchLabels": {"app": g.app}}


def _named_port(g: Group) -> dict[str, Any]:
    name, _, protocol = TIER_PORTS[g.tier][0]
    return {"protocol": protocol, "port": name}


def _from_tier(rng: random.Random, g: Group, _: list[str]) -> dict[str, Any]:
    """Ingress from a tier of the same namespace, on the target's first named port."""
    peer = {"podSelector": {"matchLabels": {"tier": rng.choice(TIERS)},
                            "matchExpressions": [{"key": "app", "operator": "Exists"}]}}
    return {"podSelector": _app(g), "policyTypes": ["Ingress"],
            "ingress": [{"from": [peer], "ports": [_named_port(g)]}]}


def _from_teams(rng: random.Random, g: Group, namespaces: list[str]) -> dict[str, Any]:
    """Ingress from chosen pods of two teams' namespaces (selectors ANDed in one peer)."""
    team, env, _ = rng.choice(namespaces).split("-")
    teams = sorted({team, rng.choice(TEAMS)})
    peer = {"namespaceSelector": {"matchLabels": {"env": env},
                                  "matchExpressions": [{"key": "team", "operator": "In",
                                                        "values": teams}]},
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In",
                                                  "values": ["frontend", "backend"]}]}}
    port = TIER_PORTS[g.tier][rng.randrange(len(TIER_PORTS[g.tier]))]
    return {"podSelector": _app(g), "policyTypes": ["Ingress"],
            "ingress": [{"from": [peer], "ports": [{"protocol": port[2], "port": port[1]}]}]}


def _from_expressions(rng: random.Random, g: Group, _: list[str]) -> dict[str, Any]:
    """A tier-wide policy: from newer versions anywhere in the cluster, and from monitoring."""
    # No Exists here: network-config-analyzer 2.1.0 looks for Exists/DoesNotExist peers only
    # in the policy's own namespace, even under a namespaceSelector (see bench/README.md).
    newer = {"podSelector": {"matchExpressions": [
        {"key": "version", "operator": "NotIn", "values": [rng.choice(VERSIONS)]},
        {"key": "tier", "operator": "In", "values": sorted(rng.sample(TIERS, 3))}]},
        "namespaceSelector": {}}
    monitoring = {"namespaceSelector": {"matchExpressions": [
        {"key": "env", "operator": "NotIn", "values": ["dev"]}]},
        "podSelector": {"matchLabels": {"tier": "backend"}}}
    return {"podSelector": {"matchLabels": {"tier": g.tier},
                            "matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [newer], "ports": [_named_port(g)]},
                        {"from": [monitoring]}]}


def _port_range(rng: random.Random, g: Group, _: list[str]) -> dict[str, Any]:
    """A numeric range with endPort, from the whole namespace."""
    start = rng.choice((5000, 6000, 8000, 9000))
    return {"podSelector": _app(g), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}],
                         "ports": [{"protocol": "TCP", "port": start,
                                    "endPort": start + rng.choice((10, 100, 500))}]}]}


def _egress_external(rng: random.Random, g: Group, _: list[str]) -> dict[str, Any]:
    """Egress to the internet (private ranges excepted) on 443, or to a partner's range."""
    cidr, excepted = EXTERNAL if rng.random() < 0.5 else rng.choice(PARTNERS)
    return {"podSelector": _app(g), "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": cidr, "except": list(excepted)}}],
                        "ports": [{"protocol": "TCP", "port": 443}]}]}


def _from_load_balancers(rng: random.Random, g: Group, _: list[str]) -> dict[str, Any]:
    """Ingress from the load balancers' range (their health checkers excepted)."""
    cidr, excepted = LOAD_BALANCERS
    return {"podSelector": _app(g), "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": cidr, "except": list(excepted)}}],
                         "ports": [_named_port(g)]}]}


def _egress_to_tier(rng: random.Random, g: Group, _: list[str]) -> dict[str, Any]:
    """Egress to a tier in same-team namespaces, on that tier's named port."""
    tier = rng.choice(TIERS)
    name, _, protocol = TIER_PORTS[tier][0]
    peer = {"namespaceSelector": {"matchLabels": {"team": g.namespace.split("-")[0]}},
            "podSelector": {"matchLabels": {"tier": tier}}}
    return {"podSelector": _app(g), "policyTypes": ["Egress"],
            "egress": [{"to": [peer], "ports": [{"protocol": protocol, "port": name}]}]}


def _suffix(seed: str, length: int) -> str:
    """Kubernetes-looking random suffix (apimachinery's alphabet), repeatable from `seed`."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="directory to write the manifests to")
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--policies", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for path in write(generate(args.pods, args.policies, args.seed), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
