"""The nftables compiler, without root: what `render` puts in the table, and how it grows.

The scenario: node-1 runs x/a and x/b, node-2 runs y/c. Its policies touch each feature the
compiler translates (selectors, ipBlock with except, named ports on both sides, endPort,
SCTP, default deny), and the checks read the table the way an operator reads `nft list`.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine_vs_oracle import clusters

from podnet.model import Cluster, IPAddress, Pod, Protocol, load_cluster
from podnet.policy import Engine
from podnet.policy.nftables import NodePod, NodePodError, render

MANIFESTS = """
kind: Namespace
metadata: {name: x, labels: {team: x}}
---
kind: Namespace
metadata: {name: y, labels: {team: y}}
---
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
spec: {nodeName: node-1, containers: [{name: c}]}
status: {podIP: 10.244.1.10}
---
kind: Pod
metadata: {name: b, namespace: x, labels: {app: b}}
spec:
  nodeName: node-1
  containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]
status: {podIP: 10.244.1.11}
---
kind: Pod
metadata: {name: c, namespace: y, labels: {app: c}}
spec:
  nodeName: node-2
  containers: [{name: c, ports: [{name: http, containerPort: 80},
                                 {name: dns, containerPort: 53, protocol: UDP}]}]
status: {podIP: 10.244.2.12}
---
kind: NetworkPolicy
metadata: {name: b-in, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{port: http}, {protocol: SCTP, port: 9999}]
  - from: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.64/26]}}]
    ports: [{port: 80, endPort: 90}]
---
kind: NetworkPolicy
metadata: {name: a-out, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: y}}}]
    ports: [{protocol: UDP, port: dns}, {port: http}]
  - to: [{podSelector: {matchLabels: {app: b}}}]
---
kind: NetworkPolicy
metadata: {name: deny-all, namespace: y}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""

NODE_1 = (NodePod("x/a", "pna", (ipaddress.IPv4Address("10.244.1.10"),)),
          NodePod("x/b", "pnb", (ipaddress.IPv4Address("10.244.1.11"),)))


def load(tmp_path: Path, text: str = MANIFESTS) -> Cluster:
    (tmp_path / "cluster.yaml").write_text(text)
    return load_cluster([tmp_path])


@pytest.fixture
def table(tmp_path: Path) -> dict[str, Any]:
    return render(Engine(load(tmp_path)).resolution, NODE_1)


def objects(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {o[kind]["name"]: o[kind] for o in doc["nftables"] if kind in o}


def chain_rules(doc: dict[str, Any], chain: str) -> list[dict[str, Any]]:
    return [o["rule"] for o in doc["nftables"] if "rule" in o and o["rule"]["chain"] == chain]


def elements(doc: dict[str, Any], ref: str) -> list[Any]:
    """The elements of the set a rule refers to as `@name`."""
    return list(objects(doc, "set")[ref.removeprefix("@")].get("elem", []))


def describe(doc: dict[str, Any], rule: dict[str, Any]) -> str:
    """A rule as a line: `saddr {...} l4proto.dport {...} -> accept  # comment`."""
    parts = []
    for e in rule["expr"]:
        if "match" in e and str(e["match"]["right"]).startswith("@"):
            left = e["match"]["left"]
            key = ".".join(k["payload"]["field"] if "payload" in k else k["meta"]["key"]
                           for k in left.get("concat", [left]))
            parts.append(f"{key} {elements(doc, e['match']['right'])}")
        elif "jump" in e:
            parts.append("jump")
        elif set(e) & {"accept", "drop"}:
            parts.append(f"-> {next(iter(e))}")
    return f"{' '.join(parts)}  # {rule.get('comment', '')}"


def policy_chains(doc: dict[str, Any], ifname: str, direction: str) -> list[str]:
    """The rules a pod's traffic meets in `direction`, through its map entry and jumps."""
    (entry,) = [e for e in objects(doc, "map")[direction].get("elem", []) if e[0] == ifname]
    lines = []
    for rule in chain_rules(doc, entry[1]["jump"]["target"]):
        jump = [e["jump"]["target"] for e in rule["expr"] if "jump" in e]
        for target in jump:
            lines += [describe(doc, r) for r in chain_rules(doc, target)]
        if not jump:
            lines.append(describe(doc, rule))
    return lines


def test_rules_name_their_policy_rule_and_read_as_the_policies_say(table: dict[str, Any]) -> None:
    assert policy_chains(table, "pnb", "ingress") == [
        # named port `http` resolved on b itself (8080); SCTP kept as written
        "saddr ['10.244.1.10'] l4proto.dport [{'concat': ['tcp', 8080]}, "
        "{'concat': ['sctp', 9999]}] -> accept  # x/b-in ingress[0]",
        # the ipBlock with its except cut out, endPort as a range
        "saddr [{'prefix': {'addr': '203.0.113.0', 'len': 26}}, "
        "{'prefix': {'addr': '203.0.113.128', 'len': 25}}] "
        "l4proto.dport [{'concat': ['tcp', {'range': [80, 90]}]}] -> accept  # x/b-in ingress[1]",
        "-> drop  # default deny ingress: x/b-in",
    ]
    assert policy_chains(table, "pna", "egress") == [
        # named ports resolved on each destination pod: c (on node-2) has dns=53, http=80
        "daddr.l4proto.dport [{'concat': ['10.244.2.12', 'tcp', 80]}, "
        "{'concat': ['10.244.2.12', 'udp', 53]}] -> accept  # x/a-out egress[0]",
        "daddr ['10.244.1.11'] -> accept  # x/a-out egress[1]",
        "-> drop  # default deny egress: x/a-out",
    ]


def test_only_isolated_pods_have_map_entries(table: dict[str, Any]) -> None:
    maps = objects(table, "map")
    assert [e[0] for e in maps["ingress"]["elem"]] == ["pnb"]
    assert [e[0] for e in maps["egress"]["elem"]] == ["pna"]


def test_every_policy_rule_and_default_deny_counts(table: dict[str, Any]) -> None:
    rules = [r for o in table["nftables"] if "rule" in o for r in [o["rule"]]]
    verdicts = [r for r in rules if any(set(e) & {"accept", "drop"} for e in r["expr"])]
    counted = [r for r in verdicts if any("counter" in e for e in r["expr"])]
    assert {r["comment"] for r in counted} >= {
        "x/b-in ingress[0]", "x/b-in ingress[1]", "x/a-out egress[0]", "x/a-out egress[1]",
        "default deny ingress: x/b-in", "default deny egress: x/a-out",
        "anti-spoofing: source address is not the pod's"}
    # Only the connection-tracking shortcuts go uncounted.
    assert {json_key(r) for r in verdicts if r not in counted} == {"ct state"}


def json_key(rule: dict[str, Any]) -> str:
    return "ct state" if any("ct" in e["match"]["left"] for e in rule["expr"] if "match" in e) \
        else str(rule)


def test_anti_spoofing_pairs_each_veth_with_its_own_addresses(table: dict[str, Any]) -> None:
    sets = objects(table, "set")
    assert sets["pod_addresses"]["type"] == ["ifname", "ipv4_addr"]
    assert sets["pod_addresses"]["elem"] == [{"concat": ["pna", "10.244.1.10"]},
                                            {"concat": ["pnb", "10.244.1.11"]}]
    spoof = chain_rules(table, "forward_egress")[0]
    assert spoof["comment"].startswith("anti-spoofing")
    assert chain_rules(table, "input_egress")[0]["expr"] == spoof["expr"]


def test_base_chains_hook_forward_twice_and_input(table: dict[str, Any]) -> None:
    chains = objects(table, "chain")
    hooks = {n: (c["hook"], c["prio"]) for n, c in chains.items() if "hook" in c}
    assert hooks == {"forward_egress": ("forward", 0), "forward_ingress": ("forward", 10),
                     "input_egress": ("input", 0)}
    # Replies of allowed connections pass before any policy is looked at.
    for name in hooks:
        first_verdicts = [r for r in chain_rules(table, name) if "comment" not in r]
        assert first_verdicts[0]["expr"][0]["match"]["right"] == ["established", "related"]
        # What the table drops is a pod's: the node's other traffic only meets `accept`s.
        for rule in chain_rules(table, name):
            if {"drop": None} in rule["expr"]:
                assert rule["expr"][0]["match"]["right"] == "@pod_ifnames", rule


def test_render_is_deterministic(tmp_path: Path) -> None:
    res = Engine(load(tmp_path)).resolution
    shuffled = list(NODE_1)
    random.Random(1).shuffle(shuffled)
    assert render(res, NODE_1) == render(res, tuple(reversed(NODE_1))) == render(res, shuffled)


def test_a_pod_unknown_to_the_cluster_or_a_veth_named_twice_is_an_error(tmp_path: Path) -> None:
    res = Engine(load(tmp_path)).resolution
    with pytest.raises(NodePodError, match="x/ghost"):
        render(res, [NodePod("x/ghost", "pnz", ())])
    with pytest.raises(NodePodError, match="veth pna given for x/a and x/b"):
        render(res, [NodePod("x/a", "pna", ()), NodePod("x/b", "pna", ())])


def scale_cluster(tmp_path: Path, count: int) -> Cluster:
    """`count` pods in 10 namespaces, and `count` policies: each isolates one pod and lets
    its namespace's pods with one label in on two ports."""
    docs: list[dict[str, Any]] = [{"kind": "Namespace", "metadata": {"name": f"n{k}"}}
                                  for k in range(10)]
    for i in range(count):
        ns = f"n{i % 10}"
        docs.append({"kind": "Pod", "metadata": {"name": f"p{i}", "namespace": ns,
                                                 "labels": {"app": f"p{i}", "tier": str(i % 3)}},
                     "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
                     "status": {"podIP": str(ipaddress.IPv4Address("10.244.0.0") + i + 2)}})
        docs.append({"kind": "NetworkPolicy", "metadata": {"name": f"np{i}", "namespace": ns},
                     "spec": {"podSelector": {"matchLabels": {"app": f"p{i}"}},
                              "ingress": [{"from": [{"podSelector": {"matchLabels": {
                                  "tier": str(i % 3)}}}], "ports": [{"port": 80},
                                                                   {"port": 443}]}]}})
    (tmp_path / "scale.yaml").write_text(yaml.safe_dump_all(docs))
    return load_cluster([tmp_path / "scale.yaml"])


def sizes(doc: dict[str, Any]) -> tuple[int, int]:
    """(rules, set elements)."""
    objs = doc["nftables"]
    return (sum("rule" in o for o in objs),
            sum(len(o.get("set", o.get("map", {})).get("elem", [])) for o in objs))


def test_the_ruleset_grows_with_pods_plus_policies(tmp_path: Path) -> None:
    counts = {}
    for n in (60, 120):
        cluster = scale_cluster(tmp_path, n)
        node_pods = [NodePod(p.key, f"pn{i}", p.ips) for i, p in enumerate(cluster.pods)]
        counts[n] = sizes(render(Engine(cluster).resolution, node_pods))
    # Twice the pods and policies: about twice the rules and elements, not four times.
    assert counts[120][0] <= 2 * counts[60][0] + 10
    assert counts[120][1] <= 2.2 * counts[60][1]


# -- the table, evaluated packet by packet, against the engine on random clusters ------------

NODES = {"node-1": "192.0.2.1", "node-2": "192.0.2.2"}  # as test_engine_vs_oracle draws them
PROBE_PORTS = st.lists(st.sampled_from([53, 79, 80, 81, 82, 90, 8080]), min_size=1, max_size=3,
                       unique=True)
UNDERLAY = "eth0"  # the node's interface towards other nodes and the outside


@dataclass(frozen=True)
class Packet:
    """The first packet of a connection (conntrack state new), as one node's hook sees it."""

    hook: str
    iifname: str
    oifname: str
    saddr: str
    daddr: str
    l4proto: str
    dport: int


class Table:
    """Evaluates the subset of nftables JSON that `render` emits, as the kernel would."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.sets = {**objects(doc, "set"), **objects(doc, "map")}
        self.chains = {name: chain_rules(doc, name) for name in objects(doc, "chain")}
        self.base = sorted((c["prio"], n, c["hook"]) for n, c in objects(doc, "chain").items()
                           if "hook" in c)

    def accepts(self, packet: Packet) -> bool:
        # `accept` ends one base chain; the next one on the hook still sees the packet.
        return all(self.run(name, packet) != "drop"
                   for _, name, hook in self.base if hook == packet.hook)

    def run(self, chain: str, packet: Packet) -> str | None:
        for rule in self.chains[chain]:
            verdict = self.rule(rule["expr"], packet)
            if verdict is not None:
                return verdict
        return None

    def rule(self, exprs: list[dict[str, Any]], packet: Packet) -> str | None:
        for e in exprs:
            if "match" in e:
                if not self.match(e["match"], packet):
                    return None
            elif "jump" in e or "vmap" in e:
                target = e["jump"]["target"] if "jump" in e else self.lookup(e["vmap"], packet)
                verdict = self.run(target, packet) if target else None
                if verdict is not None:
                    return verdict
            elif set(e) & {"accept", "drop"}:
                return next(iter(e))
        return None

    def lookup(self, vmap: dict[str, Any], packet: Packet) -> str | None:
        key = self.value(vmap["key"], packet)
        found = [v for k, v in self.sets[vmap["data"][1:]].get("elem", []) if k == key]
        return found[0]["jump"]["target"] if found else None

    def match(self, m: dict[str, Any], packet: Packet) -> bool:
        right = m["right"]
        if m["op"] == "in":  # ct state: every connection here is new
            return "new" in (right if isinstance(right, list) else [right])
        value = self.value(m["left"], packet)
        if isinstance(right, str) and right.startswith("@"):
            found = any(element_has(e, value) for e in self.sets[right[1:]].get("elem", []))
        else:
            found = value == right
        return found if m["op"] == "==" else not found

    def value(self, expr: dict[str, Any], packet: Packet) -> Any:
        if "concat" in expr:
            return [self.value(part, packet) for part in expr["concat"]]
        if "meta" in expr:
            key = expr["meta"]["key"]
            return "ipv4" if key == "nfproto" else getattr(packet, key)
        field = expr["payload"]["field"]
        return packet.dport if field == "dport" else getattr(packet, field)


def element_has(element: Any, value: Any) -> bool:
    if isinstance(element, dict) and "concat" in element:
        return all(element_has(e, v) for e, v in zip(element["concat"], value, strict=True))
    if isinstance(element, dict) and "range" in element:
        lo, hi = element["range"]
        if isinstance(lo, int):
            return bool(lo <= value <= hi)
        return ipaddress.ip_address(lo) <= ipaddress.ip_address(value) <= ipaddress.ip_address(hi)
    if isinstance(element, dict) and "prefix" in element:
        net = f"{element['prefix']['addr']}/{element['prefix']['len']}"
        return ipaddress.ip_address(value) in ipaddress.ip_network(net)
    return bool(element == value)


def ipv4(endpoint: Pod | IPAddress) -> str | None:
    ips = endpoint.ips if isinstance(endpoint, Pod) else (endpoint,)
    return next((str(ip) for ip in ips if ip.version == 4), None)


def kernel_allows(tables: dict[str, Table], veths: dict[str, str], src: Pod | IPAddress,
                  dst: Pod | IPAddress, protocol: Protocol, port: int) -> bool:
    """Whether the first packet passes the sender's node, then the receiver's node."""
    saddr, daddr = ipv4(src), ipv4(dst)
    assert saddr and daddr
    src_node = src.node_name if isinstance(src, Pod) else None
    dst_node = dst.node_name if isinstance(dst, Pod) else None
    hops = []  # a node's own traffic leaves through output, which the table does not filter
    if isinstance(src, Pod) and not src.host_network:
        hops.append((src_node, veths[src.key]))
    if dst_node is not None and dst_node != src_node:
        hops.append((dst_node, UNDERLAY))
    for node, iif in hops:
        host = isinstance(dst, Pod) and dst.host_network and dst_node == node
        oif = "" if host else veths[dst.key] if dst_node == node else UNDERLAY
        packet = Packet("input" if host else "forward", iif, oif, saddr, daddr,
                        str(protocol).lower(), port)
        if not tables[node].accepts(packet):
            return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), PROBE_PORTS)
def test_the_rendered_tables_decide_as_the_engine(cluster: Cluster, ports: list[int]) -> None:
    engine = Engine(cluster)
    veths = {p.key: f"pnv{i}" for i, p in enumerate(cluster.pods)}
    tables = {node: Table(render(engine.resolution, [
        NodePod(p.key, veths[p.key], p.ips) for p in cluster.pods
        if p.node_name == node and not p.host_network])) for node in NODES}
    held = {ip for p in cluster.pods for ip in p.ips}  # a generated pod may hold 10.244.1.9
    outside = [a for a in map(ipaddress.IPv4Address, ("203.0.113.7", "203.0.113.200",
                                                       "10.244.1.9")) if a not in held]
    for src, dst in itertools.product([*cluster.pods, *outside], repeat=2):
        if src == dst or not (isinstance(src, Pod) or isinstance(dst, Pod)):
            continue
        if isinstance(src, Pod) and isinstance(dst, Pod) and src.host_network and dst.host_network:
            continue  # node to node: not the pod network's
        for protocol, port in itertools.product(Protocol, ports):
            expected = engine.verdict(src, dst, port, protocol).allowed
            assert kernel_allows(tables, veths, src, dst, protocol, port) == expected, (
                src, dst, protocol, port)


def test_with_a_log_group_every_counted_verdict_logs_its_rule(tmp_path: Path) -> None:
    doc = render(Engine(load(tmp_path)).resolution, NODE_1, log_group=5)
    counted = [r for o in doc["nftables"] if "rule" in o for r in [o["rule"]]
               if any("counter" in e for e in r["expr"])]
    assert counted
    for rule in counted:
        (log,) = [e["log"] for e in rule["expr"] if "log" in e]
        assert log == {"prefix": rule["comment"], "group": 5}
    assert not any("log" in e for o in render(Engine(load(tmp_path)).resolution, NODE_1)[
        "nftables"] if "rule" in o for e in o["rule"]["expr"])
