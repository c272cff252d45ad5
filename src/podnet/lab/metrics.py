"""The lab's metrics: each agent's `/metrics`, fetched from inside its node, merged by node.

Each agent of a lab serves on its node's underlay address (`METRICS_PORT`), which exists only
in the lab's namespaces: the CLI, in the root namespace, connects through a socket made in the
node's namespace (`datapath.netns.socket_in`). Merged, every sample gets a `node` label, as
Prometheus would add a target's label, and each family keeps one HELP and TYPE.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Mapping, Sequence

from podnet.datapath.netns import socket_in
from podnet.errors import PodnetError
from podnet.lab.state import LabPaths, node_address

METRICS_PORT = 9470
SCRAPE_TIMEOUT = 5.0


def metrics_address(paths: LabPaths, node: str) -> tuple[str, int]:
    """Where the agent of `node` serves its metrics (an address of the node's namespace)."""
    nodes = paths.load().nodes
    if node not in nodes:
        raise PodnetError(f"lab {paths.name} has no node {node!r} (nodes: {', '.join(nodes)})")
    return node_address(nodes.index(node)), METRICS_PORT


class _NodeConnection(http.client.HTTPConnection):
    """HTTP over a socket made in a node's namespace."""

    def __init__(self, netns: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        self.sock = socket_in(self.netns, socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def scrape(paths: LabPaths, node: str, timeout: float = SCRAPE_TIMEOUT) -> str:
    """The exposition text the agent of `node` serves."""
    host, port = metrics_address(paths, node)
    try:
        return fetch(paths.netns_path(paths.node(node)), host, port, timeout)
    except PodnetError as err:
        raise PodnetError(f"node {node}: {err}") from err


def fetch(netns: str, host: str, port: int, timeout: float = SCRAPE_TIMEOUT) -> str:
    """`GET http://host:port/metrics` from inside the namespace at `netns`."""
    connection = _NodeConnection(netns, host, port, timeout)
    url = f"http://{host}:{port}/metrics"
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
    except (OSError, http.client.HTTPException) as err:
        raise PodnetError(f"cannot fetch {url}: {err}") from err
    finally:
        connection.close()
    if response.status != 200:
        raise PodnetError(f"{url} answered {response.status} {response.reason}")
    return body


def lab_metrics(paths: LabPaths, nodes: Sequence[str] | None = None
                ) -> tuple[dict[str, str], list[PodnetError]]:
    """Each node's exposition text, by node, and why the others gave none (an agent that
    does not answer leaves the rest worth reading)."""
    texts, failures = {}, []
    for node in nodes or paths.load().nodes:
        try:
            texts[node] = scrape(paths, node)
        except PodnetError as err:
            failures.append(err)
    return texts, failures


def merge(texts: Mapping[str, str], prefix: str = "") -> str:
    """One exposition of several nodes' (families whose name starts with `prefix`): every
    sample labelled `node="<node>"`, the samples of a family together under its HELP/TYPE."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for node, text in texts.items():
        family = ""
        for line in text.splitlines():
            if line.startswith("# "):
                parts = line.split(" ", 3)
                family = parts[2] if len(parts) > 2 else family
                known = headers.setdefault(family, [])
                if line not in known:
                    known.append(line)
            elif line:
                samples.setdefault(family, []).append(with_label(line, "node", node))
    return "".join("\n".join([*headers.get(f, []), *samples.get(f, [])]) + "\n"
                   for f in dict.fromkeys([*headers, *samples]) if f.startswith(prefix))


def with_label(sample: str, name: str, value: str) -> str:
    """A sample line with one more label, first (a metric's name has no `{` and no space)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    label = f'{name}="{escaped}"'
    end = next(i for i, char in enumerate(sample) if char in "{ ")
    if sample[end] == " ":
        return f"{sample[:end]}{{{label}}}{sample[end:]}"
    rest = sample[end + 1:]
    return f"{sample[:end]}{{{label}{'' if rest.startswith('}') else ','}{rest}"
