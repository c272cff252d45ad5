"""IPAM under many processes at once, and under processes killed at any instant."""

import random
import signal
import sqlite3
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from podnet import ipam
from podnet.ipam import Attachment
from podnet.store import Store, open_store

WORKER = str(Path(__file__).with_name("worker.py"))


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


@pytest.mark.slow
def test_64_processes_churning_one_subnet(store: Store, store_url: str, tmp_path: Path) -> None:
    """No address is ever held twice (claim files), and none is leaked at the end."""
    lease = ipam.register_node(store, "node-a")
    claims = tmp_path / "claims"
    claims.mkdir()
    procs = [start("churn", store_url, "node-a", str(claims), "10", f"w{i}") for i in range(64)]
    allocations = sum(int(finish(p)) for p in procs)
    assert allocations > 64
    assert list(claims.iterdir()) == []
    assert ipam.pod_allocator(store, lease).reservations() == []


@pytest.mark.slow
def test_killed_allocators_leave_a_consistent_store(store: Store, store_url: str) -> None:
    """SIGKILL at random instants, 50 times; GC then restores exactly the valid set."""
    lease = ipam.register_node(store, "node-a")
    alloc = ipam.pod_allocator(store, lease)
    valid = {Attachment(f"valid-{i}"): alloc.allocate(Attachment(f"valid-{i}")) for i in range(20)}
    rng = random.Random(7)
    for trial in range(50):
        proc = start("grab", store_url, "node-a", f"junk{trial}")
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
        with open_store(store_url) as after:
            survivor = ipam.pod_allocator(after, lease)
            table = survivor.reservations()
            assert len({r.ip for r in table}) == len(table)
            assert len({r.attachment for r in table}) == len(table)
            assert all(r.ip in survivor.range for r in table)
            released = survivor.gc(valid)
            assert all(r.attachment.container_id.startswith(f"junk{trial}-") for r in released)
            assert {r.attachment: r.ip for r in survivor.reservations()} == valid
            assert survivor.allocate(Attachment("valid-0")) == valid[Attachment("valid-0")]
    if store_url.startswith("sqlite://"):  # and the file itself is sound
        db = sqlite3.connect(store_url.removeprefix("sqlite://"))
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.close()


@pytest.mark.slow
def test_16_nodes_registering_at_once_get_disjoint_subnets(store: Store, store_url: str) -> None:
    ipam.ensure_cluster_config(store)
    go = time.time() + 2
    procs = {f"node-{i}": start("register", store_url, f"node-{i}", str(go)) for i in range(16)}
    subnets = {node: IPv4Network(finish(p).strip()) for node, p in procs.items()}
    assert len(set(subnets.values())) == 16
    assert all(a == b or not a.overlaps(b) for a in subnets.values() for b in subnets.values())
    assert {lease.node: lease.subnet for lease in ipam.node_leases(store)} == subnets
    restarted = start("register", store_url, "node-3", "0")
    assert IPv4Network(finish(restarted).strip()) == subnets["node-3"]
