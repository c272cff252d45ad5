"""Benchmark: `podnet policy connectivity` against network-config-analyzer (NCA).

Both tools run as whole processes on the same generated manifests, so the times include
start-up and YAML parsing: what a user waits for. Each time is the best of a few runs (a
run over 30 s counts once). Each run is checked to have produced a connectivity report,
never an error that would make it look fast. On the smallest cluster the two reports are
also compared (see crosscheck.py).

NCA lives in its own venv, bench/.venv-nca, made here when missing. It is called the way its
README says for files: `nca --connectivity POLICIES --pod_list PODS --ns_list NAMESPACES`.

    .venv/bin/python bench/analyzer.py                 # the whole benchmark
    .venv/bin/python bench/analyzer.py --sizes 200:40  # one size; --no-nca for podnet only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crosscheck
import generate
import yaml

ROOT = Path(__file__).resolve().parents[1]
NCA_VENV = ROOT / "bench" / ".venv-nca"
PODNET = ROOT / ".venv" / "bin" / "podnet"
SIZES = ((200, 40), (1000, 200))
LARGE = (5000, 1000)
GOAL_RATIO = 50.0
GOAL_LARGE_SECONDS = 10.0
ONCE_OVER_SECONDS = 30.0
PROBES = sorted({(proto, port) for ports in generate.TIER_PORTS.values()
                 for _, port, proto in ports}
                | {("TCP", 53), ("UDP", 53), ("TCP", 443), ("TCP", 22), ("TCP", 5005),
                   ("TCP", 5100), ("TCP", 6050), ("TCP", 8005), ("TCP", 8200), ("TCP", 9400)})


class BenchError(RuntimeError):
    """A tool failed or produced no connectivity report."""


def ensure_nca() -> Path:
    """The `nca` executable, installing it into its own venv the first time."""
    nca = NCA_VENV / "bin" / "nca"
    if not nca.exists():
        print(f"installing network-config-analyzer into {NCA_VENV} ...", file=sys.stderr)
        subprocess.run(["python3", "-m", "venv", str(NCA_VENV)], check=True)
        subprocess.run([str(NCA_VENV / "bin" / "pip"), "install", "-q",
                        "network-config-analyzer"], check=True)
    return nca


def cluster(out: Path, pods: int, policies: int, seed: int) -> Path:
    """The generated manifests for this size, written once per size and seed."""
    where = out / f"cluster-{pods}-{policies}-s{seed}"
    if not (where / "policies.yaml").exists():
        generate.write(generate.generate(pods, policies, seed), where)
    return where


def podnet_command(where: Path) -> list[str]:
    return [str(PODNET), "policy", "connectivity", "-f", str(where), "-o", "json"]


def nca_command(nca: Path, where: Path, *options: str) -> list[str]:
    return [str(nca), "--connectivity", str(where / "policies.yaml"),
            "--pod_list", str(where / "pods.yaml"), "--ns_list", str(where / "namespaces.yaml"),
            *options]


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU (user + system) seconds of a process; CPU time is what a busy,
    shared machine disturbs least."""

    wall: float
    cpu: float


def run(command: list[str], timeout: float) -> tuple[Timing, str]:
    """The timing and stdout of one run; BenchError if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"{Path(command[0]).name}: no answer within {timeout:.0f} s") from err
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr[-2000:]}")
    return Timing(wall, cpu), done.stdout


def check_podnet(stdout: str, pods: int) -> None:
    connections = json.loads(stdout)["connections"]
    named = {p for c in connections for end in ("from", "to") for p in c[end]["pods"]}
    if not connections or len(named) > pods:
        raise BenchError(f"podnet: {len(connections)} connections naming {len(named)} pods")


def check_nca(stdout: str, namespaces: int) -> None:
    """NCA says how many namespaces it read, then lists its rules or pairs."""
    found = re.search(r"cluster has (\d+) unique endpoints, (\d+) namespaces", stdout)
    if not found or int(found[2]) != namespaces or int(found[1]) == 0:
        raise BenchError(f"NCA did not read the cluster: {stdout[:500]!r}")
    if " => " not in stdout and "src_ns:" not in stdout:
        raise BenchError(f"NCA printed no connections: {stdout[:500]!r}")


def best_of(command: list[str], repeat: int, timeout: float,
            check: Callable[[str], None]) -> Timing:
    """The best wall and the best CPU time of `repeat` runs (one, if a run is long)."""
    timings = []
    for _ in range(repeat):
        timing, stdout = run(command, timeout)
        check(stdout)
        timings.append(timing)
        if timing.wall > ONCE_OVER_SECONDS:
            break
    return Timing(min(t.wall for t in timings), min(t.cpu for t in timings))


def cross_check(nca: Path, where: Path, timeout: float) -> crosscheck.Comparison:
    ours = run(podnet_command(where), timeout)[1]
    theirs = run(nca_command(nca, where, "-o", "txt_no_fw_rules", "--output_endpoints", "pods"),
                 timeout)[1]
    workloads = Counter(crosscheck.workload(f"{m['namespace']}/{m['name']}")
                        for m in (p["metadata"] for p in items(where, "pods")))
    return crosscheck.compare(crosscheck.podnet_verdicts(json.loads(ours), PROBES),
                              crosscheck.nca_verdicts(theirs, PROBES), dict(workloads), PROBES)


def items(where: Path, name: str) -> list[dict[str, Any]]:
    """The objects of one generated file."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    items: list[dict[str, Any]] = yaml.load((where / f"{name}.yaml").read_text(), loader)["items"]
    return items


def machine() -> list[str]:
    """The header of a result: the machine, how busy it is, and which podnet ran."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], check=False,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], check=False,
                           capture_output=True, text=True).stdout.strip()
    nca = subprocess.run([str(NCA_VENV / "bin" / "nca"), "--version"], check=False,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True).stdout.strip() if (
        NCA_VENV / "bin" / "nca").exists() else "not installed"
    return [f"- nproc: {os.cpu_count()}",
            f"- CPU: {model[1] if model else platform.processor()}",
            f"- kernel: {platform.release()}",
            f"- Python: {platform.python_version()}",
            f"- load average (1 min) at start: {os.getloadavg()[0]:.2f}",
            f"- podnet: {commit}{' with uncommitted changes in src/' if dirty else ''}",
            f"- network-config-analyzer: {nca}"]


def row(pods: int, policies: int, ours: Timing, theirs: Timing | None) -> str:
    if theirs is None:
        return f"| {pods:,} | {policies:,} | | {ours.wall:.3f} | | | {ours.cpu:.3f} | |"
    return (f"| {pods:,} | {policies:,} | {theirs.wall:.2f} | {ours.wall:.3f} | "
            f"{theirs.wall / ours.wall:.1f}x | {theirs.cpu:.2f} | {ours.cpu:.3f} | "
            f"{theirs.cpu / ours.cpu:.1f}x |")


def report_cross_check(nca: Path, where: Path, timeout: float) -> bool:
    """Print the cross-check; whether the tools agree."""
    result = cross_check(nca, where, timeout)
    wrong = len(result.disagreements)
    more = sum("podnet allows" in d for d in result.disagreements)
    print(f"\ncross-check on {where.name}: {result.pairs:,} endpoint pairs x {len(PROBES)} "
          f"probes = {result.checks:,} verdicts; {wrong:,} disagree "
          f"({more:,} allowed by podnet only, {wrong - more:,} by NCA only)")
    for line in result.disagreements[:20]:
        print(f"  {line}")
    return not wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", default=[f"{p}:{n}" for p, n in SIZES],
                        help="PODS:POLICIES compared with NCA (default: %(default)s)")
    parser.add_argument("--large", default=f"{LARGE[0]}:{LARGE[1]}",
                        help="PODS:POLICIES for podnet alone ('' to skip)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--no-nca", action="store_true", help="time podnet only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    nca = None if args.no_nca else ensure_nca()
    print("\n".join(machine()), end="\n\n")
    print("| pods | policies | NCA s | podnet s | NCA / podnet | NCA CPU s | podnet CPU s "
          "| CPU ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    sizes = [tuple(map(int, s.split(":"))) for s in args.sizes]
    ratios = []
    for pods, policies in sizes:
        where = cluster(args.out, pods, policies, args.seed)
        ours = best_of(podnet_command(where), args.repeat, args.timeout,
                       lambda out, n=pods: check_podnet(out, n))
        theirs = None
        if nca:
            namespaces = len(items(where, "namespaces"))
            theirs = best_of(nca_command(nca, where), args.repeat, args.timeout,
                             lambda out, n=namespaces: check_nca(out, n))
            ratios.append(theirs.wall / ours.wall)
        print(row(pods, policies, ours, theirs), flush=True)
    if args.large:
        pods, policies = map(int, args.large.split(":"))
        where = cluster(args.out, pods, policies, args.seed)
        ours = best_of(podnet_command(where), args.repeat, args.timeout,
                       lambda out, n=pods: check_podnet(out, n))
        print(row(pods, policies, ours, None))
        verdict = "met" if ours.wall <= GOAL_LARGE_SECONDS else "MISSED"
        print(f"\n{pods:,} pods / {policies:,} policies: {ours.wall:.2f} s wall, "
              f"{ours.cpu:.2f} s CPU (goal <= {GOAL_LARGE_SECONDS:.0f} s: {verdict})")
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    if ratios:
        verdict = "met" if min(ratios) >= GOAL_RATIO else "MISSED"
        print(f"podnet vs NCA: {min(ratios):.1f}x at worst (goal >= {GOAL_RATIO:.0f}x: {verdict})")
    if nca and sizes:
        smallest = cluster(args.out, *sizes[0], args.seed)
        return 0 if report_cross_check(nca, smallest, args.timeout) else 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"analyzer: {err}", file=sys.stderr)
        sys.exit(1)
