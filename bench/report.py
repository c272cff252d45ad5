"""Benchmark: `podnet policy report` and `podnet policy connectivity -o dot|--svg` against
network-config-analyzer's connectivity map in dot (`nca --connectivity ... -o dot`).

Whole processes on the same generated manifests (bench/generate.py), best of a few runs,
each run checked to have produced its output (a report page, a graph), as analyzer.py does
and with its helpers. NCA's graph outputs (dot, html, jpg) fail on these clusters as
generated: it prints `Error: 172.32.0.0-192.167.255.255` (an address range between
ipBlocks) and no graph. So both tools are compared on the same clusters without the policies
that have ipBlock peers (about a quarter of them); podnet is also timed alone on the full ones.

    .venv/bin/python bench/report.py                   # 200 and 1,000 pods
    .venv/bin/python bench/report.py --sizes 200:40    # one size
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import analyzer
import yaml
from analyzer import BenchError, Timing, best_of, ensure_nca, machine, nca_command, run

PODNET = str(analyzer.PODNET)
OUTPUTS: dict[str, tuple[list[str], Callable[[str], bool]]] = {
    "report": (["policy", "report", "-o", "-"],
               lambda out: '<table class="grid"' in out and out.rstrip().endswith("</html>")),
    "dot": (["policy", "connectivity", "-o", "dot"],
            lambda out: out.startswith("digraph connectivity") and 'subgraph "cluster_' in out),
    "svg": (["policy", "connectivity", "--svg"],
            lambda out: "<svg" in out and out.rstrip().endswith("</svg>")),
}


def without_ip_blocks(where: Path) -> Path:
    """The same cluster without the policies that have ipBlock peers (NCA cannot draw them)."""
    out = where.with_name(where.name + "-no-ipblocks")
    if not (out / "policies.yaml").exists():
        out.mkdir(parents=True, exist_ok=True)
        for name in ("namespaces", "pods"):
            (out / f"{name}.yaml").write_text((where / f"{name}.yaml").read_text())
        doc = yaml.safe_load((where / "policies.yaml").read_text())
        doc["items"] = [p for p in doc["items"] if not _has_ip_block(p)]
        (out / "policies.yaml").write_text(yaml.safe_dump(doc))
    return out


def _has_ip_block(policy: dict[str, Any]) -> bool:
    spec = policy["spec"]
    return any("ipBlock" in peer for direction in ("ingress", "egress")
               for rule in spec.get(direction) or [] for peer in
               (rule.get("from") or []) + (rule.get("to") or []))


def podnet_check(output: str) -> Callable[[str], None]:
    def check(stdout: str) -> None:
        if not OUTPUTS[output][1](stdout):
            raise BenchError(f"podnet {output}: unexpected output {stdout[:300]!r}")
    return check


def nca_check(namespaces: int) -> Callable[[str], None]:
    def check(stdout: str) -> None:
        found = re.search(r"cluster has (\d+) unique endpoints, (\d+) namespaces", stdout)
        if not found or int(found[2]) != namespaces or "digraph" not in stdout \
                or " -> " not in stdout:
            raise BenchError(f"NCA drew no graph: {stdout[:500]!r}")
    return check


def nca_error(nca: Path, where: Path, timeout: float) -> str:
    """What NCA prints when asked for a graph of a cluster with ipBlocks."""
    import subprocess

    done = subprocess.run(nca_command(nca, where, "-o", "dot"), capture_output=True,
                          text=True, timeout=timeout, check=False)
    errors = [line for line in (done.stdout + done.stderr).splitlines()
              if line.startswith("Error")]
    return errors[0] if errors else "no error"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", default=[f"{p}:{n}" for p, n in analyzer.SIZES],
                        help="PODS:POLICIES (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--out", type=Path, default=analyzer.ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    nca = ensure_nca()
    print("\n".join(machine()), end="\n\n")
    sizes = [tuple(map(int, s.split(":"))) for s in args.sizes]
    full = [analyzer.cluster(args.out, pods, policies, args.seed) for pods, policies in sizes]
    print(f"NCA -o dot on the generated clusters: {nca_error(nca, full[0], args.timeout)}\n")

    def podnet(output: str, where: Path) -> Timing:
        command = [PODNET, *OUTPUTS[output][0], "-f", str(where)]
        return best_of(command, args.repeat, args.timeout, podnet_check(output))

    print("Without ipBlock policies: NCA -o dot against each podnet output\n")
    print("| pods | policies | NCA dot s | podnet output | podnet s | NCA / podnet "
          "| NCA CPU s | podnet CPU s | CPU ratio |\n|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    worst: dict[str, float] = {}
    for (pods, _), where in zip(sizes, full, strict=True):
        trimmed = without_ip_blocks(where)
        policies = len(analyzer.items(trimmed, "policies"))
        namespaces = len(analyzer.items(trimmed, "namespaces"))
        theirs = best_of(nca_command(nca, trimmed, "-o", "dot"), args.repeat, args.timeout,
                         nca_check(namespaces))
        for output in OUTPUTS:
            ours = podnet(output, trimmed)
            ratio = theirs.wall / ours.wall
            worst[output] = min(ratio, worst.get(output, ratio))
            print(f"| {pods:,} | {policies:,} | {theirs.wall:.2f} | {output} | {ours.wall:.3f} "
                  f"| {ratio:.1f}x | {theirs.cpu:.2f} | {ours.cpu:.3f} "
                  f"| {theirs.cpu / ours.cpu:.1f}x |", flush=True)
    print("\npodnet alone, on the clusters as generated (with ipBlocks)\n")
    print("| pods | policies | podnet output | podnet s | podnet CPU s | page KiB |\n"
          "|---:|---:|---|---:|---:|---:|")
    for (pods, policies), where in zip(sizes, full, strict=True):
        for output in OUTPUTS:
            ours = podnet(output, where)
            size = len(run([PODNET, *OUTPUTS[output][0], "-f", str(where)],
                           args.timeout)[1].encode()) // 1024
            print(f"| {pods:,} | {policies:,} | {output} | {ours.wall:.3f} | {ours.cpu:.3f} "
                  f"| {size:,} |", flush=True)
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")
    print("worst NCA / podnet: " + ", ".join(f"{o} {r:.1f}x" for o, r in worst.items()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"report: {err}", file=sys.stderr)
        sys.exit(1)
