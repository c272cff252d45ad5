"""Where a lab lives: its directory, store, sockets, logs, PID files and namespace names.

Everything a lab makes is found again from its name alone, so `podnet lab down` can remove
a lab whose processes were killed: namespaces are `podnet-<lab>-…`, files are under
`/run/podnet/labs/<lab>/` (tmpfs: a reboot takes them with the namespaces).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from podnet.errors import PodnetError
from podnet.model.lab import Lab

LABS_DIR = Path(os.environ.get("PODNET_LABS_DIR", "/run/podnet/labs"))
NETNS_DIR = Path("/run/netns")
UNDERLAY_NET = "192.0.2"  # TEST-NET-1: never routed anywhere
FIRST_NODE_HOST = 10


class NoLab(PodnetError, LookupError):
    """No lab by that name, or no lab at all, or several when one must be chosen."""


@dataclass(frozen=True)
class LabPaths:
    name: str

    @property
    def dir(self) -> Path:
        return LABS_DIR / self.name

    @property
    def store_url(self) -> str:
        """The lab's store, as processes of the root namespace reach it (CLI, kubelet)."""
        return self.agent_store_url(None)

    def agent_store_url(self, node: str | None) -> str:
        """The lab's store as the agent of `node` reaches it (etcd: from the node's netns)."""
        if self.spec_file.exists() and (lab := self.load()).datastore == "etcd":
            from podnet.lab.etcd import lab_store_url

            return lab_store_url(self, lab, node)
        return f"sqlite://{self.dir / 'state.db'}"

    @property
    def pids(self) -> Path:
        return self.dir / "pids"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def spec_file(self) -> Path:
        return self.dir / "lab.json"

    def socket(self, node: str) -> Path:
        return self.dir / f"{node}.sock"

    @property
    def prefix(self) -> str:
        return f"podnet-{self.name}-"

    @property
    def underlay(self) -> str:
        return f"{self.prefix}underlay"

    def node(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def pod(self, namespace: str, name: str) -> str:
        # A namespace name has no '.', so `<ns>.<name>` cannot collide.
        return f"{self.prefix}pod-{namespace}.{name}"

    def netns_path(self, netns: str) -> str:
        return str(NETNS_DIR / netns)

    def namespaces(self) -> list[str]:
        """Every network namespace of this lab that exists now."""
        if not NETNS_DIR.is_dir():
            return []
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(self.prefix))

    def save(self, lab: Lab) -> None:
        doc = asdict(lab)
        doc["pod_cidr"] = str(lab.pod_cidr)
        self.spec_file.write_text(json.dumps(doc, indent=2))

    def load(self) -> Lab:
        try:
            doc: dict[str, Any] = json.loads(self.spec_file.read_text())
        except FileNotFoundError:
            raise NoLab(f"lab {self.name!r} is not running (no {self.spec_file})") from None
        doc["nodes"] = tuple(doc["nodes"])
        doc["pod_cidr"] = ipaddress.IPv4Network(doc["pod_cidr"])
        return Lab(**doc)


def node_address(index: int) -> str:
    """The underlay address of the `index`-th node (0-based)."""
    return f"{UNDERLAY_NET}.{FIRST_NODE_HOST + index}"


def labs() -> list[str]:
    """Labs with a directory or with namespaces left (a half-removed lab counts)."""
    names = {p.name for p in LABS_DIR.iterdir() if p.is_dir()} if LABS_DIR.is_dir() else set()
    if NETNS_DIR.is_dir():
        names |= {p.name.removeprefix("podnet-").removesuffix("-underlay")
                  for p in NETNS_DIR.glob("podnet-*-underlay")}
    return sorted(names)


def choose(name: str | None) -> LabPaths:
    """The lab called `name`, or the only lab running; NoLab (listing them) otherwise."""
    running = labs()
    if name is not None:
        if name not in running:
            raise NoLab(f"no lab {name!r} is running" + _listing(running))
        return LabPaths(name)
    if len(running) == 1:
        return LabPaths(running[0])
    if not running:
        raise NoLab("no lab is running (start one with: podnet lab up -f DIR)")
    raise NoLab("several labs are running; choose one with --lab" + _listing(running))


def _listing(running: list[str]) -> str:
    return f" (running: {', '.join(running)})" if running else ""
