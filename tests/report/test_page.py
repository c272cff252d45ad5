"""The report page says what the engine says: every pod, every policy, one coloured cell per
pair whose colour is the engine's verdict, and for each policy the connections its rules
admit; and it is inert: names are escaped, nothing outside the page is referenced."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from html import escape

import pytest
import test_upstream_e2e as upstream
from page_reader import PageReader, external_references

from podnet.lab import Model, Reachability
from podnet.model import Cluster, Namespace, Node, Pod, Protocol
from podnet.model.nodelease import NodeLease
from podnet.policy import Engine, Probe
from podnet.report import DeniedFlow, Grid, Liveness, Report, build_report, render_html
from podnet.report.build import POD_GRID_LIMIT
from podnet.report.html import TITLED_GRID
from podnet.report.page import UNSEEN, Member, Seen

CASES = {c.name: c for c in upstream.CASES}


def final_state(case: upstream.Case) -> tuple[Cluster, Probe]:
    """The cluster and probe of a case's last validation (judged by the engine, as upstream)."""
    seen: list[tuple[Cluster, Probe]] = []

    def judge(cluster: Cluster, r: Reachability, port: int, protocol: Protocol) -> None:
        upstream.observe_engine_matrix(cluster, r, port, protocol)
        seen.append((cluster, Probe(port, protocol)))

    case.play(upstream.Scenario(judge))
    return seen[-1]


def report_of(engine: Engine, probes: Sequence[Probe], **extra: object) -> Report:
    return build_report(engine, probes, title="test", source="test", generated="now",
                        **extra)  # type: ignore[arg-type]


def admitted_by_verdicts(engine: Engine, probes: Sequence[Probe]) -> dict[str, int]:
    """policy -> (pod pair, probe) connections allowed whose verdict names one of its rules."""
    counts = {p.key: 0 for p in engine.cluster.policies}
    pods = engine.cluster.pods
    for probe in probes:
        for src in pods:
            for dst in pods:
                v = engine.verdict(src, dst, probe.port, probe.protocol)
                if src != dst and v.allowed:
                    for policy in {r.policy for r in (*v.egress.allowed_by,
                                                      *v.ingress.allowed_by)}:
                        counts[policy] += 1
    return counts


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_page_of_an_upstream_case_shows_the_engines_verdicts(name: str) -> None:
    cluster, probe = final_state(CASES[name])
    engine = Engine(cluster)
    probes = list(dict.fromkeys([probe, Probe(81, Protocol.UDP), Probe(80)]))
    report = report_of(engine, probes)
    page = PageReader(render_html(report))

    keys = [p.key for p in cluster.pods]
    for p in probes:
        (matrix,) = engine.matrix([p])
        assert page.row_labels[str(p)] == keys
        rows = page.grids[str(p)]
        assert [len(r) for r in rows] == [len(keys)] * len(keys)
        for i, src in enumerate(keys):
            for j, dst in enumerate(keys):
                wanted = "l" if i == j else "a" if matrix.allowed[src][dst] else "d"
                assert rows[i][j] == wanted, (p, src, dst)
    text = page.all_text
    assert all(key in text for key in keys)
    assert [r.key for r in report.policies] == [p.key for p in cluster.policies]
    counts = admitted_by_verdicts(engine, probes)
    for row in report.policies:
        assert row.pairs == counts[row.key], row.key
        assert row.key in text
        assert f"{row.pairs} connection{'' if row.pairs == 1 else 's'} (pod pair" in text


def test_a_policy_lists_the_connections_its_rules_admit() -> None:
    """x/a may be reached from namespace y on TCP/80 only: y/b-to-x-a admits y/* -> x/a."""
    model = Model.from_pod_strings("x/a", "x/b", "y/a", "y/b", ports=(80,),
                                   protocols=(Protocol.TCP,))
    policy = upstream.gen_policy_match_label(
        "y-to-x-a", {"pod": "a"},
        upstream.ingress_rules(upstream.rule(upstream.peer(namespaces=upstream.ns_named("y")),
                                             ports=[upstream.port(80)])))
    policy["metadata"]["namespace"] = "x"
    engine = Engine(model.cluster([policy]))
    (row,) = report_of(engine, [Probe(80), Probe(81)]).policies
    assert (row.selects, row.selected, row.rules) == ("x/a", 1, "1 ingress")
    assert [(a.rule, a.probe, a.sources, a.destinations, a.pairs) for a in row.admissions] == [
        ("ingress[0]", "TCP/80", "y/*", "x/a", 2)]
    assert row.pairs == 2


def test_each_node_is_ready_as_its_lease_says_and_from_manifests_there_is_no_status() -> None:
    """node-1 renewed 3 s ago, node-2 45 s ago (past its 10 s), node-3 has no lease, and
    node-4, which only a pod names, neither."""
    now = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)

    def lease(node: str, seconds_ago: float) -> NodeLease:
        renewed = now - datetime.timedelta(seconds=seconds_ago)
        return NodeLease(node, 10, renewed - datetime.timedelta(minutes=5), renewed)

    cluster = Cluster(nodes=tuple(Node(f"node-{i}") for i in (1, 2, 3)),
                      pods=(Pod("x", "a", node_name="node-4"),))
    liveness = Liveness({"node-1": lease("node-1", 3.4), "node-2": lease("node-2", 45)}, now)
    page = PageReader(render_html(report_of(Engine(cluster), [Probe(80)], liveness=liveness)))
    assert [row[:3] for row in page.lists[:4]] == [
        ["node-1", "Ready", "3 s ago"], ["node-2", "NotReady", "45 s ago"],
        ["node-3", "NotReady", "no lease"], ["node-4", "NotReady", "no lease"]]
    assert "4 nodes (3 NotReady)" in page.all_text

    from_manifests = PageReader(render_html(report_of(Engine(cluster), [Probe(80)])))
    assert [row[0] for row in from_manifests.lists[:4]] == [f"node-{i}" for i in range(1, 5)]
    assert not {"Ready", "NotReady", "no lease"} & {
        cell for row in from_manifests.lists[:4] for cell in row}
    assert "NotReady" not in from_manifests.all_text


def test_names_are_shown_never_run() -> None:
    """Names the API server would refuse, straight into the model: the page escapes them."""
    evil = "<script>alert(1)</script>"
    cluster = Cluster(namespaces={"x": Namespace("x", {"kubernetes.io/metadata.name": "x"})},
                      pods=(Pod("x", evil, {"app": '"><img src=x onerror=alert(2)>'},
                                node_name="</td><b>node"),
                            Pod("x", "b&c")))
    flows = [DeniedFlow("t", "n", evil, "x/b&c", "TCP", "default deny ingress (<u>p</u>)")]
    page = render_html(report_of(Engine(cluster), [Probe(80)], flows=flows))
    read = PageReader(page)
    assert "script" not in read.elements and "img" not in read.elements
    assert "b" not in read.elements and "u" not in read.elements
    assert evil in read.all_text and "b&c" in read.all_text
    assert "&lt;script&gt;" in page and "onerror=alert(2)&gt;" in page


def test_the_page_references_nothing_outside_itself() -> None:
    cluster, probe = final_state(CASES["allow-all"])
    engine = Engine(cluster)
    svg = ('<svg xmlns="http://www.w3.org/2000/svg"><a href="https://example.com/x">'
           '<image href="//example.com/i.png"/></a></svg>')
    page = render_html(report_of(engine, [probe], flows=[], graph_svg=svg))
    assert external_references(page) == []
    read = PageReader(page)
    assert all(s.startswith(("#", "data:")) for s in read.sources), read.sources
    assert any(s.startswith("data:image/svg+xml;base64,") for s in read.sources)
    assert ("default-src 'none'; style-src 'unsafe-inline'; img-src data:") in page


def three_namespaces_of_40() -> Engine:
    """120 pods in 3 namespaces; x admits only y."""
    pods = [f"{ns}/p{i}" for ns in "xyz" for i in range(40)]
    assert len(pods) > POD_GRID_LIMIT
    model = Model.from_pod_strings(*pods, ports=(80,), protocols=(Protocol.TCP,))
    policy = upstream.gen_policy(
        "only-y", {}, upstream.ingress_rules(upstream.rule(
            upstream.peer(namespaces=upstream.ns_named("y")))))
    policy["metadata"]["namespace"] = "x"
    return Engine(model.cluster([policy]))


def test_a_big_cluster_is_a_grid_of_groups_that_stand_for_all_their_pairs() -> None:
    """Three groups, each cell true to every pair."""
    engine = three_namespaces_of_40()
    (grid,) = report_of(engine, [Probe(80)]).grids
    assert grid.grouped and [m.label for m in grid.axis] == [
        "x/* (40 pods)", "y/* (40 pods)", "z/* (40 pods)"]
    (matrix,) = engine.matrix([Probe(80)])
    for i, src in enumerate(grid.axis):
        for j, dst in enumerate(grid.axis):
            values = {matrix.allowed[a][b] for a in src.pods for b in dst.pods if a != b}
            assert values == {grid.allowed[i][j]}
    html = render_html(report_of(engine, [Probe(80)]))
    assert "<details><summary>120 pods</summary>" in html  # folded: too long to show open
    page = PageReader(html)
    assert page.grids["TCP/80"] == [["d", "a", "a"], ["a", "a", "a"], ["d", "a", "a"]]


def test_a_group_cell_where_the_kernel_disagreed_on_any_pair_is_a_mismatch() -> None:
    """The kernel observed as the engine says, but for one pair of z -> x let through and one
    of y -> x dropped; a pod unknown to the engine and pairs not probed count for nothing."""
    engine = three_namespaces_of_40()
    (matrix,) = engine.matrix([Probe(80)])
    observed: dict[str, dict[str, bool | None]] = {
        src: dict(row) for src, row in matrix.allowed.items()}
    observed["z/p3"]["x/p5"] = True
    observed["y/p0"]["x/p1"] = False
    observed["x/p0"]["y/p0"] = None  # not probed
    observed["ghost/p0"] = {"x/p0": True}
    report = report_of(engine, [Probe(80)], observed={Probe(80): observed})
    (grid,) = report.grids
    pairs = 40 * 40  # a group with itself: its pods' loopback too, which the engine allows
    assert grid.observed is not None
    assert [[(c.pairs, c.let_through, c.dropped) for c in row] for row in grid.observed] == [
        [(pairs, 0, 0), (pairs - 1, 0, 0), (pairs, 0, 0)],
        [(pairs, 0, 1), (pairs, 0, 0), (pairs, 0, 0)],
        [(pairs, 1, 0), (pairs, 0, 0), (pairs, 0, 0)]]
    assert grid.observed_total == Seen(120 * 120 - 1, 1, 1)

    html = render_html(report)
    page = PageReader(html)
    assert page.grids["TCP/80"] == [["d", "a", "a"], ["md", "a", "a"], ["ma", "a", "a"]]
    assert "Observed in the kernel: 2 of 14399 verdicts differ" in page.all_text
    assert "2 verdicts where the kernel and the engine differ" in page.all_text
    assert escape("z/* (40 pods) -> x/* (40 pods): engine: denied; kernel: of 1600 observed "
                  "pod pairs, let 1 through") in html
    assert escape("y/* (40 pods) -> x/* (40 pods): engine: allowed; kernel: of 1600 observed "
                  "pod pairs, dropped 1") in html
    assert escape("z/* (40 pods) -> y/* (40 pods): allowed; the kernel agreed on 1600 pod "
                  "pairs observed") in html


def test_on_a_grid_too_big_for_titles_a_mismatch_keeps_its_title() -> None:
    keys = [f"x/p{i}" for i in range(TITLED_GRID + 1)]
    size = len(keys)
    cells = [[UNSEEN] * size for _ in keys]
    cells[1][0] = Seen(1, 1, 0)
    grid = Grid("TCP/80", tuple(Member(k, (k,)) for k in keys),
                tuple((False,) * size for _ in keys), tuple(map(tuple, cells)), Seen(3, 1, 0))
    html = render_html(Report("big", "test", "now", (), (), (grid,), ()))
    assert html.count("title=") == size + 1  # the column headers' and the mismatch's
    assert escape("x/p1 -> x/p0: engine: denied; kernel: let it through") in html
    assert "Observed in the kernel: 1 of 3 verdicts differ" in PageReader(html).all_text
