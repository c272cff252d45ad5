"""The agent's metrics: what a scrape shows after real CNI requests, and the pure parts (table
size, verdict labels, several nodes' expositions merged).

The agent test uses one node namespace running the agent with `--metrics-address` on the
node's own address, scraped from inside the node as `podnet lab metrics` does.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from netns import NODE_ADDRESS, Agent, Netns, NetnsFactory, run_cni
from podnet.agent.flows import FLOW_LOG_GROUP, Decision, read_flows
from podnet.agent.metrics import Metrics, table_size, verdict_labels
from podnet.datapath.netns import DatapathError
from podnet.lab.metrics import fetch, merge, with_label
from podnet.model import Manifest, build_cluster
from podnet.policy import Engine
from podnet.policy.nftables import NodePod, render

PORT = 9470
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition by (name, labels); the parser rejects a malformed one."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.netns
def test_a_scrape_counts_cni_requests_and_ipam_by_what_happened(
        agent: Agent, make_netns: NetnsFactory) -> None:
    agent.stop()
    agent.start("--metrics-address", f"{NODE_ADDRESS}:{PORT}")
    pods = [make_netns("pod") for _ in range(3)]
    for i, pod in enumerate(pods):
        assert agent.add(f"c{i}", pod).code == 0
    assert agent.add("c0", pods[0]).code != 0  # a second ADD of an attachment is refused
    gone = make_netns("gone")
    make_netns.delete(gone)
    # The address is taken, then wiring finds no namespace: the ADD gives it back.
    assert agent.add("c9", gone).code != 0
    assert agent.delete("c2", pods[2]).code == 0
    assert agent.delete("c2", pods[2]).code == 0  # idempotent: nothing more to release
    # The runtime lists c0 only: GC releases c1.
    valid = {"cni.dev/valid-attachments": [{"containerID": "c0", "ifname": "eth0"}]}
    assert run_cni("GC", agent.conf(**valid)).code == 0

    found = samples(fetch(agent.node.path, NODE_ADDRESS, PORT))
    assert value(found, "podnet_cni_requests_total", command="ADD", result="ok") == 3
    assert value(found, "podnet_cni_request_duration_seconds_count",
                 command="ADD", result="ok") == 3
    assert value(found, "podnet_cni_requests_total", command="ADD",
                 result="datapath_failure") == 1
    assert value(found, "podnet_cni_requests_total", command="ADD",
                 result="unknown_container") == 1
    assert value(found, "podnet_cni_requests_total", command="DEL", result="ok") == 2
    assert value(found, "podnet_ipam_allocations_total") == 4
    assert value(found, "podnet_ipam_releases_total", reason="rollback") == 1
    assert value(found, "podnet_ipam_releases_total", reason="del") == 1
    assert value(found, "podnet_ipam_releases_total", reason="gc") == 1
    assert value(found, "podnet_cni_requests_total", command="GC", result="ok") == 1
    subnet = {dict(labels)["subnet"] for name, labels in found
              if name == "podnet_ipam_addresses_used"}
    assert len(subnet) == 1
    used = value(found, "podnet_ipam_addresses_used", subnet=next(iter(subnet)))
    free = value(found, "podnet_ipam_addresses_free", subnet=next(iter(subnet)))
    assert used == 1  # c0
    assert used + free == ipaddress.IPv4Network(next(iter(subnet))).num_addresses - 2
    assert value(found, "podnet_dataplane_apply_duration_seconds_count") >= 1


SERVE_WITHOUT_DNS = """
import ipaddress, socket, sys, urllib.request
from podnet.agent.metrics import Metrics
from podnet.agent.metrics_http import serve

def no_dns(*args):
    raise AssertionError("a name was looked up")

socket.getfqdn = socket.gethostbyaddr = no_dns
stop = serve(Metrics(), ipaddress.IPv4Address("127.0.0.1"), 9470)
with urllib.request.urlopen("http://127.0.0.1:9470/metrics", timeout=10) as answer:
    sys.stdout.write(answer.read().decode())
stop()
"""


@pytest.mark.netns
def test_serving_metrics_looks_no_name_up(make_netns: NetnsFactory) -> None:
    # A node's resolver may be out of reach: `HTTPServer`'s look-up of its own address then
    # held every lab agent's start for 10 s.
    node = make_netns("node")
    node.run("ip", "link", "set", "lo", "up")
    found = samples(node.run(sys.executable, "-c", SERVE_WITHOUT_DNS))
    assert value(found, "podnet_ipam_allocations_total") == 0
    assert ("podnet_ipam_allocations_total", frozenset()) in found


SEND = f"""
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
    for _ in range(int(sys.argv[1])):
        out.sendto(b"", ("{NODE_ADDRESS}", int(sys.argv[2])))
"""
BURST_PORT, AFTER_PORT = 9, 10  # datagrams the test's own rule logs, in and after the burst
LOGGED = f"""
table ip pntest {{
  chain out {{
    type filter hook output priority 0;
    udp dport {{ {BURST_PORT}, {AFTER_PORT} }} log prefix "x/b-in ingress[0]" group {FLOW_LOG_GROUP}
  }}
}}
"""


def nflog_drops(node: Netns) -> int:
    """Batches the kernel dropped at the node's NETLINK_NETFILTER sockets (/proc/net/netlink:
    sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode)."""
    rows = [line.split() for line in node.run("cat", "/proc/net/netlink").splitlines()[1:]]
    return sum(int(row[8]) for row in rows if row[1] == "12")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.netns
def test_decisions_dropped_while_the_agent_did_not_read_are_counted_and_reading_goes_on(
        agent: Agent, tmp_path: Path) -> None:
    flows = tmp_path / "flows.jsonl"
    agent.stop()
    agent.start("--flow-log", str(flows), "--metrics-address", f"{NODE_ADDRESS}:{PORT}")
    assert agent.proc is not None
    (tmp_path / "logged.nft").write_text(LOGGED)
    agent.node.run("nft", "-f", str(tmp_path / "logged.nft"))
    agent.node.run(sys.executable, "-c", SEND, "1", str(BURST_PORT))
    wait_for(lambda: len(read_flows(flows)) == 1, "the agent logged no decision")
    sent = 1
    # The agent is stopped (SIGSTOP: its reader too), so its socket's buffer fills and the
    # kernel drops the batches that do not fit; then it runs again.
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        while nflog_drops(agent.node) == 0:
            assert sent < 200_000, "the kernel dropped nothing"
            agent.node.run(sys.executable, "-c", SEND, "5000", str(BURST_PORT))
            sent += 5000
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    # Until the agent has emptied its buffer the kernel drops what comes, so send until a
    # decision made after the burst is logged; the losses are known from the next one read.
    deadline = time.monotonic() + 30
    while not any(f.dport == AFTER_PORT for f in read_flows(flows)):
        assert time.monotonic() < deadline, "no decision made after the overrun was logged"
        agent.node.run(sys.executable, "-c", SEND, "1", str(AFTER_PORT))
        sent += 1
        time.sleep(0.2)

    def counted() -> float:
        found = samples(fetch(agent.node.path, NODE_ADDRESS, PORT))
        return (value(found, "podnet_policy_verdicts_total", verdict="allowed",
                      direction="ingress", policy="x/b-in")
                + value(found, "podnet_flow_log_lost_total"))

    wait_for(lambda: counted() == sent, f"of {sent} decisions, not all read or counted lost")
    found = samples(fetch(agent.node.path, NODE_ADDRESS, PORT))
    assert value(found, "podnet_flow_log_overruns_total") >= 1
    assert value(found, "podnet_flow_log_lost_total") > 0


def table(pods: int) -> dict[str, Any]:
    """A node's table for `pods` pods in namespace x, one policy isolating them for ingress."""
    docs: list[dict[str, Any]] = [
        {"kind": "Namespace", "metadata": {"name": "x"}},
        {"kind": "NetworkPolicy", "metadata": {"name": "a-in", "namespace": "x"},
         "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}},
        *({"kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "x"},
           "spec": {"containers": [{"name": "c"}]}, "status": {"podIP": f"10.244.0.{i + 1}"}}
          for i in range(pods))]
    cluster = build_cluster(Manifest("test", d["kind"], d["metadata"].get("namespace"),
                                     d["metadata"]["name"], {"apiVersion": "v1", **d})
                            for d in docs)
    return render(Engine(cluster).resolution,
                  [NodePod(p.key, f"veth{i}", p.ips) for i, p in enumerate(cluster.pods)])


def test_the_table_size_counts_rules_and_the_elements_of_sets_and_maps() -> None:
    one, three = table_size(table(1)), table_size(table(3))
    assert one[0] == three[0]  # rules grow with policies, not with pods
    # Each pod adds its veth (pod_ifnames), its address (pod_addresses) and its ingress
    # verdict map entry; the policy's peer set keeps one element, the range 10.244.0.1-3.
    assert three[1] - one[1] == 2 * 3


def test_a_refused_swap_counts_as_a_failure_and_keeps_the_last_tables_size() -> None:
    metrics = Metrics()
    with metrics.applying(table(2)):
        pass
    with pytest.raises(DatapathError), metrics.applying(table(5)):
        raise DatapathError("nft refused")
    found = samples(metrics.text())
    assert value(found, "podnet_dataplane_apply_failures_total") == 1
    assert value(found, "podnet_dataplane_apply_duration_seconds_count") == 1
    assert (value(found, "podnet_dataplane_rules"),
            value(found, "podnet_dataplane_set_elements")) == table_size(table(2))


@pytest.mark.parametrize("prefix, labels", [
    pytest.param("x/b-in ingress[0]", ("allowed", "ingress", "x/b-in"), id="allowed"),
    pytest.param("default deny egress: x/a-out, x/deny-all",
                 ("denied", "egress", "x/a-out,x/deny-all"), id="default deny"),
    pytest.param("anti-spoofing: source address is not the pod's", ("denied", "", ""),
                 id="anti-spoofing"),
])
def test_a_verdict_is_labelled_with_the_policy_that_decided(
        prefix: str, labels: tuple[str, str, str]) -> None:
    assert verdict_labels(Decision.of(prefix)) == labels


@pytest.mark.parametrize("sample, labelled", [
    ("up 1.0", 'up{node="n-1"} 1.0'),
    ('req_total{command="ADD"} 3.0', 'req_total{node="n-1",command="ADD"} 3.0'),
    ("req_total{} 3.0", 'req_total{node="n-1"} 3.0'),
])
def test_a_node_label_goes_first(sample: str, labelled: str) -> None:
    assert with_label(sample, "node", "n-1") == labelled


def test_merged_nodes_keep_one_header_per_family_and_parse() -> None:
    texts = {}
    for node, pods in (("node-1", 2), ("node-2", 5)):
        metrics = Metrics()
        metrics.cni_request("ADD", "ok", 0.004)
        metrics.decided([Decision.of("x/b-in ingress[0]")] * pods)
        texts[node] = metrics.text()
    merged = merge(texts)
    found = samples(merged)
    assert value(found, "podnet_policy_verdicts_total", node="node-2", verdict="allowed",
                 direction="ingress", policy="x/b-in") == 5
    assert value(found, "podnet_cni_request_duration_seconds_count", node="node-1",
                 command="ADD", result="ok") == 1
    assert merged.count("# TYPE podnet_cni_requests_total counter") == 1
    # (`_created`: this process serves nothing, so it did not turn them off as an agent does)
    assert {name for name, _ in samples(merge(texts, "podnet_policy"))
            if not name.endswith("_created")} == {
        "podnet_policy_verdicts_total", "podnet_policy_endpoints",
        "podnet_policy_selected_endpoints", "podnet_policy_node_policies"}
    for family in text_string_to_metric_families(merged):
        assert family.name.startswith(("podnet_", "process_")), family.name
