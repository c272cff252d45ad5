"""Benchmark: what the agent's Prometheus metrics cost.

1. CNI ADD and DEL through the real `podnet-cni`, one process per call as a runtime makes them,
   against two agents in node namespaces of their own, calls alternating between them:
   - podnet with metrics: this checkout's agent with `--metrics-address`, scraped every
     `--scrape-interval` seconds meanwhile (Prometheus' default is 60 s, so this is harsh);
   - podnet without: the agent of the commit before the metrics existed (by default the parent
     of the commit that added src/podnet/agent/metrics.py), extracted with `git archive`.
   Each agent logs the wall time of each request it serves; the ratio of those is the cost.
2. The instrumentation alone, in this process: microseconds of metric updates per CNI request,
   per table change (counting the rules and set elements of the table applied) and per verdict.
3. A scrape of the metrics agent holding N pods (IPAM gauges are read from the store then).

    .venv/bin/python bench/metrics.py                 # about a minute on 2 cores
    .venv/bin/python bench/metrics.py --pods 20 --scrape-pods 0,50
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cni import BenchError, Plugin, agent, agent_work, machine, measure, namespaces, p50, p95
from podnet.agent.flows import Decision
from podnet.agent.metrics import Metrics
from podnet.datapath.nft import list_table
from podnet.lab.metrics import fetch

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
METRICS = ("127.0.0.1", 9470)  # the loopback of the agent's node namespace


def reference_commit() -> str:
    """The parent of the commit that added the metrics module."""
    added = subprocess.run(["git", "-C", str(ROOT), "log", "--diff-filter=A", "--format=%H",
                            "--", "src/podnet/agent/metrics.py"],
                           capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise BenchError("no commit adds src/podnet/agent/metrics.py; give --reference")
    return f"{added[-1]}^"


def extract(commit: str, into: Path) -> Path:
    """`src/` of `commit`, unpacked under `into`: the package path of that podnet."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def command_of(src: Path) -> tuple[str, ...]:
    """`podnet` run from the package at `src` (ahead of this checkout's on sys.path)."""
    return (sys.executable, "-c",
            f"import sys; sys.path.insert(0, {str(src)!r}); "
            "from podnet.cli.main import run; run()")


@contextmanager
def scraping(node: str, interval: float) -> Iterator[list[float]]:
    """Fetch the node's metrics every `interval` seconds while inside; the fetch times (ms)."""
    times: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            started = time.perf_counter()
            fetch(f"/run/netns/{node}", *METRICS)
            times.append((time.perf_counter() - started) * 1000)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield times
    finally:
        stop.set()
        thread.join()


def per_call_us(call: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - started) / repeat * 1e6


def mean_apply_ms(exposition: str) -> float:
    """The mean table change (one nftables transaction) of an agent, from its histogram."""
    found = {s.name: s.value for f in text_string_to_metric_families(exposition)
             for s in f.samples if f.name == "podnet_dataplane_apply_duration_seconds"}
    return found["podnet_dataplane_apply_duration_seconds_sum"] * 1000 / max(
        1.0, found["podnet_dataplane_apply_duration_seconds_count"])


def instrumentation(document: dict[str, Any], repeat: int) -> list[tuple[str, float]]:
    """Microseconds of the metric updates of one event each, on a fresh registry."""
    m = Metrics()
    allowed = Decision.of("x/b-in ingress[0]")

    def add() -> None:
        m.cni_request("ADD", "ok", 0.004)
        m.allocations.inc()

    def change() -> None:
        with m.applying(document):
            pass

    return [("CNI ADD (request + allocation)", per_call_us(add, repeat)),
            (f"table change ({len(document['nftables'])} objects counted)",
             per_call_us(change, max(1, repeat // 100))),
            ("verdict (one connection)", per_call_us(lambda: m.decided([allowed]), repeat))]


def scrape_times(node: str, plugin: Plugin, pods: list[str], counts: list[int],
                 scrapes: int) -> list[tuple[int, float, float, int]]:
    """(pods held, p50 ms, p95 ms, bytes) of `scrapes` fetches, ADDing pods up to each count."""
    rows = []
    held = 0
    for count in counts:
        while held < count:
            plugin.call("ADD", f"held{held}", pods[held])
            held += 1
        times, size = [], 0
        for _ in range(scrapes):
            started = time.perf_counter()
            size = len(fetch(f"/run/netns/{node}", *METRICS))
            times.append((time.perf_counter() - started) * 1000)
        rows.append((held, p50(times), p95(times), size))
    for i in range(held):
        plugin.call("DEL", f"held{i}", pods[i])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=60, help="serial ADD+DEL cycles (60)")
    parser.add_argument("--scrape-interval", type=float, default=0.2, metavar="SECONDS",
                        help="scrape the metrics agent this often during the cycles (0.2)")
    parser.add_argument("--scrape-pods", default="0,100,250", metavar="N,N",
                        help="pods held while timing scrapes (0,100,250)")
    parser.add_argument("--reference", metavar="COMMIT",
                        help="the agent without metrics (default: before they were added)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/metrics.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    counts = [int(n) for n in args.scrape_pods.split(",")]
    reference = args.reference or reference_commit()
    head, ref = (subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                                capture_output=True, text=True, check=True).stdout.strip()
                 for rev in ("HEAD", reference))
    print("\n".join(machine()))
    print(f"podnet with metrics: {head} (this checkout); without: {ref}")
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}\n")
    with tempfile.TemporaryDirectory(prefix="pn-bench-metrics-") as tmp, \
            namespaces(2, "node") as (with_node, without_node), \
            namespaces(max(args.pods, *counts), "pod") as pods:
        work = Path(tmp)
        (work / "with").mkdir()
        (work / "without").mkdir()
        old = command_of(extract(reference, work / "ref"))
        with agent(with_node, work / "with",
                   ("--metrics-address", "{}:{}".format(*METRICS))) as (with_sock, with_log), \
                agent(without_node, work / "without", podnet=old) as (without_sock, without_log):
            conf: dict[str, object] = {"cniVersion": "1.0.0", "name": "podnet",
                                       "type": "podnet-cni"}
            plugins = [Plugin("podnet without metrics", VENV_BIN / "podnet-cni", without_node,
                              {**conf, "socket": without_sock}),
                       Plugin("podnet with metrics", VENV_BIN / "podnet-cni", with_node,
                              {**conf, "socket": with_sock})]
            for plugin in plugins:
                plugin.call("ADD", "warm", pods[0])
                plugin.call("DEL", "warm", pods[0])
            with scraping(with_node, args.scrape_interval) as scraped:
                figures = measure(plugins, pods, args.pods, 0, 0, 1)
            print(f"1. {args.pods} serial ADD+DEL cycles through podnet-cni, alternating; the "
                  f"agent with metrics scraped every {args.scrape_interval} s meanwhile "
                  f"({len(scraped)} scrapes, p50 {p50(scraped):.1f} ms)\n")
            print("| agent | agent ADD p50 | agent ADD p95 | agent DEL p50 | "
                  "whole ADD p50 | whole DEL p50 |")
            print("|---|---:|---:|---:|---:|---:|")
            sides = {}
            for plugin, log in zip(plugins, (without_log, with_log), strict=True):
                add, _, _ = agent_work(log, "ADD")
                delete, _, _ = agent_work(log, "DEL")
                fig = figures[plugin.name]
                sides[plugin.name] = (p50(add), p50(delete))
                print(f"| {plugin.name} | {p50(add):.2f} | {p95(add):.2f} | {p50(delete):.2f} | "
                      f"{p50([w for w, _ in fig.serial_add]):.1f} | "
                      f"{p50([w for w, _ in fig.serial_del]):.1f} |")
            (add_without, del_without), (add_with, del_with) = sides.values()
            print(f"\nagent-side ADD with/without: {add_with / add_without:.2f}x; "
                  f"DEL: {del_with / del_without:.2f}x (milliseconds of wall clock, p50)\n")

            document = list_table(f"/run/netns/{with_node}")
            print("2. The instrumentation alone, microseconds per event (this process):\n")
            itself = [add_with, mean_apply_ms(fetch(f"/run/netns/{with_node}", *METRICS)),
                      None]
            print("| event | metrics µs | the event itself, ms | share |")
            print("|---|---:|---:|---:|")
            for (what, micros), ms in zip(instrumentation(document, 100_000), itself,
                                          strict=True):
                cost = f"{ms:.2f} | {micros / (ms * 1000):.3%}" if ms else "- | -"
                print(f"| {what} | {micros:.2f} | {cost} |")
            print("(the event itself: the agent-side ADD p50 above; the mean table change of the "
                  "agent with metrics, from its histogram; a verdict has none, the kernel "
                  "decides)")

            print("\n3. One scrape of the agent with metrics (20 scrapes each):\n")
            print("| pods on the node | scrape p50 ms | scrape p95 ms | bytes |")
            print("|---:|---:|---:|---:|")
            for held, mid, high, size in scrape_times(with_node, plugins[1], pods, counts, 20):
                print(f"| {held} | {mid:.1f} | {high:.1f} | {size} |")
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"bench/metrics.py: {err}", file=sys.stderr)
        sys.exit(1)
