"""The report as one HTML page that needs nothing but itself: inline CSS, no script, and a
Content-Security-Policy that forbids the browser to load anything (images only as `data:`).

Every text from the cluster (names, labels, descriptions) goes through `html.escape`, so a
pod called `<script>` is shown, never run. Grids are tables: one row and one column per pod
(or group of alike pods), numbered columns whose numbers are the rows', a coloured cell per
pair, with its verdict in words in the cell's title on small grids, and on any grid where
the kernel, probed, did otherwise than the engine.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from html import escape

from podnet.model.nodelease import Readiness
from podnet.report.page import (
    UNSEEN,
    DeniedFlow,
    Grid,
    NodeRow,
    PodRow,
    PolicyRow,
    Report,
    Seen,
)

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
TITLED_GRID = 60  # grids up to this size carry a title (tooltip) per cell
FOLDED_PODS = 100  # longer lists of pods start folded
ALLOWED, DENIED, LOOPBACK, MISMATCH = "#2e9e4f", "#d9463b", "#c4c9ce", "#f2a900"

STYLE = f"""
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d232a; background: #fff; }}
h1 {{ margin: 0 0 4px; font-size: 24px; }}
h2 {{ margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #dde1e5; }}
h3 {{ margin: 20px 0 6px; font-size: 16px; }}
nav a {{ margin-right: 14px; color: #1b5fa8; }}
.meta {{ color: #59636e; margin: 0 0 12px; }}
table.list {{ border-collapse: collapse; margin: 6px 0; }}
table.list th, table.list td {{ border-bottom: 1px solid #e3e6e9; padding: 3px 10px 3px 0;
  text-align: left; vertical-align: top; }}
table.list th {{ color: #59636e; font-weight: 600; }}
code {{ font: 12px ui-monospace, monospace; background: #f1f3f5; padding: 0 3px; }}
table.grid {{ border-collapse: collapse; font: 11px ui-monospace, monospace; }}
table.grid td {{ width: 16px; height: 16px; padding: 0; border: 1px solid #fff; }}
table.grid th {{ font-weight: normal; color: #3b444d; padding: 0 3px; white-space: nowrap; }}
table.grid thead th {{ text-align: center; min-width: 16px; }}
table.grid tbody th {{ text-align: right; }}
table.grid tbody tr:hover th {{ background: #fff3b0; font-weight: bold; }}
td.a {{ background: {ALLOWED}; }}
td.d {{ background: {DENIED}; }}
td.l {{ background: {LOOPBACK}; }}
td.ma, td.md {{ background: {MISMATCH}; outline: 2px solid #1d232a; text-align: center; }}
td.ma::after, td.md::after {{ content: "!"; font-weight: bold; }}
.key span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px;
  vertical-align: middle; }}
.note {{ background: #fff7e0; border-left: 4px solid {MISMATCH}; padding: 4px 10px; }}
article {{ border: 1px solid #dde1e5; border-radius: 6px; padding: 4px 14px 10px;
  margin: 10px 0; }}
img.graph {{ max-width: 100%; border: 1px solid #dde1e5; }}
"""


def render_html(report: Report) -> str:
    mismatches = sum(g.observed_total.differ for g in report.grids)
    not_ready = sum(n.readiness is not None and not n.readiness.ready for n in report.nodes)
    summary = [_count(len(report.nodes), "node") + (f" ({not_ready} NotReady)" if not_ready
                                                    else ""),
               _count(len(report.pods), "pod"),
               _count(len(report.policies), "network policy", "network policies"),
               f"probes: {', '.join(g.probe for g in report.grids) or 'none'}"]
    if any(g.observed is not None for g in report.grids):
        summary.append(_count(mismatches, "verdict") + " where the kernel and the engine differ")
    if report.flows is not None:
        summary.append(_count(len(report.flows), "recent denied flow"))
    sections = [("nodes", "Nodes", _nodes(report.nodes)),
                ("pods", "Pods", _pods(report.pods)),
                ("reachability", "Reachability", _grids(report.grids)),
                ("policies", "Network policies", _policies(report.policies))]
    if report.flows is not None:
        sections.append(("flows", "Recent denied flows", _flows(report.flows)))
    if report.graph_svg is not None:
        sections.append(("graph", "Connectivity graph", _graph(report.graph_svg)))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{escape(report.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<header><h1>{escape(report.title)}</h1>",
        f'<p class="meta">{escape(report.source)} &middot; {escape(report.generated)}</p>',
        f'<p class="meta" id="summary">{escape("; ".join(summary))}</p>',
        "<nav>" + "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title, _ in sections)
        + "</nav></header>",
        *(f'<section id="{anchor}"><h2>{title}</h2>\n{body}</section>'
          for anchor, title, body in sections),
        "</body></html>", ""])


def _count(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = ["<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
            for row in rows]
    if not body:
        return f"<p>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f'<table class="list"><thead><tr>{head}</tr></thead><tbody>\n' + \
        "\n".join(body) + "\n</tbody></table>"


def _nodes(nodes: Sequence[NodeRow]) -> str:
    """With the nodes' readiness when it is known (a lab's leases), without it from manifests:
    no column rather than a state nothing showed."""
    empty = "No nodes are named (no Node objects, no pod's nodeName)."
    rows = [(n.name, ", ".join(n.addresses), ", ".join(n.pod_cidrs), str(n.pods))
            for n in nodes]
    if all(n.readiness is None for n in nodes):
        return _table(("node", "addresses", "pod CIDRs", "pods"), rows, empty)
    return _table(("node", "status", "lease renewed", "addresses", "pod CIDRs", "pods"),
                  [(row[0], *_readiness(n.readiness), *row[1:])
                   for n, row in zip(nodes, rows, strict=True)], empty)


def _readiness(readiness: Readiness | None) -> tuple[str, str]:
    """Ready or NotReady (as `podnet get nodes`), and how long before the report the node's
    agent last renewed its lease."""
    if readiness is None:
        return "-", "-"
    if readiness.since_renewal is None:
        return readiness.status, "no lease"
    return readiness.status, f"{max(0, int(readiness.since_renewal))} s ago"


def _pods(pods: Sequence[PodRow]) -> str:
    """A long list starts folded (`<details>`: no script needed to unfold it)."""
    table = _table(("pod", "node", "IPs", "labels"),
                   [(p.key + (" (host network)" if p.host_network else ""), p.node,
                     ", ".join(p.ips), p.labels) for p in pods], "No pods.")
    state = " open" if len(pods) <= FOLDED_PODS else ""
    return f"<details{state}><summary>{_count(len(pods), 'pod')}</summary>\n{table}</details>"


def _grids(grids: Sequence[Grid]) -> str:
    key = ('<p class="key">Rows are sources, columns destinations (column <i>n</i> is row '
           f'<i>n</i>):<span style="background:{ALLOWED}"></span>allowed'
           f'<span style="background:{DENIED}"></span>denied'
           f'<span style="background:{LOOPBACK}"></span>a pod to itself (loopback)')
    if any(g.observed is not None for g in grids):
        key += (f'<span style="background:{MISMATCH}"></span>the kernel disagrees with the '
                "engine (!)")
    return key + "</p>\n" + "\n".join(_grid(g) for g in grids)


def _grid(grid: Grid) -> str:
    size = len(grid.axis)
    out = [f'<h3 id="probe-{escape(grid.probe.replace("/", "-"))}">{escape(grid.probe)}</h3>']
    if grid.grouped:
        out.append("<p>More pods than fit a grid: each row is a group of pods that every "
                   "policy treats alike, so one cell stands for every pair of its two groups."
                   "</p>")
    if grid.observed is not None:
        total = grid.observed_total
        out.append(f"<p>Observed in the kernel: {total.differ} of {total.pairs} verdicts "
                   "differ from the engine's.</p>")
    if grid.left_out:
        out.append(f'<p class="note">{grid.left_out} more rows and columns are not shown.</p>')
    head = "".join(f'<th title="{escape(m.label)}">{j + 1}</th>'
                   for j, m in enumerate(grid.axis))
    rows = []
    for i, member in enumerate(grid.axis):
        cells = "".join(_cell(grid, i, j, size <= TITLED_GRID) for j in range(size))
        rows.append(f"<tr><th>{escape(member.label)} {i + 1}</th>{cells}</tr>")
    out.append(f'<table class="grid" data-probe="{escape(grid.probe)}"><thead><tr><th></th>'
               f"{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>")
    return "\n".join(out)


def _cell(grid: Grid, i: int, j: int, titled: bool) -> str:
    """A mismatch always has its title (there are few); other cells on small grids only."""
    allowed = grid.allowed[i][j]
    seen = grid.observed[i][j] if grid.observed is not None else UNSEEN
    if grid.is_loopback(i, j):
        css, words = "l", "itself (loopback)"
    elif seen.differ:
        css = "ma" if seen.let_through else "md"
        words = _disagreement(allowed, seen, grid.grouped)
    else:
        css, words = ("a", "allowed") if allowed else ("d", "denied")
        if grid.grouped and seen.pairs:
            words += f"; the kernel agreed on {_count(seen.pairs, 'pod pair')} observed"
    if not titled and not seen.differ:
        return f'<td class="{css}"></td>'
    title = f"{grid.axis[i].label} -> {grid.axis[j].label}: {words}"
    return f'<td class="{css}" title="{escape(title)}"></td>'


def _disagreement(allowed: bool, seen: Seen, grouped: bool) -> str:
    engine = f"engine: {'allowed' if allowed else 'denied'}; kernel: "
    if not grouped:  # one pod pair
        return engine + ("let it through" if seen.let_through else "dropped it")
    done = [what for n, what in ((seen.let_through, f"let {seen.let_through} through"),
                                 (seen.dropped, f"dropped {seen.dropped}")) if n]
    return engine + f"of {_count(seen.pairs, 'observed pod pair')}, {' and '.join(done)}"


def _policies(policies: Sequence[PolicyRow]) -> str:
    if not policies:
        return "<p>No network policies: every pod may reach every pod.</p>"
    return "\n".join(_policy(p) for p in policies)


def _policy(p: PolicyRow) -> str:
    facts = _table(("", ""), [
        ("policy types", ", ".join(p.policy_types)),
        ("pod selector", p.pod_selector),
        ("selects", f"{_count(p.selected, 'pod')}: {p.selects}" if p.selected else p.selects),
        ("rules", p.rules),
        ("admits", _count(p.pairs, "connection") + " (pod pair and probe) allowed end to end "
                   "by its rules")], "")
    admissions = _table(("rule", "probe", "from", "to", "pod pairs"),
                        [(a.rule, a.probe, a.sources, a.destinations, str(a.pairs))
                         for a in p.admissions],
                        "Its rules admit no connection for these probes.")
    more = (f'<p class="note">{p.left_out} more admissions are not listed.</p>'
            if p.left_out else "")
    return f'<article><h3>{escape(p.key)}</h3>\n{facts}\n{admissions}\n{more}</article>'


def _flows(flows: Sequence[DeniedFlow]) -> str:
    return _table(("time", "node", "source", "destination", "protocol", "denied by"),
                  [(f.time, f.node, f.source, f.destination, f.protocol, f.reason)
                   for f in flows], "No denied flows were logged.")


def _graph(svg: str) -> str:
    """The graph as a `data:` image: the browser shows it and runs nothing in it."""
    data = base64.b64encode(svg.encode()).decode()
    return ('<p>Who may talk to whom (namespaces as boxes, ports on the arrows), drawn by '
            f'graphviz.</p><img class="graph" alt="connectivity graph" '
            f'src="data:image/svg+xml;base64,{data}">')
