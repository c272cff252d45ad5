"""`podnet policy matrix|explain|connectivity|report`, `podnet validate`: the engine on manifests.

The engine (and numpy) is imported by the handlers that use it, not when `podnet` starts:
every subcommand module is imported for each command, `podnet apply` included.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from podnet.cli.output import print_csv, print_json, print_marked, print_table
from podnet.cli.report import add_report_output, cmd_policy_report, dot_to_svg
from podnet.model import Protocol, load_cluster

if TYPE_CHECKING:
    from podnet.lab.truthtable import TruthTable
    from podnet.policy import ProbeMatrix


def register(sub: Any) -> None:
    policy = sub.add_parser("policy", help="NetworkPolicy verdicts from manifests")
    verbs = policy.add_subparsers(dest="verb", metavar="VERB", required=True)

    matrix = verbs.add_parser("matrix", help="reachability of every pod pair for given probes")
    add_files(matrix)
    add_probe_options(matrix)
    matrix.add_argument("-o", "--output", choices=("table", "json"), default="table")
    matrix.set_defaults(handler=cmd_matrix)

    explain = verbs.add_parser("explain", help="the verdict for one connection, with reasons")
    add_files(explain)
    explain.add_argument("--from", dest="src", required=True, metavar="NS/POD|IP")
    explain.add_argument("--to", dest="dst", required=True, metavar="NS/POD|IP")
    explain.add_argument("--port", type=port, default=80)
    explain.add_argument("--protocol", type=protocol, default=Protocol.TCP)
    explain.add_argument("-o", "--output", choices=("text", "json"), default="text")
    explain.set_defaults(handler=cmd_explain)

    conn = verbs.add_parser("connectivity", help="who may reach whom on which ports, grouped")
    add_files(conn)
    conn.add_argument("-o", "--output", choices=("table", "json", "csv", "dot", "svg"),
                      default="table", help="dot: graphviz source; svg: drawn by graphviz")
    conn.add_argument("--svg", dest="output", action="store_const", const="svg",
                      help="the same as -o svg")
    conn.set_defaults(handler=cmd_connectivity)

    report = verbs.add_parser("report", help="one self-contained HTML page: pods, "
                              "reachability per probe, what each policy selects and admits")
    add_files(report)
    add_probe_options(report)
    add_report_output(report)
    report.set_defaults(handler=cmd_policy_report)

    validate = sub.add_parser("validate", help="check manifests as the API server would")
    add_files(validate)
    validate.set_defaults(handler=cmd_validate)


def add_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", dest="files", action="extend", nargs="+",
                        required=True, metavar="PATH",
                        help="manifest files or directories (YAML, JSON, lists, dumps); repeatable")


def add_probe_options(parser: argparse.ArgumentParser, kinds: str = "TCP,UDP,SCTP") -> None:
    """`--port` and `--protocol`; `kinds`: the protocols the command can probe, for the help."""
    parser.add_argument("--port", type=ports, default=[80], help="ports, e.g. 80,81 (default 80)")
    parser.add_argument("--protocol", type=protocols, default=[Protocol.TCP],
                        help=f"{kinds} (default TCP)")


def port(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {number}")
    return number


def ports(text: str) -> list[int]:
    return [port(p) for p in text.split(",") if p.strip()]


def protocol(text: str) -> Protocol:
    try:
        return Protocol(text.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a protocol (TCP, UDP, SCTP): {text!r}") from None


def protocols(text: str) -> list[Protocol]:
    return [protocol(p) for p in text.split(",") if p.strip()]


def cmd_matrix(args: argparse.Namespace) -> int:
    from podnet.policy import Engine, Probe

    engine = Engine(load_cluster(args.files))
    probes = Probe.each(args.port, args.protocol)
    results = engine.matrix(probes)
    if args.output == "json":
        print_json(matrix_json(results))
        return 0
    for i, result in enumerate(results):
        if i:
            print()
        print(f"{result.probe}  (rows: from, columns: to; . allowed, X denied)")
        print_marked(truth_table(result).pretty())
    return 0


def matrix_json(results: Sequence[ProbeMatrix]) -> dict[str, Any]:
    return {
        "pods": list(results[0].pods) if results else [],
        "results": [{"port": r.probe.port, "protocol": str(r.probe.protocol),
                     "allowed": r.allowed, "ingress": r.ingress, "egress": r.egress}
                    for r in results],
    }


def truth_table(result: ProbeMatrix) -> TruthTable:
    from podnet.lab.truthtable import TruthTable

    table = TruthTable(result.pods)
    for src, row in result.allowed.items():
        for dst, allowed in row.items():
            table.set(src, dst, allowed)
    return table


def cmd_explain(args: argparse.Namespace) -> int:
    from podnet.policy import Engine

    engine = Engine(load_cluster(args.files))
    src, dst = engine.endpoint(args.src), engine.endpoint(args.dst)
    v = engine.verdict(src, dst, args.port, args.protocol)
    if args.output == "json":
        print_json(v.to_json())
        return 0
    word = "ALLOWED" if v.allowed else "DENIED"
    print(f"{_key(src)} -> {_key(dst)} {args.protocol}/{args.port}: {word}")
    print(f"  egress:  {v.egress.reason}")
    print(f"  ingress: {v.ingress.reason}")
    return 0


def _key(endpoint: object) -> str:
    return getattr(endpoint, "key", str(endpoint))


def cmd_connectivity(args: argparse.Namespace) -> int:
    from podnet.policy import Engine
    from podnet.report import render_dot

    connections = Engine(load_cluster(args.files)).connectivity().connections
    rows = [(c.sources.description, c.destinations.description, str(c.ports))
            for c in connections]
    if args.output == "json":
        print_json({"connections": [
            {"from": c.sources.to_json(), "to": c.destinations.to_json(),
             "allowed": c.ports.to_json()} for c in connections]})
    elif args.output == "csv":
        print_csv(("from", "to", "allowed"), rows)
    elif args.output in ("dot", "svg"):
        dot = render_dot(connections)
        sys.stdout.write(dot if args.output == "dot" else dot_to_svg(dot))
    else:
        print_table(("from", "to", "allowed"), rows)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.files)
    print(f"valid: {len(cluster.namespaces)} namespaces, {len(cluster.pods)} pods, "
          f"{len(cluster.policies)} network policies, {len(cluster.nodes)} nodes")
    return 0
