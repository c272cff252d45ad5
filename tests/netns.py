"""Pytest plugin: network namespaces, a node agent inside one, and the real `podnet-cni`.

Every namespace a test makes is named `pn-t-<pid>-<hex>`: the run's own PID lets the sweep at
session start remove what killed runs left behind without touching namespaces of runs still
going (other engineers share this machine). Nothing here touches the root namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NETNS_DIR = Path("/run/netns")
PREFIX = "pn-t-"
VENV_BIN = Path(sys.executable).parent
PODNET = str(VENV_BIN / "podnet")
PODNET_CNI = str(VENV_BIN / "podnet-cni")
NODE_ADDRESS = "192.0.2.11"  # the `agent` fixture's node: TEST-NET-1, as the lab's underlay


def can_make_namespaces() -> bool:
    return os.geteuid() == 0 and Path("/proc/self/ns/net").exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_leftovers() -> None:
    """Delete `pn-t-<pid>-*` namespaces whose run (that PID) is gone."""
    if not NETNS_DIR.is_dir():
        return
    for path in NETNS_DIR.glob(f"{PREFIX}*"):
        pid = path.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            subprocess.run(["ip", "netns", "del", path.name], check=False, capture_output=True)


@dataclass
class Netns:
    """A named network namespace made by a test."""

    name: str

    @property
    def path(self) -> str:
        return str(NETNS_DIR / self.name)

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> str:
        """Run a command inside (nsenter keeps /sys as it is, unlike `ip netns exec`)."""
        done = subprocess.run(
            ["nsenter", f"--net={self.path}", *argv],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in {self.name}: {done.stderr or done.stdout}")
        return done.stdout

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["nsenter", f"--net={self.path}", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def ping(self, ip: str, attempts: int = 3) -> bool:
        """Whether `ip` answers; a few tries, as a loaded machine may lose a deadline."""
        for _ in range(attempts):
            done = subprocess.run(
                ["nsenter", f"--net={self.path}", "ping", "-c1", "-W3", ip],
                capture_output=True, check=False,
            )
            if done.returncode == 0:
                return True
        return False

    def links(self) -> list[str]:
        out = json.loads(self.run("ip", "-j", "link", "show"))
        return [link["ifname"] for link in out]


class NetnsFactory:
    """Makes namespaces and removes them all at teardown, also those a test already removed."""

    __test__ = False

    def __init__(self) -> None:
        self.made: list[Netns] = []

    def __call__(self, role: str = "ns") -> Netns:
        ns = Netns(f"{PREFIX}{os.getpid()}-{role[:8]}-{secrets.token_hex(3)}")
        self.made.append(ns)  # recorded first: a failed add is still swept
        subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True)
        return ns

    def delete(self, ns: Netns) -> None:
        subprocess.run(["ip", "netns", "del", ns.name], check=False, capture_output=True)

    def cleanup(self) -> None:
        for ns in reversed(self.made):
            self.delete(ns)
        self.made.clear()


@dataclass
class CniCall:
    """What `podnet-cni` printed and returned."""

    code: int
    output: dict[str, object] = field(default_factory=dict)

    @property
    def error_code(self) -> object:
        return self.output.get("code")


def run_cni(
    command: str, conf: dict[str, object], env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> CniCall:
    """Run the real executable as a runtime does: CNI_* in the environment, config on stdin."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
            "CNI_PATH": "/usr/lib/cni", **(env or {})}
    done = subprocess.run(
        [PODNET_CNI], input=stdin if stdin is not None else json.dumps(conf).encode(),
        env=full, capture_output=True, timeout=120, check=False,
    )
    text = done.stdout.decode()
    return CniCall(done.returncode, json.loads(text) if text.strip() else {})


@dataclass
class Agent:
    """A `podnet agent` running in a node namespace, and how to call it as a runtime would."""

    node: Netns
    name: str
    socket: str
    store_url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    cni_version: str = "1.1.0"

    def conf(self, **extra: object) -> dict[str, object]:
        return {"cniVersion": self.cni_version, "name": "podnet", "type": "podnet-cni",
                "socket": self.socket, **extra}

    def start(self, *extra: str) -> None:
        argv = ["nsenter", f"--net={self.node.path}", PODNET, "-v", "agent",
                "--node", self.name, "--store", self.store_url, "--socket", self.socket, *extra]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited: {self.log.read_text()}")
            with socket.socket(socket.AF_UNIX) as probe:
                if probe.connect_ex(self.socket) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"agent did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def add(self, container_id: str, pod: Netns, ifname: str = "eth0", args: str = "",
            **conf: object) -> CniCall:
        return run_cni("ADD", self.conf(**conf), {
            "CNI_CONTAINERID": container_id, "CNI_NETNS": pod.path, "CNI_IFNAME": ifname,
            "CNI_ARGS": args})

    def delete(self, container_id: str, pod: Netns | None, ifname: str = "eth0") -> CniCall:
        env = {"CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname}
        if pod is not None:
            env["CNI_NETNS"] = pod.path
        return run_cni("DEL", self.conf(), env)

    def check(self, container_id: str, pod: Netns, prev: dict[str, object],
              ifname: str = "eth0") -> CniCall:
        return run_cni("CHECK", self.conf(prevResult=prev), {
            "CNI_CONTAINERID": container_id, "CNI_NETNS": pod.path, "CNI_IFNAME": ifname})


def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Wait for `condition`, polling; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f}s")
        time.sleep(0.1)


def pod_ip(result: CniCall) -> str:
    """The pod address of an ADD result, without the prefix length."""
    ips = result.output["ips"]
    assert isinstance(ips, list)
    return str(ips[0]["address"]).split("/")[0]


@pytest.fixture(scope="session", autouse=True)
def _sweep_namespaces() -> None:
    if can_make_namespaces():
        sweep_leftovers()


@pytest.fixture
def make_netns() -> Iterator[NetnsFactory]:
    """Name: make_netns. Scope: function. Makes `pn-t-…` namespaces; all removed at teardown.

    Example: `node = make_netns("node")`; skips without root.
    """
    if not can_make_namespaces():
        pytest.skip("needs root to create network namespaces")
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def agent(make_netns: NetnsFactory, tmp_path: Path) -> Iterator[Agent]:
    """Name: agent. Scope: function. Depends: make_netns. A node namespace with its agent.

    The store and socket live in `tmp_path`; the agent is stopped (SIGTERM) at teardown.
    """
    node = make_netns("node")
    # A node has an address of its own (the lab's underlay), the source of host-network traffic.
    node.run("ip", "link", "set", "lo", "up")
    node.run("ip", "addr", "add", f"{NODE_ADDRESS}/32", "dev", "lo")
    running = Agent(
        node=node, name="node-1", socket=str(tmp_path / "agent.sock"),
        store_url=f"sqlite://{tmp_path}/state.db", log=tmp_path / "agent.log",
    )
    running.start("--cluster-cidr", "10.244.0.0/16")
    try:
        yield running
    finally:
        running.stop()
        with contextlib.suppress(OSError):
            print(running.log.read_text(), file=sys.stderr)
