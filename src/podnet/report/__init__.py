"""The report: one self-contained HTML page of a cluster's network (nodes, pods, reachability
per probe, what each policy selects and admits, recent denied flows), and its graphviz graph.

Pure: `build_report` reads the engine's results, `render_html` and `render_dot` write text.
Running graphviz, reading a lab and writing files belong to the command line.
"""

from podnet.report.build import Liveness, build_report
from podnet.report.dot import render_dot
from podnet.report.html import render_html
from podnet.report.page import DeniedFlow, Grid, NodeRow, PodRow, PolicyRow, Report

__all__ = [
    "DeniedFlow",
    "Grid",
    "Liveness",
    "NodeRow",
    "PodRow",
    "PolicyRow",
    "Report",
    "build_report",
    "render_dot",
    "render_html",
]
