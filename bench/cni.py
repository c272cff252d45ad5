"""Benchmark: CNI ADD and DEL through the real executables, podnet-cni against bridge + host-local.

Both plugins are run as a runtime runs them, one process per call, from inside their own node
namespace (`nsenter --net=<node>`), on pod namespaces made the same way and reused by both:
- reference: the Debian containernetworking-plugins `bridge` with `host-local` IPAM;
- podnet: `.venv/bin/podnet-cni`, and the plugin `podnet install-cni` writes for a runtime,
  both forwarding to one `podnet agent` in their node namespace.
Each call is timed whole (exec, plugin, kernel work), serially (ADD then DEL per pod) and with
16 calls in flight (all ADDs of a round, then all DELs). Calls alternate between the plugins,
so that on a shared machine every plugin meets the same load. The agent logs each request's own
duration, which gives the agent-side work. Start-up cost is VERSION's, which does no work.

    .venv/bin/python bench/cni.py                 # about a minute on 2 cores
    .venv/bin/python bench/cni.py --pods 100 --rounds 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
REFERENCE_DIR = Path("/usr/lib/cni")
GOAL_CYCLE_RATIO = 1.5
GOAL_AGENT_ADD_MS = 3.0


class BenchError(Exception):
    pass


@dataclass
class Plugin:
    """How to run one plugin for one pod, from inside its node namespace."""

    name: str
    binary: Path
    node: str
    conf: dict[str, object]

    def call(self, command: str, container_id: str, pod_ns: str) -> tuple[float, float]:
        """Run one command: its wall-clock and CPU milliseconds (the process's user + system;
        nsenter execs the plugin, so that is the plugin's). Fails loudly."""
        env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command,
               "CNI_CONTAINERID": container_id, "CNI_NETNS": f"/run/netns/{pod_ns}",
               "CNI_IFNAME": "eth0", "CNI_PATH": str(REFERENCE_DIR)}
        started = time.perf_counter()
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.node}", str(self.binary)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(json.dumps(self.conf).encode())
        proc.stdin.close()
        out, err = proc.stdout.read(), proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, for its resource usage
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = (time.perf_counter() - started) * 1000
        if proc.returncode != 0:
            raise BenchError(f"{self.name} {command} {container_id}: {out!r} {err!r}")
        return wall, (usage.ru_utime + usage.ru_stime) * 1000

    def version(self) -> float:
        """VERSION's wall-clock milliseconds: process start-up, no work."""
        started = time.perf_counter()
        subprocess.run([str(self.binary)], input=b'{"cniVersion":"1.0.0"}',
                       env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=True)
        return (time.perf_counter() - started) * 1000


def ip_netns(*argv: str) -> None:
    subprocess.run(["ip", "netns", *argv], check=True, capture_output=True)


@contextmanager
def namespaces(count: int, tag: str) -> Iterator[list[str]]:
    """`count` fresh namespaces named pn-b-<pid>-…, removed afterwards whatever happens."""
    names = [f"pn-b-{os.getpid()}-{tag}{i}-{secrets.token_hex(2)}" for i in range(count)]
    made: list[str] = []
    try:
        for name in names:
            made.append(name)
            ip_netns("add", name)
        yield names
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextmanager
def agent(node: str, work: Path, extra: Sequence[str] = (),
          podnet: Sequence[str] = (str(VENV_BIN / "podnet"),)) -> Iterator[tuple[str, Path]]:
    """`podnet agent` (`podnet`: how to run the command) in `node`, with `extra` options;
    yields its socket and log."""
    sock, log = work / "agent.sock", work / "agent.log"
    subprocess.run(["nsenter", f"--net=/run/netns/{node}", "ip", "link", "set", "lo", "up"],
                   check=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{node}", *podnet, "-v", "agent",
             "--node", "bench", "--store", f"sqlite://{work}/state.db", "--socket", str(sock),
             "--cluster-cidr", "10.244.0.0/16", "--node-subnet-prefix", "20", *extra],
            stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket(socket.AF_UNIX) as probe:
                if probe.connect_ex(str(sock)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"agent did not start: {log.read_text()}")
            time.sleep(0.05)
        yield str(sock), log
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def install_cni(work: Path, sock: str) -> Path:
    """The plugin as `podnet install-cni` puts it where a runtime looks for plugins."""
    subprocess.run([str(VENV_BIN / "podnet"), "install-cni", "--conf-dir", str(work / "net.d"),
                    "--bin-dir", str(work / "bin"), "--socket", sock], check=True,
                   capture_output=True)
    return work / "bin" / "podnet-cni"


Sample = tuple[float, float]  # (wall ms, plugin process CPU ms)


@dataclass
class Figures:
    """One plugin's samples, per kind of call."""

    serial_add: list[Sample] = field(default_factory=list)
    serial_del: list[Sample] = field(default_factory=list)
    parallel_add: list[Sample] = field(default_factory=list)
    parallel_del: list[Sample] = field(default_factory=list)
    version: list[float] = field(default_factory=list)


def in_parallel(plugin: Plugin, command: str, pods: list[str], tag: str,
                workers: int) -> list[Sample]:
    """`command` for every pod with `workers` calls in flight."""
    call: Callable[[int], Sample] = lambda i: plugin.call(command, f"{tag}{i}", pods[i])  # noqa: E731
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(call, range(len(pods))))


def measure(plugins: list[Plugin], pods: list[str], cycles: int, rounds: int,
            parallel_pods: int, workers: int) -> dict[str, Figures]:
    """Every measurement alternates between the plugins, so that all meet the same load."""
    figures = {plugin.name: Figures() for plugin in plugins}
    for i in range(cycles):
        for plugin in plugins:
            fig = figures[plugin.name]
            fig.serial_add.append(plugin.call("ADD", f"s{i}", pods[i]))
            fig.serial_del.append(plugin.call("DEL", f"s{i}", pods[i]))
            fig.version.append(plugin.version())
    for r in range(rounds):
        for plugin in plugins:
            fig = figures[plugin.name]
            fig.parallel_add += in_parallel(plugin, "ADD", pods[:parallel_pods], f"p{r}-", workers)
            fig.parallel_del += in_parallel(plugin, "DEL", pods[:parallel_pods], f"p{r}-", workers)
    return figures


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def walls(samples: list[Sample]) -> list[float]:
    return [wall for wall, _ in samples]


def cpus(samples: list[Sample]) -> list[float]:
    return [cpu for _, cpu in samples]


def agent_work(log: Path, command: str) -> tuple[list[float], list[float], list[float]]:
    """The agent's own wall, CPU and user-CPU milliseconds of each serial `command` (IDs s0, s1,
    ...): user CPU is the Python side, the rest of the CPU the kernel's work for it."""
    pattern = re.compile(rf"INFO: {command} s[0-9]+/eth0: ok in ([0-9.]+) ms "
                         r"\(cpu ([0-9.]+) ms: user ([0-9.]+)")
    found = pattern.findall(log.read_text())
    return ([float(wall) for wall, _, _ in found], [float(cpu) for _, cpu, _ in found],
            [float(user) for _, _, user in found])


def report(figures: dict[str, Figures], log: Path, workers: int) -> None:
    """Print the latency table, the CPU table, the ratios and the goals."""
    print("Latency, milliseconds of wall clock, whole process as a runtime sees it:\n")
    print("| plugin | run | ADD p50 | ADD p95 | DEL p50 | DEL p95 | ADD+DEL p50 | VERSION p50 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    cycles = {}
    for name, fig in figures.items():
        runs = (("serial", fig.serial_add, fig.serial_del),
                (f"{workers} parallel", fig.parallel_add, fig.parallel_del))
        for run, add, delete in runs:
            cycle = p50(walls(add)) + p50(walls(delete))
            cycles[(name, run)] = cycle
            print(f"| {name} | {run} | {p50(walls(add)):.1f} | {p95(walls(add)):.1f} | "
                  f"{p50(walls(delete)):.1f} | {p95(walls(delete)):.1f} | {cycle:.1f} | "
                  f"{p50(fig.version):.1f} |")
    agent_add, agent_add_cpu, agent_add_user = agent_work(log, "ADD")
    agent_del, agent_del_cpu, _ = agent_work(log, "DEL")
    print("\nCPU per serial call, milliseconds (user + system; the agent's from its log, shared "
          "by both podnet rows): what a call costs whatever else runs on the machine.\n")
    print("| plugin | ADD: plugin | ADD: agent | DEL: plugin | DEL: agent | ADD+DEL total |")
    print("|---|---:|---:|---:|---:|---:|")
    cpu_cycles = {}
    for name, fig in figures.items():
        reference = name == next(iter(figures))
        add_agent = 0.0 if reference else p50(agent_add_cpu)
        del_agent = 0.0 if reference else p50(agent_del_cpu)
        total = p50(cpus(fig.serial_add)) + p50(cpus(fig.serial_del)) + add_agent + del_agent
        cpu_cycles[name] = total
        print(f"| {name} | {p50(cpus(fig.serial_add)):.1f} | {add_agent:.1f} | "
              f"{p50(cpus(fig.serial_del)):.1f} | {del_agent:.1f} | {total:.1f} |")
    print()
    reference_name = next(iter(figures))
    for name in list(figures)[1:]:
        for run in ("serial", f"{workers} parallel"):
            ratio = cycles[(name, run)] / cycles[(reference_name, run)]
            verdict = "met" if ratio <= GOAL_CYCLE_RATIO else "NOT met"
            print(f"{name}, {run}: ADD+DEL {ratio:.2f}x the reference "
                  f"(goal <= {GOAL_CYCLE_RATIO}x: {verdict})")
        print(f"{name}: CPU per ADD+DEL {cpu_cycles[name] / cpu_cycles[reference_name]:.2f}x "
              "the reference")
    verdict = "met" if p50(agent_add) <= GOAL_AGENT_ADD_MS else "NOT met"
    print(f"agent-side ADD (serial calls): p50 {p50(agent_add):.2f} ms, p95 {p95(agent_add):.2f} "
          f"ms of wall clock (goal p50 <= {GOAL_AGENT_ADD_MS} ms: {verdict}), "
          f"CPU p50 {p50(agent_add_cpu):.2f} ms; user (Python) is "
          f"{sum(agent_add_user) / sum(agent_add_cpu):.0%} of it (over all calls: the kernel "
          "accounts user and system time by ticks)")
    print(f"agent-side DEL (serial calls): p50 {p50(agent_del):.2f} ms, p95 {p95(agent_del):.2f} "
          f"ms of wall clock, CPU p50 {p50(agent_del_cpu):.2f} ms")


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return [f"machine: {os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
            f"Python {platform.python_version()}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=40, help="serial ADD+DEL cycles (40)")
    parser.add_argument("--parallel-pods", type=int, default=32, help="pods per parallel round")
    parser.add_argument("--rounds", type=int, default=2, help="parallel rounds (2)")
    parser.add_argument("--workers", type=int, default=16, help="calls in flight (16)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/cni.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    print("\n".join(machine()))
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}\n")
    count = max(args.pods, args.parallel_pods)
    with tempfile.TemporaryDirectory(prefix="pn-bench-cni-") as tmp, \
            namespaces(2, "node") as (podnet_node, ref_node), \
            namespaces(count, "pod") as pods, \
            agent(podnet_node, Path(tmp)) as (sock, log):
        installed = install_cni(Path(tmp), sock)
        podnet_conf: dict[str, object] = {
            "cniVersion": "1.0.0", "name": "podnet", "type": "podnet-cni", "socket": sock}
        plugins = [
            Plugin("bridge+host-local", REFERENCE_DIR / "bridge", ref_node, {
                "cniVersion": "1.0.0", "name": "ref", "type": "bridge", "bridge": "refbr0",
                "isGateway": True, "ipam": {"type": "host-local", "dataDir": f"{tmp}/ipam",
                                            "ranges": [[{"subnet": "10.88.0.0/20"}]]}}),
            Plugin("podnet-cni", VENV_BIN / "podnet-cni", podnet_node, podnet_conf),
            Plugin("podnet-cni (install-cni)", installed, podnet_node, podnet_conf),
        ]
        for plugin in plugins:
            plugin.call("ADD", "warm", pods[0])  # first-call costs (bridge creation, caches)
            plugin.call("DEL", "warm", pods[0])
        figures = measure(plugins, pods, args.pods, args.rounds, args.parallel_pods, args.workers)
        print(f"{args.pods} serial ADD+DEL cycles; {args.rounds} rounds of {args.parallel_pods} "
              f"pods with {args.workers} calls in flight; calls alternate between the plugins\n")
        report(figures, log, args.workers)
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"bench/cni.py: {err}", file=sys.stderr)
        sys.exit(1)
