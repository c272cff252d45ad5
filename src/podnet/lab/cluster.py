"""Bringing a lab up and down: underlay, node namespaces, agents, the kubelet, workloads.

`up` is ordered so that each step finds what it needs: namespaces, then the store and its
cluster network, then one `podnet agent` per node (inside the node's namespace), then the
kubelet, and last the workloads, which the kubelet turns into wired pods. `down` needs
nothing but the lab's name: it stops the processes it recorded and any process left inside
the lab's namespaces, then deletes the namespaces and the lab's directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from podnet import ipam
from podnet.agent.informer import Informer
from podnet.errors import PodnetError
from podnet.lab import etcd
from podnet.lab.flows import flow_log_path
from podnet.lab.metrics import metrics_address
from podnet.lab.state import LabPaths, NoLab, labs
from podnet.lab.underlay import add_node, create_underlay, delete_netns
from podnet.model import Manifest, build_cluster
from podnet.model.lab import Lab
from podnet.store import Store, open_store
from podnet.store.apply import apply_manifests

log = logging.getLogger(__name__)

PODNET = str(Path(sys.executable).with_name("podnet"))
STOP_TIMEOUT = 5.0

Progress = Callable[[str, int, int], None]  # (what, done, total)


class LabError(PodnetError):
    """The lab could not be brought up (what was made is removed again)."""


def up(lab: Lab, workloads: Sequence[Manifest], progress: Progress | None = None,
       timeout: float = 120.0) -> LabPaths:
    """Bring `lab` up with `workloads`; a lab of that name still (half) up is removed first."""
    paths = LabPaths(lab.name)
    if lab.name in labs():
        log.warning("lab %s is (half) up: removing it first", lab.name)
        down(paths)
    report = progress or (lambda what, done, total: None)
    try:
        for directory in (paths.dir, paths.pids, paths.logs):
            directory.mkdir(parents=True, exist_ok=True)
        paths.save(lab)
        create_underlay(paths, lab.mtu)
        for i, node in enumerate(lab.nodes):
            report("nodes", i, len(lab.nodes))
            add_node(paths, node, i, lab.mtu)
        report("nodes", len(lab.nodes), len(lab.nodes))
        if lab.datastore == "etcd":
            _start_etcd(paths, lab, timeout)
        with open_store(paths.store_url) as store:
            ipam.ensure_cluster_config(store, ipam.ClusterConfig(lab.pod_cidr,
                                                                lab.node_subnet_size))
        for node in lab.nodes:
            start_agent(paths, lab, node)
        _wait(lambda: all(paths.socket(n).exists() for n in lab.nodes), timeout,
              "agents did not start", paths)
        _spawn(paths, "kubelet", [PODNET, "-v", "lab", "kubelet", "--lab", lab.name])
        with open_store(paths.store_url) as store:
            apply_manifests(store, workloads)
            _wait_for_pods(store, paths, report, timeout,
                           len(build_cluster(workloads).pods))
    except BaseException:
        down(paths)
        raise
    return paths


def down(paths: LabPaths) -> list[str]:
    """Remove everything the lab made; what was removed, for the user."""
    removed = []
    for pidfile in sorted(paths.pids.glob("*.pid"), key=lambda p: p.name != "kubelet.pid"):
        pid = _read_pid(pidfile)
        if pid is not None and _is_ours(pid, paths):
            _terminate(pid)
            removed.append(f"process {pidfile.stem} ({pid})")
    namespaces = paths.namespaces()
    for pid in _pids_inside(namespaces):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            removed.append(f"process {pid} (left inside the lab)")
    # Pods first, then nodes and the underlay: deleting a node takes its veths along.
    for netns in sorted(namespaces, key=lambda n: ("-pod-" not in n, n != paths.underlay)):
        delete_netns(netns)
    if namespaces:
        removed.append(f"{len(namespaces)} network namespaces")
    if paths.dir.exists():
        shutil.rmtree(paths.dir, ignore_errors=True)
        removed.append(str(paths.dir))
    return removed


def down_all() -> list[str]:
    return [f"{name}: {what}" for name in labs() for what in down(LabPaths(name))]



def start_agent(paths: LabPaths, lab: Lab, node: str) -> int:
    """Run `node`'s agent inside the node's namespace (again, after it stopped); its PID."""
    return _spawn(paths, f"agent-{node}", [
        "nsenter", f"--net={paths.netns_path(paths.node(node))}", PODNET, "-v", "agent",
        "--node", node, "--store", paths.agent_store_url(node),
        "--socket", str(paths.socket(node)),
        "--backend", lab.backend, "--iface", "eth0",
        "--flow-log", str(flow_log_path(paths, node)),
        "--metrics-address", "{}:{}".format(*metrics_address(paths, node))])


def _start_etcd(paths: LabPaths, lab: Lab, timeout: float) -> None:
    """The lab's etcd cluster, one member in each of the first three node namespaces."""
    members = etcd.lab_members(paths, lab)
    for member in members:
        _spawn(paths, member.name, etcd.member_argv(member, members, f"podnet-{lab.name}"))
    etcd.wait_ready(paths.store_url, timeout)


def _spawn(paths: LabPaths, name: str, argv: list[str]) -> int:
    with (paths.logs / f"{name}.log").open("ab") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=log_file, start_new_session=True)
    (paths.pids / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _wait(condition: Callable[[], bool], timeout: float, what: str, paths: LabPaths) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"{what} within {timeout:.0f}s; see the logs in {paths.logs}")
        time.sleep(0.05)


def _wait_for_pods(store: Store, paths: LabPaths, report: Progress, timeout: float,
                   expected: int) -> None:
    """Until at least `expected` pods exist and every pod runs. Pods are followed by watch:
    listing 500 pods every 0.1 s cost this process more CPU than the kubelet's (bench/lab.py).
    """
    informer = Informer(store, ["Pod"], lambda snapshot: None)
    deadline = time.monotonic() + timeout
    while True:
        informer.refresh()
        pods = list(informer.snapshot()["Pod"].values())
        running = sum((p.body.get("status") or {}).get("phase") == "Running" for p in pods)
        report("pods", running, len(pods))
        if len(pods) >= expected and running == len(pods):
            return
        if time.monotonic() > deadline:
            waiting = [p.key.namespace + "/" + p.key.name for p in pods
                       if (p.body.get("status") or {}).get("phase") != "Running"]
            raise LabError(f"pods not running within {timeout:.0f}s: {', '.join(waiting[:10])}; "
                           f"see {paths.logs / 'kubelet.log'}")
        time.sleep(0.1)


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int, paths: LabPaths) -> bool:
    """Only a podnet process of this lab: a PID may have been reused since it was written."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    text = b" ".join(cmdline).decode(errors="replace")
    return "podnet" in text and (paths.name in text or str(paths.dir) in text)


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _pids_inside(namespaces: Sequence[str]) -> list[int]:
    """Processes whose network namespace is one of the lab's (they can only be the lab's)."""
    inodes = set()
    for netns in namespaces:
        with contextlib.suppress(OSError):
            st = os.stat(f"/run/netns/{netns}")
            inodes.add((st.st_dev, st.st_ino))
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            st = os.stat(entry / "ns" / "net")
            if (st.st_dev, st.st_ino) in inodes:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


__all__ = ["LabError", "NoLab", "down", "down_all", "up"]
