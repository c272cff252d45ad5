"""A real browser opens the report: Debian's Chromium, headless, takes a screenshot and dumps
the DOM it built. The screenshot must be a PNG of the size asked, not blank, with the grid's
colours in it; the DOM must hold every cell and no script from a pod's name."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import png
import pytest
import test_upstream_e2e as upstream
from page_reader import PageReader

from podnet.lab import Model
from podnet.model import Pod, Protocol
from podnet.policy import Engine, Probe
from podnet.report import build_report, render_dot, render_html
from podnet.report.html import ALLOWED, DENIED, LOOPBACK, MISMATCH

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not installed (scripts/setup installs it)")
WIDTH, HEIGHT = 1400, 1800
EVIL = "<script>document.title='ran'</script>"


def chromium(tmp_path: Path, *options: str, url: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", *options, url],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    """x/a admits only namespace y on TCP/80; a pod named like a script; one cell observed
    the other way round, so the page shows a mismatch too; the graph if graphviz is here."""
    model = Model.from_pod_strings("x/a", "x/b", "y/a", "y/b", "z/a", ports=(80,),
                                   protocols=(Protocol.TCP,))
    policy = upstream.gen_policy_match_label(
        "y-to-x-a", {"pod": "a"},
        upstream.ingress_rules(upstream.rule(upstream.peer(namespaces=upstream.ns_named("y")),
                                             ports=[upstream.port(80)])))
    policy["metadata"]["namespace"] = "x"
    cluster = model.cluster([policy])
    cluster = dataclasses.replace(cluster, pods=(*cluster.pods, Pod("z", EVIL)))
    engine = Engine(cluster)
    probe = Probe(80)
    (matrix,) = engine.matrix([probe])
    observed = {s: dict(row) for s, row in matrix.allowed.items()}
    observed["z/a"]["x/a"] = True  # the kernel let through what the engine denies
    svg = None
    if shutil.which("dot"):
        from podnet.cli.report import dot_to_svg

        svg = dot_to_svg(render_dot(engine.connectivity().connections))
    report = build_report(engine, [probe], title="browser test", source="test",
                          generated="now", observed={probe: observed}, flows=[],
                          graph_svg=svg)
    path = tmp_path / "report.html"
    path.write_text(render_html(report))
    return path


def test_chromium_draws_the_grid_in_its_colours(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
                    url=page.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    image = png.decode(shot.read_bytes())
    assert image.shape[:2] == (HEIGHT, WIDTH)
    seen = png.colours(image)
    assert len(seen) > 20, "a blank or nearly blank screenshot"
    for colour in (ALLOWED, DENIED, LOOPBACK, MISMATCH):
        # each cell is 16 x 16 pixels: whole cells of the colour, not antialiasing
        assert seen.get(rgb(colour), 0) >= 16 * 16, colour


def test_chromium_builds_every_cell_and_runs_no_script(page: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, "--dump-dom", url=page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = PageReader(done.stdout)
    assert "script" not in dom.elements
    assert "<title>browser test</title>" in done.stdout  # the script did not rename the page
    pods = ["x/a", "x/b", "y/a", "y/b", "z/a", f"z/{EVIL}"]
    assert dom.row_labels["TCP/80"] == pods
    rows = dom.grids["TCP/80"]
    assert [len(r) for r in rows] == [6] * 6
    assert rows[4][0] == "ma"  # z/a -> x/a: engine denied, kernel let it through
    assert rows[2][0] == "a" and rows[1][0] == "d" and rows[0][0] == "l"
    assert EVIL in dom.all_text
