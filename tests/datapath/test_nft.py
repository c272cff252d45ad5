"""The compiled table in a real kernel: applied atomically, listed back, and judged by traffic.

A tiny routed node is built in namespaces the test makes: a node namespace, one namespace
per pod joined to it by a veth (pod /32, default route via 169.254.1.1 onlink, host route
`podIP/32 dev veth`, proxy ARP on the node's side), and an "outside" namespace holding two
addresses of 203.0.113.0/24, one inside and one inside the `except` of the policies'
ipBlock. The node's own address belongs to a host-network pod, so the node is an endpoint
too. Every source opens real TCP connections and sends UDP datagrams to every destination;
what arrives (and is answered) must be what `Engine.matrix` and `Engine.verdict` say.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netns import Netns, NetnsFactory
from podnet.datapath import libnftables
from podnet.datapath.netns import DatapathError, run_in
from podnet.datapath.nflog import NflogSocket
from podnet.datapath.nft import (
    NodeTable,
    apply_ruleset,
    comparable,
    delete_table,
    list_table,
    rule_counters,
)
from podnet.model import Cluster, Protocol, load_cluster
from podnet.policy import Engine, Probe
from podnet.policy.nftables import NodePod, render

pytestmark = pytest.mark.netns

NODE_IP = "192.0.2.11"
HOST_MAC = "ee:ee:ee:ee:ee:ee"
POD_IPS = {"x/a": "10.244.1.10", "x/b": "10.244.1.11", "y/c": "10.244.1.12"}
OUTSIDE = ("203.0.113.5", "203.0.113.70")  # in the ipBlock / in its except
PROBES = (Probe(80), Probe(8080), Probe(53, Protocol.UDP), Probe(5353, Protocol.UDP))

PODS = f"""
kind: Namespace
metadata: {{name: x, labels: {{team: x}}}}
---
kind: Namespace
metadata: {{name: y, labels: {{team: y}}}}
---
kind: Namespace
metadata: {{name: kube-system}}
---
kind: Pod
metadata: {{name: a, namespace: x, labels: {{app: a}}}}
spec:
  nodeName: node-1
  containers: [{{name: c, ports: [{{name: dns, containerPort: 5353, protocol: UDP}}]}}]
status: {{podIP: {POD_IPS["x/a"]}}}
---
kind: Pod
metadata: {{name: b, namespace: x, labels: {{app: b}}}}
spec:
  nodeName: node-1
  containers: [{{name: c, ports: [{{name: http, containerPort: 8080}},
                                 {{name: dns, containerPort: 5353, protocol: UDP}}]}}]
status: {{podIP: {POD_IPS["x/b"]}}}
---
kind: Pod
metadata: {{name: c, namespace: y, labels: {{app: c}}}}
spec:
  nodeName: node-1
  containers: [{{name: c, ports: [{{name: http, containerPort: 80}},
                                 {{name: dns, containerPort: 53, protocol: UDP}}]}}]
status: {{podIP: {POD_IPS["y/c"]}}}
---
kind: Pod
metadata: {{name: agent, namespace: kube-system}}
spec: {{nodeName: node-1, hostNetwork: true, containers: [{{name: c}}]}}
status: {{podIP: {NODE_IP}}}
"""

POLICIES = """
kind: NetworkPolicy
metadata: {name: b-in, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{port: http}, {protocol: SCTP, port: 9999}]   # named: 8080 on b
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
    ports: [{protocol: UDP, port: dns}]                   # named: 53 on c, not a's 5353
  - to: [{podSelector: {matchLabels: {app: b}}}]
  - to: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.64/26]}}]
    ports: [{port: 80}]
---
kind: NetworkPolicy
metadata: {name: c-in, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: x}}}]
    ports: [{protocol: UDP}]
"""

LISTENER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
# One socket per address: a UDP answer then leaves from the address that was asked.
for address, spec in ((a, s) for a in sys.argv[1].split(",") for s in sys.argv[2:]):
    proto, port = spec.split("/")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, int(port)))
    if s.type == socket.SOCK_STREAM:
        s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s.type == socket.SOCK_STREAM:
            conn, _ = s.accept()
            conn.sendall(b"ok")
            conn.close()
        else:
            _, peer = s.recvfrom(64)
            s.sendto(b"ok", peer)
"""

CONNECTOR = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(job):
    src, dst, proto, port = job
    with socket.socket(socket.AF_INET,
                       socket.SOCK_STREAM if proto == "TCP" else socket.SOCK_DGRAM) as s:
        s.settimeout(2.5)
        s.bind((src, 0))
        try:
            if proto == "TCP":
                s.connect((dst, port))
                return s.recv(2) == b"ok"
            s.sendto(b"hi", (dst, port))
            return s.recvfrom(2)[0] == b"ok"
        except OSError:
            return False
jobs = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(jobs)) as pool:
    print(json.dumps(list(pool.map(probe, jobs))))
"""

@dataclass
class RoutedNode:
    """A node namespace routing for pod namespaces and an outside namespace."""

    node: Netns
    pod_ips: dict[str, str]
    pods: dict[str, Netns]
    veths: dict[str, str]
    where: dict[str, Netns]  # which namespace holds an address

    def node_pods(self) -> list[NodePod]:
        return [NodePod(key, self.veths[key], (ipaddress.IPv4Address(ip),))
                for key, ip in self.pod_ips.items()]

    def apply(self, cluster: Cluster) -> dict[str, Any]:
        document = render(Engine(cluster).resolution, self.node_pods())
        apply_ruleset(document, self.node.path)
        return document

    def probe(self, jobs: list[tuple[str, str, Probe]]) -> dict[tuple[str, str, Probe], bool]:
        """Run each source's probes in one connector process; all sources at once."""
        by_source: dict[str, list[tuple[str, str, Probe]]] = {}
        for job in jobs:
            by_source.setdefault(job[0], []).append(job)
        running = {src: self.where[src].popen(sys.executable, "-c", CONNECTOR, json.dumps(
            [[s, d, str(p.protocol), p.port] for s, d, p in mine]))
                   for src, mine in by_source.items()}
        observed = {}
        for src, proc in running.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            observed.update(zip(by_source[src], json.loads(out), strict=True))
        return observed


def sh(ns: Netns, command: str) -> None:
    ns.run(*command.split())


def wire(node: Netns, inner: Netns, veth: str, addresses: tuple[str, ...], route: str) -> None:
    """The routed model's wiring of one namespace, as the agent does it for a pod."""
    sh(node, f"ip link add {veth} address {HOST_MAC} type veth peer name eth0 netns {inner.name}")
    sh(node, f"ip link set {veth} up")
    sh(node, f"sysctl -qw net.ipv4.conf.{veth}.proxy_arp=1")  # answers for 169.254.1.1
    sh(node, f"sysctl -qw net.ipv4.neigh.{veth}.proxy_delay=0")
    sh(node, f"ip route add {route} dev {veth}")
    sh(inner, "ip link set lo up")
    for address in addresses:
        sh(inner, f"ip addr add {address}/32 dev eth0")
    sh(inner, "ip link set eth0 up")
    # The gateway is pinned to the node's side: the node has no route to 169.254.1.1, so
    # proxy ARP alone would not answer for it.
    sh(inner, f"ip neigh replace 169.254.1.1 lladdr {HOST_MAC} dev eth0 nud permanent")
    sh(inner, "ip route add default via 169.254.1.1 dev eth0 onlink")


@contextmanager
def routed_node(make_netns: NetnsFactory, pod_ips: dict[str, str], outside: tuple[str, ...],
                probes: Iterable[Probe]) -> Iterator[RoutedNode]:
    """The node, its pods and the outside, each with a listener on every probe's port."""
    node = make_netns("node")
    sh(node, "ip link set lo up")
    sh(node, f"ip addr add {NODE_IP}/32 dev lo")
    # Inside the node namespace only: it routes, and checks no reverse path (the table does).
    for key in ("ip_forward", "conf.all.rp_filter", "conf.default.rp_filter"):
        sh(node, f"sysctl -qw net.ipv4.{key}={0 if 'rp_filter' in key else 1}")
    pods, veths = {}, {}
    for i, (key, ip) in enumerate(pod_ips.items()):
        pods[key] = make_netns(key.replace("/", "-"))
        veths[key] = f"pnv{i}"
        wire(node, pods[key], veths[key], (ip,), f"{ip}/32")
    beyond = make_netns("outside")
    wire(node, beyond, "pnout", outside[:1], f"{outside[0]}/32")
    for address in outside[1:]:
        sh(beyond, f"ip addr add {address}/32 dev eth0")
        sh(node, f"ip route add {address}/32 dev pnout")
    where = {NODE_IP: node, **dict.fromkeys(outside, beyond),
             **{ip: pods[k] for k, ip in pod_ips.items()}}
    ports = sorted({str(p) for p in probes})
    listeners = [ns.popen(sys.executable, "-c", LISTENER, ",".join(addresses), *ports)
                 for ns, addresses in ((node, [NODE_IP]), (beyond, outside),
                                       *((pods[k], [ip]) for k, ip in pod_ips.items()))]
    try:
        for proc in listeners:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield RoutedNode(node, dict(pod_ips), pods, veths, where)
    finally:
        for proc in listeners:
            proc.kill()
            proc.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    (tmp_path / "cluster.yaml").write_text(PODS + "---" + POLICIES)
    return load_cluster([tmp_path])


@pytest.fixture
def routed(make_netns: NetnsFactory) -> Iterator[RoutedNode]:
    with routed_node(make_netns, POD_IPS, OUTSIDE, PROBES) as node:
        yield node


def without_policies(cluster: Cluster) -> Cluster:
    return Cluster(cluster.namespaces, cluster.pods, (), cluster.nodes)


def test_apply_replaces_the_table_whole_and_lists_back_as_rendered(
        routed: RoutedNode, cluster: Cluster) -> None:
    node = routed.node.path
    first = routed.apply(cluster)
    assert comparable(list_table(node)) == comparable(first)
    # SCTP rules live in the kernel's table too (this kernel has no SCTP sockets to probe).
    assert '"sctp", 9999' in json.dumps(list_table(node))
    second = routed.apply(without_policies(cluster))
    assert comparable(list_table(node)) == comparable(second)  # nothing of `first` is left
    broken = json.loads(json.dumps(first).replace('"@pod_ifnames"', '"@no_such_set"'))
    with pytest.raises(DatapathError, match=r"no_such_set|No such file"):
        apply_ruleset(broken, node)
    assert comparable(list_table(node)) == comparable(second)  # a failed change changes nothing
    delete_table(node)
    delete_table(node)  # absent is fine
    with pytest.raises(DatapathError, match="No such file"):
        list_table(node)


def test_node_table_sends_only_the_difference_and_lists_back_as_rendered(
        routed: RoutedNode, cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    table = NodeTable(routed.node.path)
    pods = routed.node_pods()
    whole = render(Engine(cluster).resolution, pods)
    assert table.apply(whole) == len(whole["nftables"])
    assert table.apply(whole) == 0
    a, b, c = POD_IPS.values()
    assert not routed.probe([(c, b, Probe(8080))])[c, b, Probe(8080)]  # counted: b's deny
    # c-in goes; b-in and a-out stay, with their chains and the packets they counted.
    fewer = replace(cluster, policies=tuple(p for p in cluster.policies if p.name != "c-in"))
    steps = [render(Engine(fewer).resolution, pods),
             render(Engine(fewer).resolution, pods[:2]),  # y/c's veth went away
             render(Engine(cluster).resolution, pods, log_group=7),  # every counted rule
             whole]
    sent = []
    for document in steps:
        sent.append(table.apply(document))
        assert comparable(list_table(routed.node.path)) == comparable(document)
        if document is steps[0]:
            assert rule_counters(list_table(routed.node.path))["default deny ingress: x/b-in"]
    assert "replacing the table" not in caplog.text  # every step went as a difference
    assert sent[0] < len(steps[0]["nftables"]) // 2
    assert not routed.probe([(c, b, Probe(8080))])[c, b, Probe(8080)]
    assert routed.probe([(a, b, Probe(8080))])[a, b, Probe(8080)]


def test_in_its_own_namespace_the_table_goes_through_libnftables(
        make_netns: NetnsFactory, cluster: Cluster) -> None:
    """As in the agent: no namespace given, so libnftables in this process, one context per
    namespace; what it does is what `nft` in that namespace lists."""
    first, second = make_netns("first"), make_netns("second")
    assert run_in(first.path, libnftables.context) is not None
    pods = [NodePod(key, f"pnv{i}", (ipaddress.IPv4Address(ip),))
            for i, (key, ip) in enumerate(POD_IPS.items())]
    document = render(Engine(cluster).resolution, pods)
    table = NodeTable()
    assert run_in(first.path, lambda: table.apply(document)) == len(document["nftables"])
    assert comparable(list_table(first.path)) == comparable(document)
    with pytest.raises(DatapathError, match="No such file"):
        list_table(second.path)  # the first namespace's context touched only its own
    smaller = render(Engine(without_policies(cluster)).resolution, pods[:1])
    assert run_in(first.path, lambda: table.apply(smaller)) > 0
    assert comparable(run_in(first.path, list_table)) == comparable(smaller)
    broken = json.loads(json.dumps(document).replace('"@pod_ifnames"', '"@no_such_set"'))
    with pytest.raises(DatapathError, match=r"no_such_set|No such file"):
        run_in(first.path, lambda: apply_ruleset(broken))
    assert comparable(list_table(first.path)) == comparable(smaller)


def test_node_table_replaces_a_table_changed_behind_its_back(
        routed: RoutedNode, cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    table = NodeTable(routed.node.path)
    pods = routed.node_pods()
    table.apply(render(Engine(cluster).resolution, pods))
    delete_table(routed.node.path)
    document = render(Engine(without_policies(cluster)).resolution, pods)
    assert table.apply(document) == len(document["nftables"])
    assert "replacing the table" in caplog.text
    assert comparable(list_table(routed.node.path)) == comparable(document)


def expected_verdicts(cluster: Cluster, jobs: list[tuple[str, str, Probe]]
                      ) -> dict[tuple[str, str, Probe], bool]:
    engine = Engine(cluster)
    key_of = {ip: pod.key for pod in cluster.pods for ip in map(str, pod.ips)}
    matrices = {m.probe: m for m in engine.matrix(sorted({j[2] for j in jobs}, key=str))}
    out = {}
    for src, dst, probe in jobs:
        if src in key_of and dst in key_of:
            out[src, dst, probe] = matrices[probe].allowed[key_of[src]][key_of[dst]]
        else:
            out[src, dst, probe] = engine.verdict(engine.endpoint(src), engine.endpoint(dst),
                                                  probe.port, probe.protocol).allowed
    return out


def test_kernel_verdicts_equal_the_engines_for_every_pair(routed: RoutedNode,
                                                          cluster: Cluster) -> None:
    pods = [*POD_IPS.values(), NODE_IP]
    jobs = [(s, d, p) for s, d in itertools.permutations(pods, 2) for p in PROBES]
    jobs += [(o, d, p) for o in OUTSIDE for d in POD_IPS.values() for p in PROBES]
    jobs += [(s, o, p) for s in POD_IPS.values() for o in OUTSIDE for p in PROBES]
    # Without podnet's table the wiring reaches everything: failures below are the policies'.
    assert all(routed.probe([j for j in jobs if j[2] == Probe(80)]).values())

    routed.apply(cluster)
    observed = routed.probe(jobs)
    expected = expected_verdicts(cluster, jobs)
    wrong = [f"{s} -> {d} {p}: kernel {'allows' if observed[s, d, p] else 'denies'}, engine "
             f"{'allows' if expected[s, d, p] else 'denies'}"
             for s, d, p in jobs if observed[s, d, p] != expected[s, d, p]]
    assert not wrong, "\n".join(wrong)
    # The cases this scenario is for, as the engine and so the kernel decided them:
    a, b, c = POD_IPS.values()
    assert observed[a, b, Probe(8080)] and not observed[c, b, Probe(8080)]  # named port on b
    assert not observed[a, b, Probe(80)]  # ...and only that port
    assert observed[a, c, Probe(53, Protocol.UDP)]  # egress named port resolved on c (53)
    assert not observed[a, c, Probe(5353, Protocol.UDP)]  # not a's own dns (5353)
    assert observed[OUTSIDE[0], b, Probe(80)] and not observed[OUTSIDE[1], b, Probe(80)]
    assert observed[a, OUTSIDE[0], Probe(80)] and not observed[a, OUTSIDE[1], Probe(80)]
    assert not observed[a, NODE_IP, Probe(80)]  # egress to the node's own address, too
    assert observed[NODE_IP, b, Probe(80)]  # the pod's own node always passes
    # Replies cross isolation: b -> c's answer enters isolated b; c -> a's leaves isolated a.
    assert observed[b, c, Probe(53, Protocol.UDP)] and observed[c, a, Probe(80)]
    counted = rule_counters(list_table(routed.node.path))
    assert counted["x/b-in ingress[1]"] > 0 and counted["x/a-out egress[0]"] > 0
    assert counted["default deny ingress: x/b-in"] > 0


def test_a_pod_sending_from_an_address_not_its_own_is_dropped(routed: RoutedNode,
                                                              cluster: Cluster) -> None:
    a, c = POD_IPS["x/a"], POD_IPS["y/c"]
    forged = "10.244.1.99"
    # Pod a takes an address it was not given, and the node even routes it back to a:
    # without podnet's table the forged connection works.
    routed.pods["x/a"].run("ip", "addr", "add", f"{forged}/32", "dev", "eth0")
    routed.node.run("ip", "route", "add", f"{forged}/32", "dev", routed.veths["x/a"])
    routed.where[forged] = routed.pods["x/a"]
    jobs = [(forged, c, Probe(80)), (forged, c, Probe(53, Protocol.UDP)), (a, c, Probe(80))]
    assert all(routed.probe(jobs).values())

    routed.apply(without_policies(cluster))  # no policy: only anti-spoofing decides
    assert routed.probe(jobs) == {jobs[0]: False, jobs[1]: False, jobs[2]: True}
    counted = rule_counters(list_table(routed.node.path))
    assert counted["anti-spoofing: source address is not the pod's"] >= 2


def test_a_veth_created_after_the_table_is_isolated_from_its_first_packet(
        routed: RoutedNode, cluster: Cluster) -> None:
    # Map entries are keyed by interface name, so the agent may apply the table that names a
    # new pod's veth before it creates it: the pod is never reachable unisolated.
    routed.apply(cluster)
    b, veth = routed.pods["x/b"], routed.veths["x/b"]
    routed.node.run("ip", "link", "del", veth)
    wire(routed.node, b, veth, (POD_IPS["x/b"],), f"{POD_IPS['x/b']}/32")
    a, c = POD_IPS["x/a"], POD_IPS["y/c"]
    jobs = [(a, POD_IPS["x/b"], Probe(8080)), (c, POD_IPS["x/b"], Probe(8080))]
    assert routed.probe(jobs) == {jobs[0]: True, jobs[1]: False}


def test_with_a_log_group_each_decision_reaches_nflog_named_after_its_rule(
        routed: RoutedNode, cluster: Cluster) -> None:
    document = render(Engine(cluster).resolution, routed.node_pods(), log_group=5)
    apply_ruleset(document, routed.node.path)
    assert comparable(list_table(routed.node.path)) == comparable(document)
    with NflogSocket(5, routed.node.path) as reader:
        a, b, c = POD_IPS.values()
        routed.probe([(a, b, Probe(8080)), (c, b, Probe(8080))])
        wanted = {("x/a-out egress[1]", a, b, "TCP", 8080),
                  ("x/b-in ingress[0]", a, b, "TCP", 8080),
                  ("default deny ingress: x/b-in", c, b, "TCP", 8080)}
        logged: set[tuple[object, ...]] = set()
        deadline = time.monotonic() + 10
        while not wanted <= logged and time.monotonic() < deadline:
            logged |= {(p.prefix, str(p.src), str(p.dst), p.protocol, p.dport)
                       for p in reader.read(timeout=1)}
        assert wanted <= logged, logged


def generated_clusters() -> st.SearchStrategy[Cluster]:
    """The random clusters of tests/policy/test_engine_vs_oracle.py (every policy feature)."""
    policy_tests = str(Path(__file__).resolve().parents[1] / "policy")
    if policy_tests not in sys.path:
        sys.path.insert(0, policy_tests)
    from test_engine_vs_oracle import clusters

    strategy: st.SearchStrategy[Cluster] = clusters()
    return strategy


def on_one_node(cluster: Cluster) -> Cluster:
    """Every pod on this test's node; a host-network pod holds the node's address."""
    node_ip = (ipaddress.IPv4Address(NODE_IP),)
    return replace(cluster, pods=tuple(
        replace(p, node_name="node-1", ips=node_ip if p.host_network else p.ips)
        for p in cluster.pods))


@pytest.mark.slow
@settings(max_examples=5, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(generated_clusters(), st.sampled_from([53, 80, 81, 8080]))
def test_kernel_verdicts_equal_the_engines_on_generated_clusters(
        make_netns: NetnsFactory, generated: Cluster, port: int) -> None:
    cluster = on_one_node(generated)
    pod_ips = {p.key: str(p.ips[0]) for p in cluster.pods if not p.host_network}
    outside = tuple(a for a in ("203.0.113.7", "203.0.113.200", "10.244.1.9", "192.0.2.77")
                    if a not in pod_ips.values())
    probes = (Probe(port), Probe(port, Protocol.UDP))
    endpoints = [*pod_ips.values(), *([NODE_IP] if len(pod_ips) < len(cluster.pods) else [])]
    jobs = [(s, d, p) for s, d in itertools.permutations(endpoints, 2) for p in probes]
    jobs += [(a, b, p) for o in outside for ip in pod_ips.values() for a, b in ((o, ip), (ip, o))
             for p in probes]
    try:
        with routed_node(make_netns, pod_ips, outside, probes) as lab:
            lab.apply(cluster)
            observed = lab.probe(jobs)
    finally:
        make_netns.cleanup()  # each example's namespaces, at once
    expected = expected_verdicts(cluster, jobs)
    wrong = [f"{s} -> {d} {p}: kernel {'allows' if observed[s, d, p] else 'denies'}"
             for s, d, p in jobs if observed[s, d, p] != expected[s, d, p]]
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=st.lists(generated_clusters(), min_size=2, max_size=4))
def test_node_table_differences_between_generated_clusters(
        make_netns: NetnsFactory, generated: list[Cluster],
        caplog: pytest.LogCaptureFixture) -> None:
    """Any table to any other by differences alone, each listing back as rendered: the
    kernel accepts every batch (a refused one would have been replaced whole)."""
    node = make_netns("node")
    table = NodeTable(node.path)
    try:
        for i, cluster in enumerate(map(on_one_node, generated)):
            pods = [NodePod(p.key, f"pnv{n}", p.ips) for n, p in enumerate(cluster.pods)
                    if not p.host_network]
            document = render(Engine(cluster).resolution, pods, log_group=i % 2 or None)
            table.apply(document)
            assert comparable(list_table(node.path)) == comparable(document)
        assert "replacing the table" not in caplog.text
    finally:
        make_netns.cleanup()
