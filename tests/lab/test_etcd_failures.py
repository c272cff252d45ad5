"""A lab on a 3-member etcd cluster, through the failures a distributed store must survive.

Topology: three nodes, each running an etcd member and an agent; pods x/a (node-1),
x/b (node-2) and x/c (node-3), each serving 80/TCP: a client, and a server on each other
node, so that each failure can be seen from a node that still has its store and one that
lost it. Members are killed by the PIDs the lab recorded, and started again on their data.

- one member killed: CNI ADD/DEL and policy changes go on;
- quorum lost: ADD fails with CNI code 11 in bounded time, running pods keep their
  connectivity and their policies; when quorum returns everything resumes, agents untouched;
- one agent cut off from etcd (its node drops packets to port 2379): it keeps enforcing what
  it knew, and catches up once it reaches etcd again;
- after each: no pod address held twice, no two nodes with overlapping subnets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel import LAB_TEST, lab_name, pod_manifest, podnet, running_lab

from netns import Agent, Netns, NetnsFactory, pod_ip, until
from podnet import ipam
from podnet.lab import etcd
from podnet.lab.pods import LabPod, running_pods
from podnet.lab.prober import ProbeJob, run_probes
from podnet.lab.reachability import PodString
from podnet.lab.state import LabPaths
from podnet.model import Protocol
from podnet.store import Key, NotFound, open_store

pytestmark = [*LAB_TEST, pytest.mark.etcd,
              pytest.mark.skipif(etcd.etcd_binary() is None, reason="etcd is not installed")]

PODS = {"x/a": "node-1", "x/b": "node-2", "x/c": "node-3"}
CNI_TRY_AGAIN_LATER = 11
SETTLE = 30.0  # seconds a change may take to show here (a loaded machine, an election)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("et")
    docs: list[dict[str, object]] = [
        {"apiVersion": "podnet.dev/v1alpha1", "kind": "Lab", "metadata": {"name": name},
         "spec": {"nodes": ["node-1", "node-2", "node-3"], "datastore": "etcd"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
        *(pod_manifest(key, node, labels={"pod": key[2:]}) for key, node in PODS.items())]
    with running_lab(name, docs, tmp_path_factory.mktemp("lab")) as paths:
        yield paths


@pytest.fixture(scope="module")
def pods(lab: LabPaths) -> dict[str, LabPod]:
    """The lab's pods, read once while the store answers (reads fail without quorum)."""
    return {p.key: p for p in running_pods(lab)}


@pytest.fixture
def members(lab: LabPaths) -> Iterator[dict[str, etcd.Member]]:
    """The lab's members by node; every member runs again after the test, whatever it did."""
    found = {m.name.removeprefix("etcd-"): m for m in etcd.lab_members(lab, lab.load())}
    try:
        yield found
    finally:
        for node in found:
            if not member_running(lab, node):
                start_member(lab, node)
        etcd.wait_ready(lab.store_url, timeout=60)


def node_agent(lab: LabPaths, node: str) -> Agent:
    """The lab's own agent of `node`, called as a runtime would (not started or stopped here)."""
    return Agent(Netns(lab.node(node)), node, str(lab.socket(node)), lab.store_url,
                 lab.logs / f"agent-{node}.log")


def member_pid(lab: LabPaths, node: str) -> int:
    return int((lab.pids / f"etcd-{node}.pid").read_text())


def member_running(lab: LabPaths, node: str) -> bool:
    try:
        return bool(Path(f"/proc/{member_pid(lab, node)}/cmdline").read_bytes())
    except OSError:
        return False


_restarted: dict[int, subprocess.Popen[bytes]] = {}  # members this module started again


def kill_member(lab: LabPaths, node: str) -> None:
    pid = member_pid(lab, node)
    os.kill(pid, signal.SIGKILL)
    if pid in _restarted:
        _restarted.pop(pid).wait()
    else:  # started by `lab up`: not our child
        until(lambda: not Path(f"/proc/{pid}/cmdline").read_bytes(), 10, f"etcd {pid} exits")


def start_member(lab: LabPaths, node: str) -> None:
    """Start the member again on its data (etcd ignores --initial-cluster then)."""
    members = etcd.lab_members(lab, lab.load())
    (member,) = [m for m in members if m.name == f"etcd-{node}"]
    with (lab.logs / f"{member.name}.log").open("ab") as log:
        proc = subprocess.Popen(etcd.member_argv(member, members, f"podnet-{lab.name}"),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    _restarted[proc.pid] = proc
    (lab.pids / f"{member.name}.pid").write_text(f"{proc.pid}\n")  # lab down stops it


def answered(pods: dict[str, LabPod], src: str, dst: str) -> bool:
    job = ProbeJob(PodString(src), pods[src].netns, PodString(dst), pods[dst].ip, 80,
                   Protocol.TCP)
    return bool(run_probes([job], timeout=1.0)[0].connected)


def deny_ingress(*to: str) -> dict[str, object]:
    selector = {"matchExpressions": [{"key": "pod", "operator": "In", "values": list(to)}]}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "x"},
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"]}}


def put_policy(lab: LabPaths, body: dict[str, object]) -> None:
    with open_store(lab.store_url) as store:
        store.create(Key("NetworkPolicy", "x", "deny"), body)


def delete_policy(lab: LabPaths) -> None:
    with open_store(lab.store_url) as store, contextlib.suppress(NotFound):
        store.delete(Key("NetworkPolicy", "x", "deny"))


def assert_no_duplicates(lab: LabPaths) -> None:
    with open_store(lab.store_url) as store:
        leases = ipam.node_leases(store)
        subnets = [lease.subnet for lease in leases]
        assert not [(a, b) for i, a in enumerate(subnets) for b in subnets[i + 1:]
                    if a.overlaps(b)], f"overlapping node subnets: {subnets}"
        held = [r.ip for lease in leases for r in ipam.pod_allocator(store, lease).reservations()]
        assert len(held) == len(set(held)), f"an address held twice: {sorted(held)}"


def test_one_member_killed_cni_and_policies_go_on(
        lab: LabPaths, pods: dict[str, LabPod], members: dict[str, etcd.Member],
        make_netns: NetnsFactory) -> None:
    kill_member(lab, "node-3")
    # If it led, the other two elect a leader first (about a second); calls meanwhile fail
    # with code 11, which a runtime retries.
    etcd.wait_ready(lab.store_url, timeout=SETTLE)
    agent = node_agent(lab, "node-2")
    pod = make_netns("pod")
    added = agent.add("etcd-one-down", pod)
    assert added.code == 0, added.output
    assert agent.delete("etcd-one-down", pod).code == 0
    put_policy(lab, deny_ingress("b"))
    try:
        until(lambda: not answered(pods, "x/a", "x/b"), SETTLE, "a policy denies x/a -> x/b")
    finally:
        delete_policy(lab)
    until(lambda: answered(pods, "x/a", "x/b"), SETTLE, "x/a -> x/b answered again")
    assert_no_duplicates(lab)


def test_quorum_lost_add_fails_fast_pods_keep_working_then_resume(
        lab: LabPaths, pods: dict[str, LabPod], members: dict[str, etcd.Member],
        make_netns: NetnsFactory) -> None:
    put_policy(lab, deny_ingress("c"))
    until(lambda: not answered(pods, "x/a", "x/c"), SETTLE, "a policy denies x/a -> x/c")
    kill_member(lab, "node-2")
    kill_member(lab, "node-3")
    agent = node_agent(lab, "node-1")
    pod = make_netns("pod")
    began = time.monotonic()
    failed = agent.add("etcd-no-quorum", pod)
    took = time.monotonic() - began
    assert failed.code != 0 and failed.error_code == CNI_TRY_AGAIN_LATER, failed.output
    assert took < SETTLE, f"ADD without quorum took {took:.1f}s"
    assert answered(pods, "x/a", "x/b"), "a running pod lost its connectivity"
    assert not answered(pods, "x/a", "x/c"), "a running pod lost its policy"
    agent.delete("etcd-no-quorum", pod)  # as a runtime does after a failed ADD

    start_member(lab, "node-2")
    start_member(lab, "node-3")
    etcd.wait_ready(lab.store_url, timeout=60)
    delete_policy(lab)
    until(lambda: answered(pods, "x/a", "x/c"), SETTLE, "the policy's removal reaches node-3")
    added = agent.add("etcd-quorum-back", pod)
    assert added.code == 0, added.output
    assert pod_ip(added)
    assert agent.delete("etcd-quorum-back", pod).code == 0
    # The agents, never restarted, renew their node leases again.
    until(lambda: node_statuses(lab) == ["Ready"] * 3, SETTLE, "every node Ready again")
    assert_no_duplicates(lab)


def node_statuses(lab: LabPaths) -> list[str]:
    status = json.loads(podnet("lab", "status", "--lab", lab.name, "-o", "json").stdout)
    return [n["status"] for n in status["nodes"]]


def test_agent_cut_off_keeps_enforcing_and_resyncs(
        lab: LabPaths, pods: dict[str, LabPod], members: dict[str, etcd.Member],
        make_netns: NetnsFactory) -> None:
    put_policy(lab, deny_ingress("b", "c"))
    until(lambda: not answered(pods, "x/a", "x/b") and not answered(pods, "x/a", "x/c"),
          SETTLE, "a policy denies x/a -> x/b and x/c")
    node3 = Netns(lab.node("node-3"))  # its agent, and nothing else there, talks to port 2379
    node3.run("nft", "add table inet pntest; add chain inet pntest out "
              "{ type filter hook output priority 0; policy accept; }; "
              "add rule inet pntest out tcp dport 2379 drop")
    try:
        delete_policy(lab)
        until(lambda: answered(pods, "x/a", "x/b"), SETTLE, "node-2's agent lifts the policy")
        assert not answered(pods, "x/a", "x/c"), "the cut-off agent dropped what it enforced"
        failed = node_agent(lab, "node-3").add("etcd-cut-off", make_netns("pod"))
        assert failed.error_code == CNI_TRY_AGAIN_LATER, failed.output
    finally:
        node3.run("nft", "delete table inet pntest", check=False)
    until(lambda: answered(pods, "x/a", "x/c"), SETTLE, "node-3's agent catches up")
    assert_no_duplicates(lab)
