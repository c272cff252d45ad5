"""`podnet policy matrix|explain|connectivity` and `podnet validate`: the engine on manifests.

The engine (and numpy) is imported by the handlers that use it, not when `podnet` starts:
every subcommand module is imported for each command, `podnet apply` included.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from podnet.cli.output import print_csv, print_json, print_marked, print_table
from podnet.model import Protocol, load_cluster

if TYPE_CHECKING:
    from podnet.lab.truthtable import TruthTable
    from podnet.policy import Connection, ProbeMatrix


def register(sub: Any) -> None:
    policy = sub.add_parser("policy", help="NetworkPolicy verdicts from manifests")
    verbs = policy.add_subparsers(dest="verb", metavar="VERB", required=True)

    matrix = verbs.add_parser("matrix", help="reachability of every pod pair for given probes")
    add_files(matrix)
    matrix.add_argument("--port", type=ports, default=[80], help="ports, e.g. 80,81 (default 80)")
    matrix.add_argument("--protocol", type=protocols, default=[Protocol.TCP],
                        help="TCP,UDP,SCTP (default TCP)")
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
    conn.add_argument("-o", "--output", choices=("table", "json", "csv", "dot"), default="table")
    conn.set_defaults(handler=cmd_connectivity)

    validate = sub.add_parser("validate", help="check manifests as the API server would")
    add_files(validate)
    validate.set_defaults(handler=cmd_validate)


def add_files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", dest="files", action="extend", nargs="+",
                        required=True, metavar="PATH",
                        help="manifest files or directories (YAML, JSON, lists, dumps); repeatable")


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
    probes = [Probe(p, proto) for p in args.port for proto in args.protocol]
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

    connections = Engine(load_cluster(args.files)).connectivity().connections
    rows = [(c.sources.description, c.destinations.description, str(c.ports))
            for c in connections]
    if args.output == "json":
        print_json({"connections": [
            {"from": c.sources.to_json(), "to": c.destinations.to_json(),
             "allowed": c.ports.to_json()} for c in connections]})
    elif args.output == "csv":
        print_csv(("from", "to", "allowed"), rows)
    elif args.output == "dot":
        sys.stdout.write(render_dot(connections))
    else:
        print_table(("from", "to", "allowed"), rows)
    return 0


def render_dot(connections: Sequence[Connection]) -> str:
    """A graphviz digraph: groups as nodes, namespaces as clusters, ports on the edges."""
    nodes: dict[str, str] = {}
    clusters: dict[str, list[str]] = {}
    for c in connections:
        for group in (c.sources, c.destinations):
            if group.description not in nodes:
                node = f"n{len(nodes)}"
                nodes[group.description] = node
                namespaces = {key.split("/")[0] for key in group.pods}
                home = namespaces.pop() if len(namespaces) == 1 and not group.ranges else ""
                clusters.setdefault(home, []).append(node)
    labels = {node: desc for desc, node in nodes.items()}
    out = ["digraph connectivity {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for i, (ns, members) in enumerate(sorted(clusters.items())):
        indent = "  "
        if ns:
            out += [f"  subgraph cluster_{i} {{", f"    label={_quote('namespace ' + ns)};"]
            indent = "    "
        out += [f"{indent}{n} [label={_quote(labels[n])}];" for n in members]
        if ns:
            out.append("  }")
    for c in connections:
        out.append(f"  {nodes[c.sources.description]} -> {nodes[c.destinations.description]} "
                   f"[label={_quote(str(c.ports))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cmd_validate(args: argparse.Namespace) -> int:
    cluster = load_cluster(args.files)
    print(f"valid: {len(cluster.namespaces)} namespaces, {len(cluster.pods)} pods, "
          f"{len(cluster.policies)} network policies, {len(cluster.nodes)} nodes")
    return 0
