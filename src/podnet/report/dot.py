"""Connectivity as a graphviz digraph: groups of endpoints as nodes, ports on the edges, and
each namespace a cluster (`subgraph "cluster_<ns>"`) holding the groups of its own pods.
Long lists of pods are cut (graphviz refuses strings over 16 KiB, and nobody reads them).
"""

from __future__ import annotations

from collections.abc import Sequence

from podnet.policy import Connection
from podnet.report.page import brief


def render_dot(connections: Sequence[Connection]) -> str:
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
    for ns, members in sorted(clusters.items()):
        indent = "  "
        if ns:
            out += [f"  subgraph {_quote('cluster_' + ns)} {{",
                    f"    label={_quote('namespace ' + ns)};"]
            indent = "    "
        out += [f"{indent}{n} [label={_quote(brief(labels[n]))}];" for n in members]
        if ns:
            out.append("  }")
    for c in connections:
        out.append(f"  {nodes[c.sources.description]} -> {nodes[c.destinations.description]} "
                   f"[label={_quote(str(c.ports))}];")
    out.append("}")
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
