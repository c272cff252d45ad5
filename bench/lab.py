"""Benchmark: the lab. Bring-up of 10 nodes x 50 pods, and iperf3 throughput between pods.

Bring-up: `podnet lab up -f DIR` as a whole process, wall clock, on a generated lab (a
`kind: Lab` with `--nodes` nodes and `--pods` pods from Deployments of 50, one containerPort
each); then where the time went, from the logs of the kubelet and the agents (tailed while
the lab comes up, each line stamped as it appears; all of them in bench/out/lab/up.timeline)
and the CPU of every lab process; then `podnet lab down`. Goal (issue 5): at most 60 s for
10 x 50 on 2 cores.

Throughput: for each backend a lab of 2 nodes and 3 pods (a, b on node-1; c on node-2).
iperf3 TCP, one stream for `--seconds`: a -> b (same node), a -> c (across nodes), and the
reference: node-1 -> node-2 on their underlay addresses. Rounds alternate the paths, so all
meet the same load; each pod run is set against the underlay run of its round.

    .venv/bin/python bench/lab.py                        # about 3 minutes on 2 cores
    .venv/bin/python bench/lab.py --no-bringup --rounds 5
    .venv/bin/python bench/lab.py --nodes 3 --pods 60 --no-throughput

Every process it starts is stopped by PID and every lab it makes is removed, also on
Ctrl-C; labs left by a killed run (named bl<pid>…) are removed at the next start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import podnet
from cni import machine
from podnet.lab.pods import running_pods
from podnet.lab.state import LabPaths, labs

PODNET = str(Path(sys.executable).with_name("podnet"))
OUT = Path(__file__).parent / "out" / "lab"
GOAL_UP_SECONDS = 60.0
PODS_PER_DEPLOYMENT = 50
NAMESPACES = 5
IPERF_PORT = 5201
UNDERLAY = "node to node (underlay)"
LAB_NAME = re.compile(r"bl(\d+)(up|vx|hg)")


class BenchError(Exception):
    pass


# -- processes and labs, always removed ------------------------------------------------------

def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL after `grace` s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def lab_down(name: str) -> float:
    """`podnet lab down --name`, not interruptible by Ctrl-C; its wall-clock seconds."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        started = time.perf_counter()
        if name in labs():
            subprocess.run([PODNET, "lab", "down", "--name", name], capture_output=True,
                           check=False, timeout=300)
        return time.perf_counter() - started
    finally:
        signal.signal(signal.SIGINT, previous)


def sweep(pattern: re.Pattern[str] = LAB_NAME, script: bytes = b"bench/lab.py") -> None:
    """Remove labs of bench runs that were killed (their PID no longer runs `script`)."""
    for name in labs():
        match = pattern.fullmatch(name)
        if match and not _runs(int(match.group(1)), script):
            print(f"removing lab {name}, left by a killed run")
            lab_down(name)


def _runs(pid: int, script: bytes) -> bool:
    try:
        return script in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False


@contextlib.contextmanager
def lab_up(name: str, docs: list[dict[str, object]], timeout: float) -> Iterator[UpRun]:
    """`podnet lab up` of `docs`, timed and watched; the lab is removed on the way out."""
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = OUT / f"{name[-2:]}.yaml"  # up, vx, hg: the last run's, to repeat by hand
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    paths = LabPaths(name)
    tail = LogTail(paths.logs)
    proc: subprocess.Popen[bytes] | None = None
    try:
        started = time.perf_counter()
        tail.start(started)
        proc = subprocess.Popen([PODNET, "lab", "up", "-f", str(manifest), "--timeout",
                                 str(timeout)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        tail.stop()
        manifest.with_suffix(".timeline").write_text(
            "".join(f"{t:8.3f} {log}: {line}\n" for t, log, line in tail.lines))
        if proc.returncode != 0:
            raise BenchError(f"podnet lab up -f {manifest}: {err.decode().strip()}")
        yield UpRun(paths, manifest, wall, usage.ru_utime + usage.ru_stime, tail.lines,
                    process_cpu(paths))
    finally:
        tail.stop()
        if proc is not None:
            stop(proc)  # still coming up (Ctrl-C): `lab down` below removes what it made
        lab_down(name)


# -- bring-up: where the time goes -----------------------------------------------------------

@dataclass
class LogTail:
    """Lines of the lab's logs, each stamped (seconds since `start`) when it appears."""

    directory: Path
    lines: list[tuple[float, str, str]] = field(default_factory=list)  # (t, log name, line)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, t0: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(t0,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, t0: float) -> None:
        offsets: dict[Path, int] = {}
        partial: dict[Path, bytes] = {}
        while True:
            done = self._done.is_set()  # one last read after the stop
            now = time.perf_counter() - t0
            for log in sorted(self.directory.glob("*.log")) if self.directory.is_dir() else []:
                with contextlib.suppress(OSError), log.open("rb") as f:
                    f.seek(offsets.get(log, 0))
                    data = partial.pop(log, b"") + f.read()
                    offsets[log] = f.tell()
                *complete, rest = data.split(b"\n")
                partial[log] = rest
                self.lines += [(now, log.stem, line.decode(errors="replace"))
                               for line in complete]
            if done:
                return
            self._done.wait(0.02)


def process_cpu(paths: LabPaths) -> dict[str, tuple[float, float]]:
    """CPU seconds of each lab process so far: (its own, its reaped children's)."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for pidfile in paths.pids.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            fields = Path(f"/proc/{int(pidfile.read_text())}/stat").read_text() \
                .rsplit(")", 1)[1].split()
            utime, stime, cutime, cstime = (int(x) / tick for x in fields[11:15])
            cpu[pidfile.stem] = (utime + stime, cutime + cstime)
    return cpu


@dataclass
class UpRun:
    paths: LabPaths
    manifest: Path
    wall: float
    up_cpu: float  # the `podnet lab up` process itself
    lines: list[tuple[float, str, str]]
    cpu: dict[str, tuple[float, float]]  # per lab process: (own, reaped children)


AGENT_READY = re.compile(r"INFO: node \S+: subnet")
POD_STARTED = re.compile(r"INFO: pod \S+ on \S+: ")
AGENT_ADD = re.compile(r"INFO: ADD \S+: ok in ([0-9.]+) ms \(cpu ([0-9.]+) ms")
TABLE_APPLIED = "policy: table applied"


def bringup_docs(name: str, nodes: int, pods: int, backend: str) -> list[dict[str, object]]:
    """A Lab, namespaces, and Deployments of 50 pods spread over them; one port per pod."""
    docs: list[dict[str, object]] = [{
        "apiVersion": "podnet.dev/v1alpha1", "kind": "Lab", "metadata": {"name": name},
        "spec": {"nodes": nodes, "backend": backend}}]
    docs += [{"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": f"team-{i}", "labels": {"team": str(i)}}}
             for i in range(NAMESPACES)]
    for i, start in enumerate(range(0, pods, PODS_PER_DEPLOYMENT)):
        app = f"app-{i}"
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app, "namespace": f"team-{i % NAMESPACES}"},
            "spec": {"replicas": min(PODS_PER_DEPLOYMENT, pods - start),
                     "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}},
                                  "spec": {"containers": [{"name": "web", "image": "web",
                                                           "ports": [{"containerPort": 8080}]}]}}}})
    return docs


def report_bringup(run: UpRun, nodes: int, pods: int) -> None:
    """The wall clock against the goal, the timeline, the agents' ADDs and the CPU."""
    def stamps(pattern: re.Pattern[str], log: str | None = None) -> list[float]:
        return [t for t, name, line in run.lines
                if (log is None or name == log) and pattern.search(line)]

    agents_ready = stamps(AGENT_READY)
    started = stamps(POD_STARTED, "kubelet")
    adds = [(float(w), float(c)) for _, name, line in run.lines if name.startswith("agent-")
            for w, c in AGENT_ADD.findall(line)]
    tables = sum(TABLE_APPLIED in line for _, _, line in run.lines)
    verdict = "met" if run.wall <= GOAL_UP_SECONDS else "MISSED"
    print(f"\n`podnet lab up`, {nodes} nodes x {pods // nodes} pods ({pods} pods): "
          f"{run.wall:.1f} s wall clock (goal <= {GOAL_UP_SECONDS:.0f} s: {verdict})\n")
    print("| phase (seconds since `lab up` started, from the logs) | s |")
    print("|---|---:|")
    if len(agents_ready) == nodes:
        print(f"| every agent serving (namespaces, store, agents) | {max(agents_ready):.1f} |")
    if started:
        print(f"| first pod running | {started[0]:.1f} |")
        for share in (0.25, 0.5, 0.75):
            print(f"| {share:.0%} of the pods running | "
                  f"{started[min(len(started) - 1, int(len(started) * share))]:.1f} |")
        print(f"| last pod running | {started[-1]:.1f} |")
        span = started[-1] - started[0]
        print(f"| `lab up` returned | {run.wall:.1f} |\n")
        print(f"Pods: {len(started)} started in {span:.1f} s, {len(started) / max(span, 1e-9):.1f}"
              f" pods/s ({1000 * span / max(len(started), 1):.0f} ms apart on average).")
    if adds:
        walls, cpus = [w for w, _ in adds], [c for _, c in adds]
        print(f"Agents: {len(adds)} ADDs; agent-side wall per ADD p50 "
              f"{statistics.median(walls):.0f} ms, p95 {_p95(walls):.0f} ms, "
              f"max {max(walls):.0f} ms; CPU per ADD p50 "
              f"{statistics.median(cpus):.1f} ms, {sum(cpus) / 1000:.1f} s in all; "
              f"{tables} nftables tables applied (ADDs and reconciliations).")
    print("\n| process | CPU s (own) | CPU s (its children) |")
    print("|---|---:|---:|")
    print(f"| `podnet lab up` | {run.up_cpu:.1f} | |")
    agents = [v for k, v in run.cpu.items() if k.startswith("agent-")]
    if agents:
        in_adds = sum(c for _, c in adds) / 1000
        print(f"| {len(agents)} agents | {sum(a for a, _ in agents):.1f} | |")
        print(f"| — serving ADD requests (their logs) | {in_adds:.1f} | |")
        print(f"| — everything else (policy and overlay reconciliation, polling, start-up) | "
              f"{sum(a for a, _ in agents) - in_adds:.1f} | |")
    if "kubelet" in run.cpu:
        own, children = run.cpu["kubelet"]
        print(f"| kubelet (children: nsenter + podnet-cni) | {own:.1f} | {children:.1f} |")
    total = run.up_cpu + sum(a + c for a, c in run.cpu.values())
    print(f"| all | {total:.1f} | |\n")
    cores = os.cpu_count() or 1
    print(f"CPU in all: {total:.1f} s in {run.wall:.1f} s of wall clock = "
          f"{total / run.wall:.2f} cores busy of {cores}. Even on idle cores, all busy, "
          f"this work takes at least {total / cores:.0f} s (CPU / {cores}).")


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


# -- throughput ------------------------------------------------------------------------------

def throughput_docs(name: str, backend: str) -> list[dict[str, object]]:
    """Two nodes; a and b on node-1, c on node-2."""
    docs: list[dict[str, object]] = [{
        "apiVersion": "podnet.dev/v1alpha1", "kind": "Lab", "metadata": {"name": name},
        "spec": {"nodes": 2, "backend": backend}}]
    for pod, node in (("a", "node-1"), ("b", "node-1"), ("c", "node-2")):
        docs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": pod, "namespace": "default"},
                     "spec": {"nodeName": node, "containers": [
                         {"name": "c", "image": "iperf3", "ports": [{"containerPort": 80}]}]}})
    return docs


def iperf(src_netns: str, dst_netns: str, dst_ip: str, seconds: float) -> float:
    """Gbit/s received by an iperf3 server in `dst_netns` from a client in `src_netns`."""
    server = subprocess.Popen(["nsenter", f"--net={dst_netns}", "iperf3", "-s", "-1", "-p",
                               str(IPERF_PORT)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        _wait_listening(server)
        done = subprocess.run(["nsenter", f"--net={src_netns}", "iperf3", "-c", dst_ip, "-p",
                               str(IPERF_PORT), "-t", str(seconds), "-J"], capture_output=True,
                              text=True, timeout=seconds + 30, check=False)
        try:
            result = json.loads(done.stdout)
            return float(result["end"]["sum_received"]["bits_per_second"]) / 1e9
        except (ValueError, KeyError) as err:
            raise BenchError(f"iperf3 to {dst_ip} from {src_netns}: "
                             f"{done.stdout[-500:]} {done.stderr}") from err
    finally:
        stop(server)


def _wait_listening(server: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Until the server (nsenter exec'd into iperf3) listens: its namespace's /proc tables."""
    deadline = time.monotonic() + timeout
    port = f":{IPERF_PORT:04X} "
    while time.monotonic() < deadline:
        if server.poll() is not None:
            assert server.stderr is not None
            raise BenchError(f"iperf3 server exited: {server.stderr.read().decode()}")
        with contextlib.suppress(OSError):
            if Path(f"/proc/{server.pid}/comm").read_text().strip() == "iperf3" and any(
                    port in line and line.split()[3] == "0A"  # TCP_LISTEN
                    for table in ("tcp", "tcp6")
                    for line in Path(f"/proc/{server.pid}/net/{table}").read_text().splitlines()):
                return
        time.sleep(0.02)
    raise BenchError("the iperf3 server did not listen within 10 s")


def measure_throughput(paths: LabPaths, rounds: int, seconds: float) -> dict[str, list[float]]:
    """Gbit/s per path and round; paths alternate within each round."""
    pods = {p.key: p for p in running_pods(paths)}
    a, b, c = pods["default/a"], pods["default/b"], pods["default/c"]
    node1, node2 = (paths.netns_path(paths.node(n)) for n in ("node-1", "node-2"))
    node2_ip = "192.0.2.11"
    paths_to_measure = {
        "pod to pod, same node": (a.netns, b.netns, str(b.ip)),
        "pod to pod, across nodes": (a.netns, c.netns, str(c.ip)),
        UNDERLAY: (node1, node2, node2_ip),
    }
    figures: dict[str, list[float]] = {what: [] for what in paths_to_measure}
    for _ in range(rounds):
        for what, (src, dst, ip) in paths_to_measure.items():
            figures[what].append(iperf(src, dst, ip, seconds))
    return figures


def report_throughput(results: dict[str, dict[str, list[float]]], rounds: int,
                      seconds: float) -> None:
    """Gbit/s, and each run against the underlay run of its own round (the nearest in time,
    so under the same load): the median of those ratios, and their range."""
    print(f"\niperf3 TCP, one stream, {seconds:g} s per run, {rounds} rounds; Gbit/s: best "
          "(median); vs underlay: median of the per-round ratios (min-max)\n")
    print("| backend | path | Gbit/s | vs underlay |")
    print("|---|---|---:|---:|")
    for backend, figures in results.items():
        underlay = figures[UNDERLAY]
        for what, values in figures.items():
            ratios = [v / u for v, u in zip(values, underlay, strict=True)]
            print(f"| {backend} | {what} | {max(values):.2f} ({statistics.median(values):.2f}) | "
                  f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")


def podnet_source() -> str:
    """The commit the lab's processes run, and whether its src/ has uncommitted changes: they
    run too (in a shared tree, someone's work in progress)."""
    src = Path(podnet.__file__).parents[1]
    git = ["git", "-C", str(src)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True,
                           text=True, check=False).stdout.strip()
    return f"podnet: {src} at {commit}" + (" + uncommitted changes" if dirty else "")


# -- main ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=10, help="bring-up: nodes (10)")
    parser.add_argument("--pods", type=int, default=500, help="bring-up: pods in all (500)")
    parser.add_argument("--backend", choices=("vxlan", "host-gw"), default="vxlan",
                        help="bring-up: backend (vxlan)")
    parser.add_argument("--timeout", type=float, default=600.0, help="`lab up --timeout` (600)")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: rounds (3)")
    parser.add_argument("--seconds", type=float, default=3.0, help="throughput: iperf3 -t (3)")
    parser.add_argument("--no-bringup", dest="bringup", action="store_false")
    parser.add_argument("--no-throughput", dest="throughput", action="store_false")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/lab.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM unwind through every `finally` (also when started in the background,
    # where SIGINT comes ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print("\n".join(machine()))
    print(podnet_source())
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    sweep()
    prefix = f"bl{os.getpid()}"
    if args.bringup:
        docs = bringup_docs(f"{prefix}up", args.nodes, args.pods, args.backend)
        with lab_up(f"{prefix}up", docs, args.timeout) as run:
            report_bringup(run, args.nodes, args.pods)
            down = lab_down(run.paths.name)
        print(f"`podnet lab down`: {down:.1f} s. Manifest: {run.manifest}")
    if args.throughput:
        results = {}
        for backend, tag in (("vxlan", "vx"), ("host-gw", "hg")):
            with lab_up(f"{prefix}{tag}", throughput_docs(f"{prefix}{tag}", backend),
                        args.timeout) as run:
                results[backend] = measure_throughput(run.paths, args.rounds, args.seconds)
        report_throughput(results, args.rounds, args.seconds)
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}; "
          f"this script's CPU: {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.1f} s user")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"bench/lab.py: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench/lab.py: interrupted; every lab it made is removed", file=sys.stderr)
        sys.exit(130)
