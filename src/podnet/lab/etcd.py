"""etcd members as processes: the lab's 3-member cluster, each inside a node's namespace.

A member listens on its node's underlay address (clients on 2379, peers on 2380), so the
cluster's traffic stays on the lab's bridge; processes of the root namespace (the CLI, the
kubelet) reach it from the underlay's namespace (`?netns=` in the store URL). Tests use the
same functions with members on 127.0.0.1 and free ports, and no namespace.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from podnet.errors import PodnetError
from podnet.lab.state import LabPaths, node_address
from podnet.model.lab import Lab
from podnet.store import StoreError, open_store

CLIENT_PORT = 2379
PEER_PORT = 2380
# etcd's defaults (heartbeat 100 ms, election 1 s) hold on a loaded 2-core machine, where
# shorter timeouts make members call elections while the leader is only slow.
HEARTBEAT_MS = 100
ELECTION_MS = 1000
LAB_MEMBERS = 3


class EtcdError(PodnetError):
    """An etcd member could not be started, or the cluster did not become ready."""


def etcd_binary() -> str | None:
    """The etcd server (Debian's etcd-server package), if installed."""
    return shutil.which("etcd")


@dataclass(frozen=True)
class Member:
    """One etcd member: its name, the address it listens on, and where it keeps its data."""

    name: str
    host: str
    data_dir: Path
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT
    netns: str | None = None  # path of the network namespace to run in (None: this one)

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"


def store_url(members: Sequence[Member], netns: str | None = None,
              timeout: float | None = None) -> str:
    """The store URL that names every member (the client fails over between them)."""
    options = [f"netns={netns}"] if netns else []
    if timeout is not None:
        options.append(f"timeout={timeout}")
    query = "?" + "&".join(options) if options else ""
    return "etcd://" + ",".join(m.endpoint for m in members) + query


def member_argv(member: Member, cluster: Sequence[Member], token: str) -> list[str]:
    binary = etcd_binary()
    if binary is None:
        raise EtcdError("etcd is not installed (Debian package etcd-server)")
    argv = [
        binary, "--name", member.name, "--data-dir", str(member.data_dir),
        "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
        "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
        "--initial-cluster", ",".join(f"{m.name}={m.peer_url}" for m in cluster),
        "--initial-cluster-state", "new", "--initial-cluster-token", token,
        "--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS),
        "--logger", "zap", "--log-outputs", "stderr",
    ]
    if member.netns is not None:
        return ["nsenter", f"--net={member.netns}", *argv]
    return argv


def start_member(member: Member, cluster: Sequence[Member], token: str, log: Path,
                 die_with_parent: bool = False) -> subprocess.Popen[bytes]:
    """Start (or restart, on its data directory) one member; it logs to `log`.

    `die_with_parent`: the kernel stops it when the calling thread ends, however it ends (a
    test run killed by a timeout leaves no etcd behind).
    """
    member.data_dir.parent.mkdir(parents=True, exist_ok=True)
    argv = member_argv(member, cluster, token)
    if die_with_parent:  # setpriv sets PR_SET_PDEATHSIG, then execs (the PID stays etcd's)
        argv = ["setpriv", "--pdeathsig", "TERM", *argv]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Wait until the cluster at `url` answers a linearizable read (it has a leader)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with open_store(url) as store:
                store.revision()
                return
        except StoreError as err:
            last = err
            time.sleep(0.1)
    raise EtcdError(f"etcd at {url} not ready within {timeout:.0f}s: {last}")


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that nothing listens on now (for members started by tests)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def lab_members(paths: LabPaths, lab: Lab) -> list[Member]:
    """The lab's members: one in each of its first three nodes, on the node's address."""
    return [Member(f"etcd-{node}", node_address(i), paths.dir / "etcd" / node,
                   netns=paths.netns_path(paths.node(node)))
            for i, node in enumerate(lab.nodes[:LAB_MEMBERS])]


def lab_store_url(paths: LabPaths, lab: Lab, node: str | None = None) -> str:
    """The lab's store URL: for an agent of `node` (its own member first), or, without a
    node, for processes of the root namespace (connecting from the underlay's namespace)."""
    members = lab_members(paths, lab)
    if node is None:
        return store_url(members, netns=paths.netns_path(paths.underlay))
    own = [m for m in members if m.name == f"etcd-{node}"]
    return store_url(own + [m for m in members if m not in own])
