"""Random small clusters: every answer of the engine agrees with the oracle.

Hypothesis draws 2-3 namespaces and 2-6 pods with random labels, named ports and addresses
(a hostNetwork pod among them at times), and 1-5 valid policies using every feature: both
selectors and their operators, ipBlocks with excepts, protocols, numbered, named and ranged
ports, defaulted and explicit policyTypes, empty and missing rule lists. The manifests go
through podnet.model as files would. Then for sampled (protocol, port) probes the engine's
verdicts (with the rules that allow), matrix and connectivity must equal the oracle on every
pair, each side alone too, and verdicts towards and from outside addresses.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podnet.model import Cluster, Direction, IPAddress, Manifest, Pod, Protocol, build_cluster
from podnet.policy import Engine, Probe

Obj = dict[str, Any]
PROTOCOLS = [p.value for p in Protocol]
NAMESPACES = ["x", "y", "z"]
LABEL_KEYS = ["app", "tier"]
LABEL_VALUES = ["web", "db"]
# A small vocabulary, so that names, numbers, ranges and probes meet often.
PORT_NAMES = ["http", "dns"]
PORT_NUMBERS = [80, 81, 82]
PORT_RANGES = [(80, 81), (81, 82), (82, 82)]
PROBE_PORTS = [79, 80, 81, 82, 83]
# (cidr, except): each except a strict subset, as validation demands.
BLOCKS = [
    ("0.0.0.0/0", []), ("10.244.0.0/16", []), ("10.244.0.0/24", ["10.244.0.0/28"]),
    ("10.244.0.0/16", ["10.244.0.16/28", "10.244.1.0/24"]), ("192.0.2.0/24", []),
    ("203.0.113.0/24", ["203.0.113.128/25"]), ("10.244.0.5/32", []), ("::/0", []),
    ("fd00::/48", ["fd00::/64"]),
]
OUTSIDE = [ipaddress.ip_address(a) for a in ("203.0.113.7", "203.0.113.200", "10.244.0.9",
                                             "10.244.1.9", "192.0.2.77", "8.8.8.8",
                                             "fd00::1", "fd00:0:0:1::1")]

labels = st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=2)
operators = st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"])
expression_keys = st.sampled_from([*LABEL_KEYS, "team"])
label_values = st.lists(st.sampled_from(LABEL_VALUES), min_size=1, max_size=2, unique=True)
protocols = st.sampled_from(PROTOCOLS)
port_numbers = st.sampled_from(PORT_NUMBERS)
port_names = st.lists(st.sampled_from(PORT_NAMES), min_size=1, max_size=2, unique=True)
namespaces = st.sampled_from(NAMESPACES)
RULE_PARTS = st.sampled_from(["missing", "empty", *["some"] * 6])


@st.composite
def selectors(draw: st.DrawFn) -> Obj:
    selector: Obj = {}
    if draw(st.booleans()):
        selector["matchLabels"] = draw(labels)
    expressions = []
    for _ in range(draw(st.integers(0, 2))):
        op = draw(operators)
        expression: Obj = {"key": draw(expression_keys), "operator": op}
        if op in ("In", "NotIn"):
            expression["values"] = draw(label_values)
        expressions.append(expression)
    if expressions:
        selector["matchExpressions"] = expressions
    return selector


@st.composite
def peers(draw: st.DrawFn) -> Obj:
    kind = draw(st.sampled_from(["pod", "namespace", "both", "ipBlock"]))
    if kind == "ipBlock":
        cidr, excepts = draw(st.sampled_from(BLOCKS))
        return {"ipBlock": {"cidr": cidr, "except": excepts} if excepts else {"cidr": cidr}}
    peer: Obj = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = draw(SELECTORS)
    if kind in ("namespace", "both"):
        peer["namespaceSelector"] = draw(SELECTORS)
    return peer


@st.composite
def policy_ports(draw: st.DrawFn) -> Obj:
    port: Obj = {}
    if draw(st.booleans()):
        port["protocol"] = draw(protocols)
    kind = draw(st.sampled_from(["any", "number", "range", "name"]))
    if kind == "number":
        port["port"] = draw(port_numbers)
    elif kind == "range":
        port["port"], port["endPort"] = draw(st.sampled_from(PORT_RANGES))
    elif kind == "name":
        port["port"] = draw(st.sampled_from(PORT_NAMES))
    return port


SELECTORS = selectors()
# The pods a policy applies to: often all of its namespace, or one label, sometimes more.
TARGETS = st.one_of(st.just({}), st.builds(lambda labels: {"matchLabels": labels}, labels),
                    SELECTORS)
PEERS = peers()
POLICY_PORTS = policy_ports()


@st.composite
def rules(draw: st.DrawFn, peers_key: str) -> Obj:
    # Mostly restricted rules: a rule open to every peer and port hides the rest of a policy.
    rule: Obj = {}
    peers_kind = draw(RULE_PARTS)
    if peers_kind != "missing":
        rule[peers_key] = [] if peers_kind == "empty" else draw(st.lists(PEERS, min_size=1,
                                                                         max_size=2))
    ports_kind = draw(RULE_PARTS)
    if ports_kind != "missing":
        rule["ports"] = [] if ports_kind == "empty" else draw(st.lists(POLICY_PORTS, min_size=1,
                                                                       max_size=2))
    return rule


# A rule list: missing, empty (isolation alone), or one or two rules.
RULES = {key: st.one_of(st.none(), st.just([]), *[st.lists(rules(key), min_size=1,
                                                               max_size=2)] * 3)
         for key in ("from", "to")}


@st.composite
def policies(draw: st.DrawFn, index: int, namespace: str) -> Obj:
    spec: Obj = {"podSelector": draw(TARGETS)}
    for key, peers_key in (("ingress", "from"), ("egress", "to")):
        rule_list = draw(RULES[peers_key])
        if rule_list is not None:
            spec[key] = rule_list
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    return {"kind": "NetworkPolicy", "spec": spec,
            "metadata": {"name": f"p{index}", "namespace": namespace}}


@st.composite
def pods(draw: st.DrawFn, index: int, host: int, namespace: str) -> Obj:
    containers = []
    for c in range(draw(st.integers(0, 2))):
        ports = [{"name": name, "containerPort": draw(port_numbers), "protocol": draw(protocols)}
                 for name in draw(port_names)]
        containers.append({"name": f"c{c}", "ports": ports})
    host_network = index == 0 and draw(st.booleans())
    node = draw(st.sampled_from(["node-1", "node-2"]))
    address = ("192.0.2.1" if node == "node-1" else "192.0.2.2") if host_network else (
        f"10.244.{host // 250}.{host % 250 + 2}")
    spec: Obj = {"containers": containers, "nodeName": node}
    if host_network:
        spec["hostNetwork"] = True
    return {"kind": "Pod", "spec": spec, "status": {"podIP": address},
            "metadata": {"name": f"pod{index}", "namespace": namespace,
                         "labels": draw(labels)}}


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    chosen = draw(st.lists(namespaces, min_size=2, max_size=3, unique=True))
    hosts = draw(st.lists(st.integers(0, 499), min_size=2, max_size=6, unique=True))
    objects = [{"kind": "Namespace", "metadata": {"name": ns, "labels": draw(labels)}}
               for ns in chosen]
    # Pods and policies share namespaces, so that policies select pods and peers cross them.
    pod_namespaces = [draw(st.sampled_from(chosen)) for _ in hosts]
    objects += [draw(pods(i, host, ns))
                for i, (host, ns) in enumerate(zip(hosts, pod_namespaces, strict=True))]
    objects += [draw(policies(i, draw(st.sampled_from(pod_namespaces))))
                for i in range(draw(st.integers(1, 5)))]
    return build_cluster(Manifest("hypothesis", o["kind"], o["metadata"].get("namespace"),
                                  o["metadata"]["name"], o) for o in objects)


probe_ports = st.lists(st.sampled_from(PROBE_PORTS), min_size=1, max_size=2, unique=True)
outside = st.lists(st.sampled_from(OUTSIDE), min_size=1, max_size=2, unique=True)
checks = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def beyond_policy(src: oracle.Endpoint, dst: oracle.Endpoint) -> bool:
    """Loopback and a node's own traffic: allowed whatever each side's policies say."""
    return isinstance(src, Pod) and isinstance(dst, Pod) and (
        src.key == dst.key
        or (src.host_network and src.node_name is not None and src.node_name == dst.node_name))


def check_sides(cluster: Cluster, src: oracle.Endpoint, dst: oracle.Endpoint, port: int,
                protocol: Protocol, ingress: bool, egress: bool) -> None:
    """Each side alone agrees too, so that one side's denial cannot hide the other's error."""
    if not beyond_policy(src, dst):
        where = (src, dst, protocol, port)
        assert ingress == oracle.ingress_allows(cluster, src, dst, port, protocol), where
        assert egress == oracle.egress_allows(cluster, src, dst, port, protocol), where


@checks
@given(clusters(), probe_ports, outside)
def test_verdicts_agree_with_the_oracle(
    cluster: Cluster, ports: list[int], addresses: list[IPAddress]
) -> None:
    engine = Engine(cluster)
    pairs: list[tuple[oracle.Endpoint, oracle.Endpoint]] = [
        (src, dst) for src in cluster.pods for dst in cluster.pods]
    pairs += [pair for pod in cluster.pods for a in addresses for pair in ((pod, a), (a, pod))]
    for protocol in Protocol:
        for port in ports:
            for src, dst in pairs:
                v = engine.verdict(src, dst, port, protocol)
                assert v.allowed == oracle.allowed(cluster, src, dst, port, protocol), (
                    src, dst, protocol, port, v)
                check_sides(cluster, src, dst, port, protocol, v.ingress.allowed,
                            v.egress.allowed)
                if beyond_policy(src, dst):
                    continue
                if isinstance(dst, Pod):
                    assert v.ingress.isolated == oracle.isolated(cluster, dst, Direction.INGRESS)
                if isinstance(src, Pod):
                    assert v.egress.isolated == oracle.isolated(cluster, src, Direction.EGRESS)
                # The reasons: every rule that allows, so no rule hides another's mistake.
                for side in (v.ingress, v.egress):
                    assert {(r.policy, r.index) for r in side.allowed_by} == (
                        oracle.allowing_rules(cluster, src, dst, port, protocol, side.direction)
                    ), (src, dst, protocol, port, side)
                    assert all(r.direction is side.direction for r in side.allowed_by)


@checks
@given(clusters(), probe_ports)
def test_matrix_and_connectivity_agree_with_the_oracle(cluster: Cluster, ports: list[int]) -> None:
    engine = Engine(cluster)
    probes = [Probe(port, protocol) for protocol in Protocol for port in ports]
    connectivity = engine.connectivity()
    for probe, matrix in zip(probes, engine.matrix(probes), strict=True):
        assert set(matrix.pods) == {p.key for p in cluster.pods}
        port, protocol = probe.port, probe.protocol
        for src in cluster.pods:
            for dst in cluster.pods:
                s, d = src.key, dst.key
                expected = oracle.allowed(cluster, src, dst, port, protocol)
                assert matrix.allowed[s][d] == expected, (s, d, probe)
                assert connectivity.between(s, d).allows(protocol, port) == expected, (s, d, probe)
                check_sides(cluster, src, dst, port, protocol, matrix.ingress[s][d],
                            matrix.egress[s][d])
