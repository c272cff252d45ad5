"""Benchmark: NetworkPolicy in the datapath. Programming latency, throughput, ruleset size.

One lab of 3 nodes holds 300 generated pods (bench/generate.py, seed 1, spread over the
nodes) and two pairs in namespace `bench`: `client` and `client2` on node-1, `server` and
`server2` on node-2, so both pairs cross the VXLAN overlay. Policies select the first pair
("policed"), never the second ("unpoliced"), which is measured in the same rounds as a
reference that meets the same load.

1. Latency, from `podnet apply` / `podnet delete` to enforcement seen by a probe, with the
   generated 300 policies in place. The server is isolated (`isolate-server`, no rules);
   `allow-client` lets the client in. Each change deletes or re-applies `allow-client`
   with `podnet delete|apply --lab`, while a probe in the client's namespace opens a new TCP
   connection to the server every ~10 ms (a port nothing listens on: refused = reached,
   timeout = dropped) and reports when its verdict flips. Latency = the flip (held for
   0.3 s) minus the start of the `podnet` process; also shown from its exit (the store was
   written). `--writer bench` writes each change from this process through the store API
   instead and counts from the commit (`podnet` exits 20-40 ms after its commit). Goal
   (issue 6): p50 <= 100 ms, p99 <= 300 ms. The agents' logs say how long each table took to
   render and to apply.
2. Throughput and new connections per second, client -> server, with no policy at all, then
   with 1,000 policies (the generated 1,000 select the other pods, so the tables are large;
   three more make the pair go through the policy chains on both nodes: the client's
   egress, the server's ingress). iperf3 TCP for `--seconds`, and a connect/close loop
   (32 connections in flight, accepted and closed by a small server) for `--seconds`;
   rounds alternate the pairs, the best counts. Goal: with 1,000 policies >= 95% of the
   no-policy figure. The lab's agents keep a flow log, so each policed connection is also
   two NFLOG messages and two JSON lines: their CPU during the connection runs is shown,
   and a third phase measures the same tables without their `log` statements.
3. Ruleset size against pods and policies, from `render` (no root, no lab): the node with
   the most pods of generated clusters.

    .venv/bin/python bench/policy_datapath.py                 # about 10 minutes on 2 cores
    .venv/bin/python bench/policy_datapath.py --changes 10 --no-throughput
    .venv/bin/python bench/policy_datapath.py --size-only     # (3) alone, no root needed

Every process it starts is stopped by PID and its lab is removed, also on Ctrl-C; labs left
by a killed run (named bp<pid>) are removed at the next start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from generate import generate

from cni import machine
from lab import BenchError, iperf, lab_up, process_cpu, stop, sweep
from podnet.agent.flows import FLOW_LOG_GROUP
from podnet.agent.informer import Informer
from podnet.agent.policy import KINDS, render_node
from podnet.datapath.nft import apply_ruleset, comparable, list_table
from podnet.lab.pods import LabPod, running_pods
from podnet.lab.state import LabPaths
from podnet.model import Manifest, build_cluster
from podnet.model.load import read_manifests
from podnet.policy import Engine
from podnet.policy.nftables import NodePod, render
from podnet.store import open_store
from podnet.store.apply import apply_manifests, manifest_key

PODNET = str(Path(sys.executable).with_name("podnet"))
OUT = Path(__file__).parent / "out" / "policy"
NODES = ("node-1", "node-2", "node-3")
LAB_NAME = re.compile(r"bp(\d+)")
PROBE_PORT = 5203  # nothing listens: a refused connection reached the server
CPS_PORT = 5202
IPERF_PORT = 5201
HOLD = 0.3  # a flip counts once the probe keeps the new verdict this long
GOAL_P50, GOAL_P99, GOAL_RATIO = 0.100, 0.300, 0.95
SIZES = ((100, 100), (300, 300), (1000, 300), (300, 1000), (1000, 1000), (3000, 1000))
APPLIED = re.compile(r"policy: table applied \((\d+) objects; render (\d+) ms, nft (\d+) ms\)")

# In the client's namespace: a new connection every ~10 ms; prints "<time> 1|0" on each flip.
PROBE_LOOP = r"""
import socket, struct, sys, time
ip, port, state = sys.argv[1], int(sys.argv[2]), None
linger = struct.pack("ii", 1, 0)
while True:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.settimeout(0.03)
    t = time.time()
    try:
        s.connect((ip, port))
        ok = 1
    except ConnectionRefusedError:
        ok = 1
    except OSError:
        ok = 0
    s.close()
    if ok != state:
        print(f"{t:.6f} {ok}", flush=True)
        state = ok
    time.sleep(0.01)
"""

# In the server's namespace: accept and close, as fast as it can.
ACCEPT_LOOP = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4096)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""

# In the client's namespace: `inflight` non-blocking connects; each one that completes is
# closed with a RST (no TIME_WAIT to run out of ports) and replaced. Prints the count.
CONNECT_LOOP = r"""
import errno, selectors, socket, struct, sys, time
ip, port, seconds, inflight = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), 32
linger = struct.pack("ii", 1, 0)
sel = selectors.DefaultSelector()
def start():
    s = socket.socket()
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.connect_ex((ip, port))
    sel.register(s, selectors.EVENT_WRITE)
for _ in range(inflight):
    start()
done = failed = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    for key, _ in sel.select(0.5):
        s = key.fileobj
        sel.unregister(s)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            done += 1
        else:
            failed += 1
        s.close()
        start()
print(done / seconds, failed)
"""


# -- manifests -------------------------------------------------------------------------------

def obj(kind: str, namespace: str | None, name: str, spec: dict[str, Any],
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    api = {"Pod": "v1", "Namespace": "v1"}.get(kind, "networking.k8s.io/v1")
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def lab_docs(name: str, pods: int) -> list[dict[str, Any]]:
    """The Lab, the generated namespaces and pods (on the lab's nodes), and the pair."""
    cluster = generate(pods, 0, seed=1)
    docs: list[dict[str, Any]] = [{"apiVersion": "podnet.dev/v1alpha1", "kind": "Lab",
                                   "metadata": {"name": name},
                                   "spec": {"nodes": list(NODES), "backend": "vxlan"}}]
    docs += cluster.namespaces
    for i, pod in enumerate(cluster.pods):
        meta = {k: v for k, v in pod["metadata"].items() if k != "ownerReferences"}
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                     "spec": {**pod["spec"], "nodeName": NODES[i % len(NODES)]}})
    docs.append(obj("Namespace", None, "bench", {}, {"purpose": "bench"}))
    for role, node in (("client", "node-1"), ("server", "node-2"), ("client2", "node-1"),
                       ("server2", "node-2")):
        docs.append(obj("Pod", "bench", role, {"nodeName": node, "containers": [
            {"name": "c", "ports": [{"containerPort": 80}]}]}, {"app": role}))
    return docs


BENCH_PORTS = [{"protocol": "TCP", "port": p} for p in (IPERF_PORT, CPS_PORT, PROBE_PORT)]


def pair_policies() -> dict[str, dict[str, Any]]:
    """The server isolated for ingress, the client for egress; `allow-client` lets it in."""
    server = {"matchLabels": {"app": "server"}}
    client = {"matchLabels": {"app": "client"}}
    return {
        "isolate-server": obj("NetworkPolicy", "bench", "isolate-server",
                              {"podSelector": server, "policyTypes": ["Ingress"]}),
        "client-egress": obj("NetworkPolicy", "bench", "client-egress", {
            "podSelector": client, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": server}], "ports": BENCH_PORTS}]}),
        "allow-client": obj("NetworkPolicy", "bench", "allow-client", {
            "podSelector": server, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": client}], "ports": BENCH_PORTS}]}),
    }


def write_docs(name: str, docs: list[dict[str, Any]]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def podnet(*argv: str) -> None:
    done = subprocess.run([PODNET, *argv], capture_output=True, text=True, check=False,
                          timeout=300)
    if done.returncode != 0:
        raise BenchError(f"podnet {' '.join(argv)}: {done.stderr.strip()}")


# -- waiting for the agents ------------------------------------------------------------------

def rendered(paths: LabPaths, log_group: int | None) -> dict[str, Any]:
    """Each node's table as its agent renders it from the store now."""
    with open_store(paths.store_url) as store:
        informer = Informer(store, KINDS, lambda snapshot: None)
        informer.relist()
        return {n: render_node(informer.snapshot(), n, log_group=log_group) for n in NODES}


def without_flow_log(paths: LabPaths) -> None:
    """Replace each node's table with the same one minus its `log` statements. The agents
    do not notice: they apply again only when the store changes."""
    for node, document in rendered(paths, None).items():
        apply_ruleset(document, paths.netns_path(paths.node(node)))


def wait_for_tables(paths: LabPaths, timeout: float = 300.0) -> float:
    """Until every node's table is what its agent renders from the store; seconds waited."""
    started = time.perf_counter()
    wanted = {n: comparable(d) for n, d in rendered(paths, FLOW_LOG_GROUP).items()}
    pending = set(NODES)
    while pending:
        if time.perf_counter() - started > timeout:
            raise BenchError(f"tables of {sorted(pending)} not as rendered within {timeout}s")
        pending = {n for n in pending if comparable(
            list_table(paths.netns_path(paths.node(n)))) != wanted[n]}
        time.sleep(0.5)
    return time.perf_counter() - started


# -- (1) latency -----------------------------------------------------------------------------

@contextlib.contextmanager
def started(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)  # type: ignore[arg-type]


def in_netns(pod: LabPod, script: str, *args: str) -> list[str]:
    return ["nsenter", f"--net={pod.netns}", sys.executable, "-c", script, *args]


def measure_latency(paths: LabPaths, changes: int, allow: Path, writer: str
                    ) -> list[tuple[str, float, float]]:
    """(change, seconds from the writer's start, seconds from its end) per change. The writer
    is a `podnet` process, or (`bench`) this process through the store API, whose call ends
    when the commit returns: `podnet` exits 20-40 ms after its commit (store close, teardown)."""
    pods = {p.key: p for p in running_pods(paths)}
    client, server = pods["bench/client"], pods["bench/server"]
    manifests = read_manifests([allow])
    samples = []
    with started(in_netns(client, PROBE_LOOP, str(server.ip), str(PROBE_PORT))) as probe, \
            open_store(paths.store_url) as store:
        assert probe.stdout is not None
        if _first_verdict(probe, 10.0) != 1:
            raise BenchError("the probe does not reach the server before the first change")
        for i in range(changes):
            verb, want = ("delete", 0) if i % 2 == 0 else ("apply", 1)
            t0 = time.time()
            if writer == "podnet":
                podnet(verb, "--lab", paths.name, "-f", str(allow))
            elif verb == "apply":
                apply_manifests(store, manifests)
            else:
                for m in manifests:
                    store.delete(manifest_key(m))
            t1 = time.time()
            flipped = _flip(probe, want, t0)
            samples.append((verb, flipped - t0, flipped - t1))
            time.sleep(0.5)  # let the other agents finish before the next change
    return samples


def _first_verdict(probe: subprocess.Popen[str], timeout: float) -> int:
    assert probe.stdout is not None
    if not select.select([probe.stdout], [], [], timeout)[0]:
        raise BenchError("the probe said nothing")
    line = probe.stdout.readline().split()
    return int(line[1])


def _flip(probe: subprocess.Popen[str], want: int, since: float, timeout: float = 30.0) -> float:
    """When the probe's verdict became `want` (after `since`) and stayed so for HOLD s."""
    assert probe.stdout is not None
    flipped: float | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wait = HOLD if flipped is not None else deadline - time.monotonic()
        if not select.select([probe.stdout], [], [], max(wait, 0))[0]:
            if flipped is not None:
                return flipped
            continue
        t, ok = probe.stdout.readline().split()
        flipped = float(t) if int(ok) == want and float(t) >= since - 0.05 else None
    raise BenchError(f"the probe did not see the change within {timeout}s")


def report_latency(samples: list[tuple[str, float, float]], applied: list[tuple[int, int, int]],
                   pods: int, policies: int, writer: str) -> None:
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    total = [s for _, s, _ in samples]
    after = [a for _, _, a in samples]
    p50, p99 = pct(total if writer == "podnet" else after, 0.5), pct(
        total if writer == "podnet" else after, 0.99)
    met = "met" if p50 <= GOAL_P50 and p99 <= GOAL_P99 else "MISSED"
    print(f"\n(1) Policy programming latency, 3 nodes, {pods} pods, {policies} policies, "
          f"{len(samples)} changes (goal p50 <= {GOAL_P50 * 1e3:.0f} ms, p99 <= "
          f"{GOAL_P99 * 1e3:.0f} ms: {met})\n")
    print("| from | p50 ms | p99 ms | min ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    rows = ((("`podnet` process start", total), ("`podnet` exit (store written)", after))
            if writer == "podnet" else (("the commit (the bench's store call)", after),))
    for what, values in rows:
        print(f"| {what} | {pct(values, 0.5) * 1e3:.0f} | {pct(values, 0.99) * 1e3:.0f} | "
              f"{min(values) * 1e3:.0f} | {max(values) * 1e3:.0f} |")
    cli = [s - a for _, s, a in samples]
    print(f"| the `{writer}` write itself | {pct(cli, 0.5) * 1e3:.0f} | "
          f"{pct(cli, 0.99) * 1e3:.0f} | {min(cli) * 1e3:.0f} | {max(cli) * 1e3:.0f} |")
    for verb in ("delete", "apply"):
        values = [s for v, s, _ in samples if v == verb]
        print(f"| ... `podnet {verb}` only (start) | {pct(values, 0.5) * 1e3:.0f} | "
              f"{pct(values, 0.99) * 1e3:.0f} | {min(values) * 1e3:.0f} | "
              f"{max(values) * 1e3:.0f} |")
    if applied:
        renders = [r for _, r, _ in applied]
        nfts = [n for _, _, n in applied]
        print(f"\nnode-2's agent, per table applied during the changes ({len(applied)}): "
              f"{applied[0][0]} objects; render (store copy -> cluster -> engine -> nftables "
              f"JSON) p50 {statistics.median(renders):.0f} ms, max {max(renders)} ms; "
              f"nft p50 {statistics.median(nfts):.0f} ms, max {max(nfts)} ms.")


def agent_tables(paths: LabPaths, node: str, since_line: int) -> list[tuple[int, int, int]]:
    lines = (paths.logs / f"agent-{node}.log").read_text().splitlines()[since_line:]
    return [(int(m[1]), int(m[2]), int(m[3])) for line in lines if (m := APPLIED.search(line))]


def log_length(paths: LabPaths, node: str) -> int:
    return len((paths.logs / f"agent-{node}.log").read_text().splitlines())


# -- (2) throughput --------------------------------------------------------------------------

def connections_per_second(client: LabPod, server: LabPod, seconds: float) -> float:
    with started(in_netns(server, ACCEPT_LOOP, str(CPS_PORT))) as accept:
        assert accept.stdout is not None
        if accept.stdout.readline().strip() != "ready":
            raise BenchError("the accept loop did not start")
        done = subprocess.run(in_netns(client, CONNECT_LOOP, str(server.ip), str(CPS_PORT),
                                       str(seconds)), capture_output=True, text=True,
                              timeout=seconds + 30, check=False)
    try:
        rate, failed = done.stdout.split()
    except ValueError as err:
        raise BenchError(f"connect loop: {done.stdout} {done.stderr}") from err
    if int(failed):
        raise BenchError(f"{failed} connections failed (is the pair allowed?)")
    return float(rate)


PAIRS = {"policed": ("bench/client", "bench/server"),  # through the chains once policies exist
         "unpoliced": ("bench/client2", "bench/server2")}  # never selected by a policy


def measure_throughput(paths: LabPaths, rounds: int, seconds: float
                       ) -> dict[str, dict[str, list[float]]]:
    """Per pair, Gbit/s and connections/s per round; the pairs alternate within a round.
    Also the agents' CPU seconds during each pair's connection runs ("agent CPU s")."""
    pods = {p.key: p for p in running_pods(paths)}
    figures: dict[str, dict[str, list[float]]] = {
        pair: {"Gbit/s": [], "connections/s": [], "agent CPU s": []} for pair in PAIRS}
    for _ in range(rounds):
        for pair, (src, dst) in PAIRS.items():
            client, server = pods[src], pods[dst]
            figures[pair]["Gbit/s"].append(iperf(client.netns, server.netns, str(server.ip),
                                                 seconds))
            before = agents_cpu(paths)
            figures[pair]["connections/s"].append(connections_per_second(client, server,
                                                                         seconds))
            figures[pair]["agent CPU s"].append(agents_cpu(paths) - before)
    return figures


def agents_cpu(paths: LabPaths) -> float:
    return sum(own for name, (own, _) in process_cpu(paths).items() if name.startswith("agent"))


def report_throughput(results: dict[str, dict[str, dict[str, list[float]]]], rounds: int,
                      seconds: float) -> None:
    print(f"\n(2) client (node-1) -> server (node-2), best of {rounds} rounds of {seconds:g} s "
          f"(median in brackets), two pairs alternating; goal: with policies >= "
          f"{GOAL_RATIO:.0%} of without\n")
    base = results["no policy"]["policed"]
    print("| policies | pair | iperf3 TCP Gbit/s | vs no policy | new connections/s | "
          "vs no policy | agents' CPU s per connection run |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for what, pairs in results.items():
        for pair, figures in pairs.items():
            gbit, conns = figures["Gbit/s"], figures["connections/s"]
            print(f"| {what} | {pair} | {max(gbit):.2f} ({statistics.median(gbit):.2f}) | "
                  f"{_ratios(gbit, base['Gbit/s'])} | {max(conns):.0f} "
                  f"({statistics.median(conns):.0f}) | {_ratios(conns, base['connections/s'])} | "
                  f"{statistics.median(figures['agent CPU s']):.1f} |")


def _ratios(values: list[float], base: list[float]) -> str:
    """Best against best, and (median against median)."""
    median = statistics.median(values) / statistics.median(base)
    return f"{max(values) / max(base):.2f} ({median:.2f})"


# -- (3) ruleset size ------------------------------------------------------------------------

def ruleset_size(pods: int, policies: int) -> dict[str, Any]:
    generated = generate(pods, policies, seed=1)
    manifests = [Manifest("generated", d["kind"], d["metadata"].get("namespace"),
                          d["metadata"]["name"], d)
                 for d in (*generated.namespaces, *generated.pods, *generated.policies)]
    cluster = build_cluster(manifests)
    by_node: dict[str, list[NodePod]] = {}
    for p in cluster.pods:
        by_node.setdefault(p.node_name or "", []).append(
            NodePod(p.key, f"pn{len(by_node.get(p.node_name or '', [])):013x}", p.ips))
    local = max(by_node.values(), key=len)
    t0 = time.perf_counter()
    document = render(Engine(cluster).resolution, local)
    seconds = time.perf_counter() - t0
    counts = {"rules": 0, "policy rules": 0, "set elements": 0, "map entries": 0}
    for o in document["nftables"]:
        if "rule" in o:
            counts["rules"] += 1
            counts["policy rules"] += "-policy-" in o["rule"]["chain"]
        elif "set" in o:
            counts["set elements"] += len(o["set"].get("elem", []))
        elif "map" in o:
            counts["map entries"] += len(o["map"].get("elem", []))
    return {"pods": pods, "policies": policies, "local pods": len(local), **counts,
            "JSON KiB": len(json.dumps(document)) / 1024, "render ms": seconds * 1e3}


def report_sizes(sizes: list[dict[str, Any]]) -> None:
    print("\n(3) Ruleset of the node with the most pods (250 pods per node at most), from "
          "`render` (Engine included in the time)\n")
    print("| pods / policies | local pods | rules (of which policy rules) | set elements | "
          "map entries | JSON KiB | render ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in sizes:
        print(f"| {s['pods']} / {s['policies']} | {s['local pods']} | {s['rules']} "
              f"({s['policy rules']}) | {s['set elements']} | {s['map entries']} | "
              f"{s['JSON KiB']:.0f} | {s['render ms']:.0f} |")


# -- main ------------------------------------------------------------------------------------

def run_lab(args: argparse.Namespace) -> None:
    name = f"bp{os.getpid()}"
    generated = generate(args.pods, max(args.policies, args.many), seed=1).policies
    pair = pair_policies()
    allow = write_docs("allow-client", [pair["allow-client"]])
    with lab_up(name, lab_docs(name, args.pods), args.timeout) as run:
        paths = run.paths
        print(f"lab up: {run.wall:.1f} s ({args.pods} + 4 pods, 3 nodes)")
        results: dict[str, dict[str, dict[str, list[float]]]] = {}
        if args.throughput:
            results["no policy"] = measure_throughput(paths, args.rounds, args.seconds)
            many = write_docs("many", [*generated[:args.many], *pair.values()])
            podnet("apply", "--lab", paths.name, "-f", str(many))
            print(f"{args.many} + 3 policies applied; tables settled in "
                  f"{wait_for_tables(paths):.1f} s")
            results[f"{args.many} (+3 for the pair)"] = measure_throughput(
                paths, args.rounds, args.seconds)
            without_flow_log(paths)
            results[f"{args.many} (+3), no flow log"] = measure_throughput(
                paths, args.rounds, args.seconds)
            podnet("delete", "--lab", paths.name, "-f", str(many))
        if args.changes:
            some = write_docs("some", [*generated[:args.policies], *pair.values()])
            podnet("apply", "--lab", paths.name, "-f", str(some))
            print(f"{args.policies} + 3 policies applied; tables settled in "
                  f"{wait_for_tables(paths):.1f} s")
            mark = log_length(paths, "node-2")
            samples = measure_latency(paths, args.changes, allow, args.writer)
            report_latency(samples, agent_tables(paths, "node-2", mark), args.pods,
                           args.policies + 3, args.writer)
        if results:
            report_throughput(results, args.rounds, args.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=300, help="generated pods in the lab (300)")
    parser.add_argument("--policies", type=int, default=300, help="(1): policies (300)")
    parser.add_argument("--changes", type=int, default=40, help="(1): policy changes (40)")
    parser.add_argument("--many", type=int, default=1000, help="(2): policies (1000)")
    parser.add_argument("--rounds", type=int, default=3, help="(2): rounds (3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="(2): seconds per run (3)")
    parser.add_argument("--timeout", type=float, default=600.0, help="`lab up --timeout` (600)")
    parser.add_argument("--writer", choices=("podnet", "bench"), default="podnet",
                        help="(1): who writes each change: a `podnet` process (timed from its "
                        "start), or this process through the store API (timed from the commit)")
    parser.add_argument("--no-throughput", dest="throughput", action="store_false")
    parser.add_argument("--size-only", action="store_true", help="(3) alone, without a lab")
    args = parser.parse_args(argv)
    print("\n".join(machine()))
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    if not args.size_only:
        if os.geteuid() != 0:
            print("bench/policy_datapath.py: needs root (network namespaces)", file=sys.stderr)
            return 2
        sweep(LAB_NAME, b"policy_datapath.py")
        run_lab(args)
    report_sizes([ruleset_size(p, n) for p, n in SIZES])
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}; "
          f"this script's CPU: {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.1f} s user")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"bench/policy_datapath.py: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench/policy_datapath.py: interrupted; its lab is removed", file=sys.stderr)
        sys.exit(130)
