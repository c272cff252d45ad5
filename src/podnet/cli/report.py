"""`podnet policy report`, `podnet lab report` and `connectivity --svg`: the report's shell.

The page itself is pure (podnet.report); here the engine is fed from manifests or from a
running lab (its store, its nodes' flow logs, optionally its kernel through probes),
graphviz is run, and the page is written.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podnet.errors import PodnetError
from podnet.model import Node, load_cluster

if TYPE_CHECKING:
    from podnet.lab.state import LabPaths
    from podnet.policy import Engine, Probe
    from podnet.report import DeniedFlow, Liveness, Report

DOT_TIMEOUT = 120.0


def add_report_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="-", metavar="PATH",
                        help="the HTML file to write (default -: standard output)")
    parser.add_argument("--no-graph", dest="graph", action="store_false",
                        help="leave out the connectivity graph (drawn with graphviz if found)")


def dot_to_svg(dot: str) -> str:
    """graphviz's drawing of a dot graph, as SVG text."""
    if shutil.which("dot") is None:
        raise PodnetError("graphviz is not installed: no `dot` on PATH "
                          "(Debian: apt-get install graphviz)")
    done = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True,
                          check=False, timeout=DOT_TIMEOUT)
    if done.returncode != 0:
        raise PodnetError(f"dot -Tsvg failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _graph(engine: Engine, wanted: bool) -> str | None:
    from podnet.report import render_dot

    if not wanted or shutil.which("dot") is None:
        return None
    return dot_to_svg(render_dot(engine.connectivity().connections))


def _probes(args: argparse.Namespace) -> list[Probe]:
    from podnet.policy import Probe

    return Probe.each(args.port, args.protocol)


def _now() -> str:
    return "generated " + datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _write(report: Report, output: str) -> None:
    from podnet.report import render_html

    page = render_html(report)
    if output == "-":
        sys.stdout.write(page)
        return
    try:
        Path(output).write_text(page, encoding="utf-8")
    except OSError as err:
        raise PodnetError(f"{output}: cannot write the report: {err.strerror}") from err
    print(f"wrote {output} ({len(page.encode()) // 1024 + 1} KiB): open it in a browser")


def cmd_policy_report(args: argparse.Namespace) -> int:
    from podnet.policy import Engine
    from podnet.report import build_report

    engine = Engine(load_cluster(args.files))
    report = build_report(engine, _probes(args), title="podnet network report",
                          source="manifests: " + ", ".join(args.files), generated=_now(),
                          graph_svg=_graph(engine, args.graph))
    _write(report, args.output)
    return 0


def register_lab(verbs: Any, add_probes: Callable[[argparse.ArgumentParser], None]) -> None:
    """`podnet lab report`, with the probe options of `lab verify` (`add_probes(parser)`);
    its `-o PATH` replaces their `-o FORMAT` (hence the "resolve" conflict handler)."""
    report = verbs.add_parser("report", conflict_handler="resolve",
                              help="one HTML page: nodes, pods, reachability, policies, "
                              "recent denied flows")
    add_probes(report)
    add_report_output(report)
    report.add_argument("--observe", action="store_true",
                        help="also probe the kernel and mark where it differs from the engine")
    report.add_argument("--flows", type=int, default=50, metavar="N",
                        help="the newest N denied flows (default 50)")
    report.set_defaults(handler=cmd_lab_report)


def cmd_lab_report(args: argparse.Namespace) -> int:
    from podnet.lab.state import choose
    from podnet.report import build_report

    paths = choose(args.lab)
    engine, nodes, liveness = _lab_engine(paths)
    probes = _probes(args)
    observed = None
    if args.observe:
        from podnet.lab.verify import verify

        _, results = verify(paths, args.port, args.protocol, args.timeout)
        observed = {v.probe: v.to_json()["observed"] for v in results}
    report = build_report(engine, probes, title=f"podnet lab {paths.name}",
                          source=f"lab {paths.name} ({paths.store_url})", generated=_now(),
                          nodes=nodes, observed=observed,
                          flows=_denied_flows(paths, args.flows),
                          graph_svg=_graph(engine, args.graph), liveness=liveness)
    _write(report, args.output)
    return 0


def _lab_engine(paths: LabPaths) -> tuple[Engine, list[Node], Liveness]:
    """The engine on the cluster the lab's store describes (as `lab verify` reads it), the
    lab's nodes with their underlay address and pod subnet, and their node leases."""
    from podnet import ipam
    from podnet.agent.liveness import node_leases
    from podnet.lab.state import node_address
    from podnet.lab.verify import lab_cluster
    from podnet.policy import Engine
    from podnet.report import Liveness
    from podnet.store import open_store

    lab = paths.load()
    with open_store(paths.store_url) as store:
        cluster = lab_cluster(store)[0]
        leases = {lease.node: lease.subnet for lease in ipam.node_leases(store)}
        liveness = Liveness(node_leases(store), datetime.datetime.now(datetime.UTC))
    nodes = [
        Node(name, addresses=(ipaddress.ip_address(node_address(i)),),
             pod_cidrs=(leases[name],) if name in leases else ())
        for i, name in enumerate(lab.nodes)]
    return Engine(cluster), nodes, liveness


def _denied_flows(paths: LabPaths, last: int) -> Sequence[DeniedFlow]:
    from podnet.lab.flows import lab_flows
    from podnet.report import DeniedFlow

    out = []
    for f in lab_flows(paths, "denied", last=last):
        doc = f.to_json()
        reason = doc["rule"]
        if reason == "default deny":
            reason = f"default deny {doc['direction']} ({', '.join(doc['policies'])})"
        out.append(DeniedFlow(doc["time"], doc["node"], _end(doc["source"]),
                              _end(doc["destination"]), doc["protocol"], reason))
    return out[::-1]  # newest first


def _end(end: dict[str, object]) -> str:
    where = f"{end['pod']} ({end['ip']})" if end["pod"] else str(end["ip"])
    return f"{where}:{end['port']}" if end["port"] is not None else where
