"""`podnet policy connectivity -o dot|svg|--svg` and `podnet policy report` as a user runs them:
graphviz draws one cluster per namespace, and the page lands where `-o` says."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netns import PODNET

DEMO = Path(__file__).parents[2] / "examples" / "demo"
DEMO_NAMESPACES = {"data", "kube-system", "monitoring", "shop", "web"}
SVG = "{http://www.w3.org/2000/svg}"
needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None,
                                    reason="graphviz (dot) is not installed")


def podnet(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PODNET, *argv], capture_output=True, text=True, check=False,
                          timeout=120, env=env)


def clusters(svg: str) -> dict[str, str]:
    """Cluster name -> its label, from graphviz's SVG (each cluster is a `g class=cluster`)."""
    root = ET.fromstring(svg)
    found = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "cluster":
            title = g.find(f"{SVG}title")
            text = g.find(f"{SVG}text")
            assert title is not None and text is not None
            found[title.text or ""] = text.text or ""
    return found


def test_dot_has_a_cluster_subgraph_per_namespace() -> None:
    done = podnet("policy", "connectivity", "-f", str(DEMO), "-o", "dot")
    assert done.returncode == 0, done.stderr
    assert set(re.findall(r'subgraph "cluster_([^"]+)"', done.stdout)) == DEMO_NAMESPACES


@needs_graphviz
def test_svg_parses_and_has_one_cluster_per_namespace() -> None:
    svg = podnet("policy", "connectivity", "-f", str(DEMO), "--svg")
    assert svg.returncode == 0, svg.stderr
    assert clusters(svg.stdout) == {f"cluster_{ns}": f"namespace {ns}"
                                    for ns in DEMO_NAMESPACES}
    edges = [g for g in ET.fromstring(svg.stdout).iter(f"{SVG}g") if g.get("class") == "edge"]
    assert edges and "TCP 443" in svg.stdout
    assert podnet("policy", "connectivity", "-f", str(DEMO), "-o", "svg").stdout == svg.stdout


def test_svg_without_graphviz_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty directory: no `dot`
    done = podnet("policy", "connectivity", "-f", str(DEMO), "--svg", env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == ("podnet: graphviz is not installed: no `dot` on PATH "
                                   "(Debian: apt-get install graphviz)")


@needs_graphviz
def test_policy_report_writes_the_page_with_the_graph_inside(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = podnet("policy", "report", "-f", str(DEMO), "--port", "443,5432", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {out} (")
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'data-probe="TCP/5432"' in page
    data = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert data is not None
    assert set(clusters(base64.b64decode(data[1]).decode())) == {
        f"cluster_{ns}" for ns in DEMO_NAMESPACES}

    bare = podnet("policy", "report", "-f", str(DEMO), "--port", "443,5432", "--no-graph")
    assert bare.returncode == 0 and bare.stdout.startswith("<!DOCTYPE html>")
    assert "data:image" not in bare.stdout and 'data-probe="TCP/5432"' in bare.stdout


def test_policy_report_to_an_unwritable_place_names_it(tmp_path: Path) -> None:
    where = tmp_path / "missing" / "report.html"
    done = podnet("policy", "report", "-f", str(DEMO), "--no-graph", "-o", str(where))
    assert done.returncode == 1
    assert done.stderr.strip() == (f"podnet: {where}: cannot write the report: "
                                   "No such file or directory")
