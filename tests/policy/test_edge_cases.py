"""Corners of NetworkPolicy semantics that the upstream e2e suite does not reach.

Each case is a few manifests, as a user writes them, over the e2e topology (pods labelled
`pod: <name>` serving 80 and 81 on TCP, UDP and SCTP as `serve-80-tcp`...), and checks
written `src -> dst PROTOCOL/port allow|deny`. The engine's verdicts and the oracle must
both give every answer. Explanations (which rule allowed, which side isolated) follow.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import oracle
import pytest
import yaml

from podnet.lab import Model
from podnet.model import Cluster, Direction, Protocol
from podnet.policy import Engine, Probe, RuleRef


@dataclass(frozen=True)
class EdgeCase:
    name: str
    manifests: str
    checks: tuple[str, ...]
    pods: tuple[str, ...] = ("x/a", "x/b", "y/a")


def cluster_of(edge: EdgeCase) -> Cluster:
    objects = [d for d in yaml.safe_load_all(edge.manifests) if d]
    return Model.from_pod_strings(*edge.pods).cluster(objects)


def endpoint(cluster: Cluster, text: str) -> oracle.Endpoint:
    return cluster.pod(text) if "/" in text else ipaddress.ip_address(text)


def parse_check(check: str) -> tuple[str, str, Protocol, int, bool]:
    """`x/a -> 10.0.0.1 TCP/80 allow`."""
    src, arrow, dst, probe, outcome = check.split()
    assert arrow == "->" and outcome in ("allow", "deny"), check
    protocol, port = probe.split("/")
    return src, dst, Protocol(protocol), int(port), outcome == "allow"


def http_pods(web1_namespace: str) -> str:
    """Two pods whose port named `http` is 8080 on web1 and 9090 on web2 (in x)."""
    return f"""
kind: Pod
metadata: {{name: web1, namespace: {web1_namespace}, labels: {{app: web}}}}
spec: {{containers: [{{name: c, ports: [{{name: http, containerPort: 8080}}]}}]}}
status: {{podIP: 10.244.0.50}}
---
kind: Pod
metadata: {{name: web2, namespace: x, labels: {{app: web}}}}
spec: {{containers: [{{name: c, ports: [{{name: http, containerPort: 9090}}]}}]}}
status: {{podIP: 10.244.0.51}}
---"""


CASES = [
    EdgeCase("ports [{}] is every TCP port and nothing else", """
kind: NetworkPolicy
metadata: {name: tcp-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{}]}]
""", ("y/a -> x/a TCP/80 allow", "y/a -> x/a TCP/6000 allow", "y/a -> x/a UDP/80 deny",
      "y/a -> x/a SCTP/81 deny", "y/a -> x/b UDP/80 allow")),
    EdgeCase("a named port only matches with its own protocol", """
kind: NetworkPolicy
metadata: {name: udp-by-tcp-name, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{protocol: UDP, port: serve-80-tcp}]}]
""", ("y/a -> x/a UDP/80 deny", "y/a -> x/a TCP/80 deny", "y/a -> x/a UDP/81 deny")),
    EdgeCase("endPort is an inclusive range of one protocol", """
kind: NetworkPolicy
metadata: {name: ranges, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{port: 80, endPort: 90}, {protocol: UDP, port: 1000, endPort: 2000}]
""", ("y/a -> x/a TCP/79 deny", "y/a -> x/a TCP/80 allow", "y/a -> x/a TCP/85 allow",
      "y/a -> x/a TCP/90 allow", "y/a -> x/a TCP/91 deny", "y/a -> x/a UDP/85 deny",
      "y/a -> x/a UDP/999 deny", "y/a -> x/a UDP/1000 allow", "y/a -> x/a UDP/2000 allow",
      "y/a -> x/a UDP/2001 deny", "y/a -> x/a SCTP/1500 deny")),
    EdgeCase("egress: [] without policyTypes is an ingress-only policy", """
kind: NetworkPolicy
metadata: {name: ingress-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress: []
""", ("x/a -> y/a TCP/80 allow", "x/a -> x/b TCP/80 allow", "y/a -> x/a TCP/80 deny",
      "x/b -> x/a TCP/80 deny")),
    EdgeCase("an egress section without policyTypes makes it Ingress and Egress", """
kind: NetworkPolicy
metadata: {name: both, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]
""", ("x/a -> x/b TCP/80 allow", "x/a -> y/a TCP/80 deny", "y/a -> x/a TCP/80 deny",
      "x/b -> x/a TCP/80 deny")),
    EdgeCase("rules of a direction not in policyTypes are ignored", """
kind: NetworkPolicy
metadata: {name: egress-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
""", ("y/a -> x/a TCP/80 allow", "x/b -> x/a TCP/80 allow", "x/a -> x/b TCP/80 deny")),
    EdgeCase("NotIn and DoesNotExist match pods without the key", """
kind: Pod
metadata: {name: web, namespace: x, labels: {pod: web, tier: web}}
spec: {containers: [{name: c, ports: [{name: serve-80-tcp, containerPort: 80}]}]}
status: {podIP: 10.244.0.50}
---
kind: Pod
metadata: {name: db, namespace: x, labels: {pod: db, tier: db}}
spec: {containers: [{name: c}]}
status: {podIP: 10.244.0.51}
---
kind: NetworkPolicy
metadata: {name: not-web, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [web]}]}}]
---
kind: NetworkPolicy
metadata: {name: untiered, namespace: x}
spec:
  podSelector: {matchLabels: {pod: web}}
  ingress:
  - from: [{podSelector: {matchExpressions: [{key: tier, operator: DoesNotExist}]}}]
""", ("x/b -> x/a TCP/80 allow", "x/db -> x/a TCP/80 allow", "x/web -> x/a TCP/80 deny",
      "x/b -> x/web TCP/80 allow", "x/db -> x/web TCP/80 deny", "x/a -> x/web TCP/80 allow")),
    EdgeCase("a named port means its own number on each pod", http_pods("x") + """
kind: NetworkPolicy
metadata: {name: http, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: http}]}]
""", ("y/a -> x/web1 TCP/8080 allow", "y/a -> x/web1 TCP/9090 deny",
      "y/a -> x/web2 TCP/9090 allow", "y/a -> x/web2 TCP/8080 deny",
      "y/a -> x/web1 UDP/8080 deny")),
    EdgeCase("egress to a named port without `to` reaches any pod that has that port",
             http_pods("y") + """
kind: NetworkPolicy
metadata: {name: to-http, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{ports: [{port: http}]}]
""", ("x/a -> y/web1 TCP/8080 allow", "x/a -> x/web2 TCP/9090 allow",
      "x/a -> x/web2 TCP/8080 deny", "x/a -> y/a TCP/80 deny", "x/a -> y/a TCP/8080 deny",
      "x/a -> 203.0.113.7 TCP/8080 deny")),
    EdgeCase("a named port never matches an address, even inside the ipBlock", """
kind: NetworkPolicy
metadata: {name: named-to-block, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0}}]
    ports: [{port: serve-80-tcp}]
  - to: [{ipBlock: {cidr: 198.51.100.0/24}}]
    ports: [{port: 80}]
""", ("x/a -> 203.0.113.7 TCP/80 deny", "x/a -> 198.51.100.7 TCP/80 allow",
      "x/a -> y/a TCP/80 allow", "x/a -> y/a TCP/81 deny")),
    EdgeCase("an SCTP-only policy isolates TCP and UDP", """
kind: NetworkPolicy
metadata: {name: sctp-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{ports: [{protocol: SCTP, port: 80}]}]
""", ("y/a -> x/a SCTP/80 allow", "y/a -> x/a SCTP/81 deny", "y/a -> x/a TCP/80 deny",
      "y/a -> x/a UDP/80 deny")),
    EdgeCase("an address excepted from one peer is still allowed by another", """
kind: NetworkPolicy
metadata: {name: except-then-allow, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.244.0.0/16, except: [10.244.0.4/32]}
    - ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25]}
  - to: [{ipBlock: {cidr: 203.0.113.200/32}}]
---
kind: NetworkPolicy
metadata: {name: y-a-by-selector, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}, podSelector: {matchLabels: {pod: a}}}]}]
""", ("x/a -> y/a TCP/80 allow", "x/a -> x/b TCP/80 allow", "x/a -> 10.244.0.4 TCP/80 deny",
      "x/a -> 10.244.9.9 TCP/80 allow", "x/a -> 203.0.113.10 TCP/80 allow",
      "x/a -> 203.0.113.150 TCP/80 deny", "x/a -> 203.0.113.200 TCP/80 allow")),
    EdgeCase("ipBlock matches pod addresses, as a source too", """
kind: NetworkPolicy
metadata: {name: from-x-b-address, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{ipBlock: {cidr: 10.244.0.3/32}}]}]
""", ("x/b -> x/a TCP/80 allow", "y/a -> x/a TCP/80 deny", "10.244.0.3 -> x/a TCP/80 allow",
      "10.244.0.9 -> x/a TCP/80 deny")),
    EdgeCase("a pod always reaches itself, and addresses are not isolated", """
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
""", ("x/a -> x/a TCP/80 allow", "x/a -> x/b TCP/80 deny", "y/a -> x/a TCP/80 deny",
      "x/a -> 203.0.113.7 UDP/53 deny", "203.0.113.7 -> y/a TCP/80 allow",
      "y/a -> 203.0.113.7 TCP/80 allow")),
    EdgeCase("hostNetwork pods: never selected, matched by ipBlock only, trusted by their node", """
kind: Pod
metadata: {name: agent, namespace: y, labels: {pod: agent}}
spec: {hostNetwork: true, nodeName: node-1, containers: [{name: c}]}
status: {podIP: 192.0.2.1}
---
kind: Pod
metadata: {name: web, namespace: x, labels: {pod: web}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIP: 10.244.0.60}
---
kind: NetworkPolicy
metadata: {name: deny-all, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
kind: NetworkPolicy
metadata: {name: from-everyone-and-the-node, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {}}]
  - from: [{ipBlock: {cidr: 192.0.2.1/32}}]
    ports: [{port: 81}]
---
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec: {podSelector: {matchLabels: {pod: web}}}
""", ("y/agent -> x/a TCP/80 deny", "y/agent -> x/a TCP/81 allow", "x/b -> y/agent TCP/80 allow",
      "y/agent -> x/web TCP/80 allow", "y/agent -> y/a TCP/80 deny", "x/a -> x/web TCP/80 deny")),
    EdgeCase("a named port never resolves on a hostNetwork pod: it is its node's address", """
kind: Pod
metadata: {name: agent, namespace: y, labels: {pod: agent}}
spec:
  hostNetwork: true
  nodeName: node-1
  containers: [{name: c, ports: [{name: dns, containerPort: 53, protocol: UDP}]}]
status: {podIP: 192.0.2.1}
---
kind: Pod
metadata: {name: dns, namespace: y, labels: {pod: dns}}
spec:
  nodeName: node-2
  containers: [{name: c, ports: [{name: dns, containerPort: 53, protocol: UDP}]}]
status: {podIP: 10.244.1.60}
---
kind: NetworkPolicy
metadata: {name: dns-only, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - ports: [{protocol: UDP, port: dns}]
""", ("x/a -> y/dns UDP/53 allow", "x/a -> y/agent UDP/53 deny", "x/a -> 192.0.2.1 UDP/53 deny",
      "x/a -> y/a UDP/53 deny")),
]


def engine_allows(cluster: Cluster, src: str, dst: str, port: int, protocol: Protocol) -> bool:
    verdict = Engine(cluster).verdict(endpoint(cluster, src), endpoint(cluster, dst), port,
                                      protocol)
    return verdict.allowed


def matrix_allows(cluster: Cluster, src: str, dst: str, port: int, protocol: Protocol) -> bool:
    """The engine's matrix (pods alike share their answers) for two pods; else the verdict."""
    if "/" not in src or "/" not in dst:
        return engine_allows(cluster, src, dst, port, protocol)
    (matrix,) = Engine(cluster).matrix([Probe(port, protocol)])
    return matrix.allowed[src][dst]


def oracle_allows(cluster: Cluster, src: str, dst: str, port: int, protocol: Protocol) -> bool:
    return oracle.allowed(cluster, endpoint(cluster, src), endpoint(cluster, dst), port, protocol)


@pytest.mark.parametrize("judge", [engine_allows, matrix_allows, oracle_allows],
                         ids=["engine", "matrix", "oracle"])
@pytest.mark.parametrize("edge", CASES, ids=[c.name for c in CASES])
def test_edge_case(edge: EdgeCase, judge: object) -> None:
    cluster = cluster_of(edge)
    wrong = []
    for check in edge.checks:
        src, dst, protocol, port, expected = parse_check(check)
        if judge(cluster, src, dst, port, protocol) != expected:  # type: ignore[operator]
            wrong.append(check)
    assert not wrong, "wrong answers:\n  " + "\n  ".join(wrong)


EXPLAINED = """
kind: NetworkPolicy
metadata: {name: p1, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: c}}}]
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
    ports: [{port: 80}]
---
kind: NetworkPolicy
metadata: {name: p2, namespace: x}
spec:
  podSelector: {}
  ingress: [{ports: [{port: 80}]}]
---
kind: NetworkPolicy
metadata: {name: p3, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {}}]}, {ports: [{port: 53, protocol: UDP}]}]
"""


def test_explain_names_every_rule_that_allows_and_which_sides_are_isolated() -> None:
    cluster = cluster_of(EdgeCase("explained", EXPLAINED, ()))
    engine = Engine(cluster)
    y_a, x_a, x_b = cluster.pod("y/a"), cluster.pod("x/a"), cluster.pod("x/b")

    v = engine.verdict(y_a, x_a, 80, Protocol.TCP)
    assert v.allowed
    assert v.ingress.isolated and v.ingress.allowed
    assert set(v.ingress.allowed_by) == {RuleRef("x/p1", Direction.INGRESS, 1),
                                         RuleRef("x/p2", Direction.INGRESS, 0)}
    assert v.egress.isolated and v.egress.allowed
    assert v.egress.allowed_by == (RuleRef("y/p3", Direction.EGRESS, 0),)

    v = engine.verdict(y_a, x_a, 81, Protocol.TCP)
    assert not v.allowed
    assert v.ingress.isolated and not v.ingress.allowed and v.ingress.allowed_by == ()
    assert v.egress.allowed  # the egress side allows; the ingress side alone denies

    v = engine.verdict(x_b, y_a, 81, Protocol.TCP)
    assert v.allowed
    assert not v.egress.isolated and not v.ingress.isolated
    assert v.egress.allowed_by == () and v.ingress.allowed_by == ()

    v = engine.verdict(y_a, ipaddress.ip_address("203.0.113.7"), 53, Protocol.UDP)
    assert v.allowed and v.egress.allowed_by == (RuleRef("y/p3", Direction.EGRESS, 1),)
    assert not engine.verdict(y_a, ipaddress.ip_address("203.0.113.7"), 53, Protocol.TCP).allowed

    for src in cluster.pods:
        for dst in cluster.pods:
            if src is not dst:
                v = engine.verdict(src, dst, 80, Protocol.TCP)
                assert v.egress.isolated == oracle.isolated(cluster, src, Direction.EGRESS)
                assert v.ingress.isolated == oracle.isolated(cluster, dst, Direction.INGRESS)
