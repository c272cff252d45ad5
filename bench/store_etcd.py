"""Benchmark: the etcd store against SQLite, two labs brought up in the same run.

Both labs have three nodes and the pods x/a (node-1) and x/b (node-2); one keeps its state
in SQLite, the other in a 3-member etcd cluster (one member per node). Measured on node-1,
alternating between the labs so that both meet the same load:

- ADD: `podnet-cni` ADD then DEL into one pod namespace, one process per call as a runtime
  runs it, each timed whole (exec, agent, store, kernel);
- policy programming: a NetworkPolicy selecting x/a written to the store (from the root
  namespace, as `podnet apply` does), then the time until node-1's nftables table names it
  (`nft -j list table` in node-1, polled); and the same for its deletion.

    .venv/bin/python bench/store_etcd.py               # about two minutes on 2 cores
    .venv/bin/python bench/store_etcd.py --adds 50 --policies 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

from podnet.lab.state import LabPaths
from podnet.store import Key, open_store

VENV_BIN = Path(sys.executable).parent
PODNET, PODNET_CNI = str(VENV_BIN / "podnet"), str(VENV_BIN / "podnet-cni")
BACKENDS = ("sqlite", "etcd")
POLL = 0.002  # seconds between looks at the nftables table


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: {done.stderr}{done.stdout}")
    return done.stdout


@contextmanager
def lab(name: str, datastore: str, work: Path) -> Iterator[LabPaths]:
    docs = [{"apiVersion": "podnet.dev/v1alpha1", "kind": "Lab", "metadata": {"name": name},
             "spec": {"nodes": 3, "datastore": datastore}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]
    for pod, node in (("a", "node-1"), ("b", "node-2")):
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": pod, "namespace": "x", "labels": {"pod": pod}},
                     "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [
                         {"containerPort": 80}]}]}})
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    try:
        run(PODNET, "lab", "up", "-f", str(path))
        yield LabPaths(name)
    finally:
        subprocess.run([PODNET, "lab", "down", "--name", name], capture_output=True, check=False)


@contextmanager
def pod_netns(name: str) -> Iterator[str]:
    run("ip", "netns", "add", name)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def cni(command: str, paths: LabPaths, container_id: str, netns: str) -> float:
    """One `podnet-cni` call against node-1's agent: its wall-clock milliseconds."""
    conf = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet-cni",
            "socket": str(paths.socket("node-1"))}
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
           "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    began = time.perf_counter()
    done = subprocess.run([PODNET_CNI], input=json.dumps(conf).encode(), env=env,
                          capture_output=True, timeout=120, check=False)
    took = (time.perf_counter() - began) * 1000
    if done.returncode != 0:
        raise SystemExit(f"podnet-cni {command} on {paths.name}: {done.stdout.decode()}")
    return took


def table_names(paths: LabPaths, text: str) -> bool:
    listed = run("nsenter", f"--net={paths.netns_path(paths.node('node-1'))}",
                 "nft", "-j", "list", "table", "inet", "podnet")
    return text in listed


def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout:.0f}s")
        time.sleep(POLL)


def policy_round(paths: LabPaths, name: str) -> tuple[float, float]:
    """Milliseconds from the write to node-1's table: creating a policy, deleting it."""
    key = Key("NetworkPolicy", "x", name)
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}}
    marker = f"x/{name} "
    with open_store(paths.store_url) as store:
        began = time.perf_counter()
        store.create(key, body)
        until(lambda: table_names(paths, marker), f"{name} in node-1's table")
        created = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        store.delete(key)
        until(lambda: not table_names(paths, marker), f"{name} gone from node-1's table")
        deleted = (time.perf_counter() - began) * 1000
    return created, deleted


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adds", type=int, default=40, help="ADD+DEL cycles per backend")
    parser.add_argument("--policies", type=int, default=15, help="policy rounds per backend")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the labs live in network namespaces")
    tag = os.getpid() % 100000
    adds: dict[str, list[float]] = {b: [] for b in BACKENDS}
    dels: dict[str, list[float]] = {b: [] for b in BACKENDS}
    created: dict[str, list[float]] = {b: [] for b in BACKENDS}
    deleted: dict[str, list[float]] = {b: [] for b in BACKENDS}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        labs = {b: stack.enter_context(lab(f"bs{b[0]}{tag}", b, Path(tmp))) for b in BACKENDS}
        netns = stack.enter_context(pod_netns(f"pn-b-{tag}-pod"))
        for i in range(args.adds):
            for backend, paths in labs.items():
                adds[backend].append(cni("ADD", paths, f"bench{i}", netns))
                dels[backend].append(cni("DEL", paths, f"bench{i}", netns))
        for i in range(args.policies):
            for backend, paths in labs.items():
                c, d = policy_round(paths, f"bench-{i}")
                created[backend].append(c)
                deleted[backend].append(d)
    load = os.getloadavg()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load {load[0]:.1f} "
          f"{load[1]:.1f} {load[2]:.1f}; {args.adds} ADD+DEL, {args.policies} policy rounds")
    print("| what | sqlite p50 | sqlite p95 | etcd p50 | etcd p95 | etcd/sqlite (p50) |")
    print("|---|---|---|---|---|---|")
    for what, figures in (("CNI ADD", adds), ("CNI DEL", dels), ("policy created -> nft",
                                                                  created),
                          ("policy deleted -> nft", deleted)):
        s, e = figures["sqlite"], figures["etcd"]
        print(f"| {what} | {p(s, .5):.0f} ms | {p(s, .95):.0f} ms | {p(e, .5):.0f} ms | "
              f"{p(e, .95):.0f} ms | {statistics.median(e) / statistics.median(s):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
