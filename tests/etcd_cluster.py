"""A real etcd cluster for tests: members on 127.0.0.1 with free ports, stopped by PID."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from podnet.lab import etcd as lab_etcd
from podnet.lab.etcd import Member, etcd_binary, free_ports, start_member, wait_ready


class LocalCluster:
    """The members of one new cluster under `root`, and the processes that serve them."""

    def __init__(self, root: Path, count: int) -> None:
        ports = free_ports(2 * count)
        self.root = root
        self.members = [Member(f"m{i}", "127.0.0.1", root / f"m{i}", ports[2 * i],
                               ports[2 * i + 1]) for i in range(count)]
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, timeout: float | None = None) -> str:
        return lab_etcd.store_url(self.members, timeout=timeout)

    def start(self, member: Member) -> None:
        self._procs[member.name] = start_member(member, self.members, self.root.name,
                                                self.root / f"{member.name}.log",
                                                die_with_parent=True)

    def stop(self, member: Member) -> None:
        proc = self._procs.pop(member.name, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def local_cluster(root: Path, count: int) -> Iterator[LocalCluster]:
    """`count` members started and ready; every one stopped afterwards, whatever happened."""
    if etcd_binary() is None:
        pytest.skip("etcd is not installed (Debian package etcd-server)")
    cluster = LocalCluster(root, count)
    try:
        for member in cluster.members:
            cluster.start(member)
        wait_ready(cluster.url())
        yield cluster
    finally:
        for member in cluster.members:
            cluster.stop(member)
