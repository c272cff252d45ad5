"""Connectivity grouped like firewall rules, with exact, short names for groups."""

from pathlib import Path

from podnet.model import load_cluster
from podnet.policy import Engine

MANIFESTS = """
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec: {containers: [{name: c, ports: [{name: serve-80-tcp, containerPort: 80}]}]}
status: {podIP: 10.244.1.2}
---
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.1.3}
---
kind: Pod
metadata: {name: c, namespace: y, labels: {pod: c}}
status: {podIP: 10.244.2.3}
---
kind: NetworkPolicy
metadata: {name: allow-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: a}}}]
    ports: [{port: http}, {port: 9000, endPort: 9100, protocol: UDP}]
---
kind: NetworkPolicy
metadata: {name: egress, namespace: y}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.244.1.0/24]}}]
"""


def lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(MANIFESTS)
    conn = Engine(load_cluster([path])).connectivity()
    return [f"{c.sources.description} -> {c.destinations.description}: {c.ports}"
            for c in conn.connections]


def test_grouped_connectivity_reads_like_firewall_rules(tmp_path: Path) -> None:
    assert lines(tmp_path) == [
        "0.0.0.0/0 -> x/a, y/*: all",
        "x/a -> x/b: TCP 8080; UDP 9000-9100",
        "x/a -> y/*, 0.0.0.0/0: all",
        "x/b -> x/a, y/*, 0.0.0.0/0: all",
        "y/* -> 10.0.0.0/8 except 10.244.1.0/24: all",
    ]


def test_between_pods(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MANIFESTS)
    conn = Engine(load_cluster([path])).connectivity()
    assert str(conn.between("x/a", "x/b")) == "TCP 8080; UDP 9000-9100"
    assert conn.between("y/c", "x/a").is_empty()  # 10.244.1.0/24 is excepted
    assert conn.between("y/c", "y/c").is_all()  # loopback
