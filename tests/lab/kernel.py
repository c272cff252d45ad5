"""Tests that judge the kernel through a running lab: up and down with the CLI, the desired
policies and labels written to the lab's store, and verifications repeated until they settle.

A change reaches the kernel through the agents (informer, engine, nftables), so a test
writes the store, then verifies (engine on the store against the kernel) until the
verification matches or `convergence_bound()` has passed: the issue's 2 s.
"""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_nftables import Table, kernel_allows

from netns import PODNET, can_make_namespaces
from podnet.datapath.nft import list_table
from podnet.lab import Model
from podnet.lab.state import LabPaths, labs
from podnet.lab.truthtable import TruthTable
from podnet.lab.verify import Verification, lab_cluster, verify
from podnet.model import NAMESPACE_NAME_LABEL, Manifest, Protocol
from podnet.policy import Engine, Probe
from podnet.store import open_store
from podnet.store.apply import manifest_key, plan, validated
from podnet.store.base import Conflict, Delete, Op, ResourceStore, Update

# Every lab test: root, namespaces, and seconds to minutes.
LAB_TEST = [pytest.mark.netns, pytest.mark.slow,
            pytest.mark.skipif(not can_make_namespaces(), reason="needs root")]
PROBE_TIMEOUT = 1.0  # what a dropped probe costs; all probes of a verification run at once
CONVERGE_WITHIN = 2.0  # a change shows in the kernel within this many seconds
SPARE_LOAD = 4.0  # runnable processes per core up to which the bound holds as it is
Obj = dict[str, Any]
Labels = Mapping[str, Mapping[str, str]]


def lab_name(prefix: str) -> str:
    """Short (namespace names carry it) and unique per run."""
    return f"{prefix}{os.getpid() % 100000}"


def podnet(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([PODNET, *argv], capture_output=True, text=True, timeout=300,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"podnet {' '.join(argv)}: {done.stderr}{done.stdout}")
    return done


def lab_manifest(name: str, nodes: Sequence[str], backend: str = "vxlan") -> Obj:
    return {"apiVersion": "podnet.dev/v1alpha1", "kind": "Lab", "metadata": {"name": name},
            "spec": {"nodes": list(nodes), "backend": backend}}


@contextlib.contextmanager
def running_lab(name: str, manifests: Sequence[Obj], directory: Path) -> Iterator[LabPaths]:
    """`podnet lab up -f` the manifests (the Lab and its workloads); `podnet lab down` whatever
    happens, and proof that nothing of the lab is left."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    try:
        podnet("lab", "up", "-f", str(path))
        yield LabPaths(name)
    finally:
        podnet("lab", "down", "--name", name, check=False)
    assert name not in labs()
    assert not LabPaths(name).namespaces()


def namespace_manifests(names: Sequence[str]) -> list[Obj]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]


def pod_manifest(key: str, node: str, ports: Sequence[Obj] = ({"containerPort": 80},),
                 labels: Mapping[str, str] | None = None, host_network: bool = False) -> Obj:
    """The pod `namespace/name` on `node`, one container declaring (and so serving) `ports`."""
    namespace, name = key.split("/")
    spec: Obj = {"nodeName": node, "containers": [{"name": "c", "ports": list(ports)}]}
    if host_network:
        spec["hostNetwork"] = True
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
            "spec": spec}


def model_workloads(model: Model) -> list[Obj]:
    """The model's namespaces and pods as the lab applies them: the lab has its own nodes and
    its kubelet fills in each pod's status."""
    docs = []
    for doc in model.manifests():
        if doc["kind"] != "Node":
            docs.append({k: v for k, v in doc.items() if k != "status"})
    return docs


# -- the desired state, written to the store ------------------------------------------------


def write_state(paths: LabPaths, policies: Sequence[Obj], namespace_labels: Labels,
                pod_labels: Labels) -> float:
    """Make the store hold exactly `policies` (each with its namespace) and these labels (of the
    namespaces and pods named; others keep theirs), in one transaction; when it committed."""
    manifests = [Manifest("test", "NetworkPolicy", p["metadata"]["namespace"],
                          p["metadata"]["name"], p) for p in policies]
    checked = validated(manifests)
    with open_store(paths.store_url) as store:
        for _ in range(10):
            ops = _state_ops(store, checked, namespace_labels, pod_labels)
            try:
                if ops:
                    store.commit(ops)
                return time.monotonic()
            except Conflict:  # the kubelet wrote a pod's status meanwhile
                continue
    raise AssertionError("the store kept changing while the test wrote its state")


def _state_ops(store: ResourceStore, policies: Sequence[Manifest], namespace_labels: Labels,
               pod_labels: Labels) -> list[Op]:
    ops: list[Op] = list(plan(store, policies)[0])
    wanted = {manifest_key(m) for m in policies}
    ops += [Delete(r.key, r.revision) for r in store.list("NetworkPolicy").items
            if r.key not in wanted]
    for r in store.list("Namespace").items:
        if r.name in namespace_labels:
            labels = {**namespace_labels[r.name], NAMESPACE_NAME_LABEL: r.name}
            ops += _relabel(r.key, r.body, r.revision, r.labels, labels)
    for r in store.list("Pod").items:
        if f"{r.namespace}/{r.name}" in pod_labels:
            labels = dict(pod_labels[f"{r.namespace}/{r.name}"])
            ops += _relabel(r.key, r.body, r.revision, r.labels, labels)
    return ops


def _relabel(key: Any, body: Mapping[str, Any], revision: int, current: Mapping[str, str],
             labels: dict[str, str]) -> list[Op]:
    if dict(current) == labels:
        return []
    changed = copy.deepcopy(dict(body))
    changed.setdefault("metadata", {})["labels"] = labels
    return [Update(key, changed, revision)]


# -- verifications ----------------------------------------------------------------------------


def verify_tables(paths: LabPaths, port: int, protocol: Protocol) -> Verification:
    """The engine against the tables the nodes' kernels hold (`nft -j list table`), evaluated
    packet by packet: the judge for SCTP, which has no sockets on this kernel."""
    with open_store(paths.store_url) as store:
        cluster, endpoints = lab_cluster(store)
    probe = Probe(port, protocol)
    (matrix,) = Engine(cluster).matrix([probe])
    veths = {ep.pod: ep.host_ifname for ep in endpoints if ep.pod}
    tables = {node: Table(list_table(paths.netns_path(paths.node(node))))
              for node in paths.load().nodes}
    pods = sorted(p.key for p in cluster.pods)
    expected, observed = TruthTable(pods), TruthTable(pods)
    for src in cluster.pods:
        for dst in cluster.pods:
            expected.set(src.key, dst.key, matrix.allowed[src.key][dst.key])
            # A pod reaches itself over its loopback: no node, no table on the way.
            observed.set(src.key, dst.key, src.key == dst.key or kernel_allows(
                tables, veths, src, dst, protocol, port))
    return Verification(probe, expected, observed)


def verify_kernel(paths: LabPaths, ports: Sequence[int], protocols: Sequence[Protocol]
                  ) -> list[Verification]:
    """The engine against the kernel for every port and protocol: TCP and UDP probed from every
    pod to every pod (all at once), SCTP read from the tables."""
    probed = [p for p in protocols if p is not Protocol.SCTP]
    found = verify(paths, ports, probed, PROBE_TIMEOUT)[1] if probed else []
    if Protocol.SCTP in protocols:
        found += [verify_tables(paths, port, Protocol.SCTP) for port in ports]
    return found


def convergence_bound() -> float:
    """`CONVERGE_WITHIN`, stretched in proportion when the machine is oversubscribed beyond
    `SPARE_LOAD` per core (this one is shared: at a load of 35 on 2 cores the agents and the
    probe servers wait seconds for a CPU, and an answer can miss a probe's timeout)."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return CONVERGE_WITHIN * max(1.0, load / SPARE_LOAD)


def settle(paths: LabPaths, ports: Sequence[int], protocols: Sequence[Protocol], since: float,
           done: Callable[[list[Verification]], bool] = lambda vs: not any(v.mismatches for v in vs)
           ) -> tuple[list[Verification], float | None]:
    """Verify until `done` (default: kernel == engine everywhere), starting rounds for
    `convergence_bound()` seconds after `since`; the last verifications, and how long after
    `since` the round that was done started (None: never done)."""
    bound = convergence_bound()
    while True:
        started = time.monotonic()
        verifications = verify_kernel(paths, ports, protocols)
        if done(verifications):
            return verifications, started - since
        if time.monotonic() - since >= bound:
            return verifications, None


def converge(paths: LabPaths, policies: Sequence[Obj], namespace_labels: Labels | None = None,
             pod_labels: Labels | None = None, ports: Sequence[int] = (80,),
             protocols: Sequence[Protocol] = (Protocol.TCP,)) -> list[Verification]:
    """Write the state, then fail unless the kernel agrees with the engine on it in time."""
    since = write_state(paths, policies, namespace_labels or {}, pod_labels or {})
    verifications, after = settle(paths, ports, protocols, since)
    assert after is not None, f"no agreement within {convergence_bound():.1f}s:\n" + "\n\n".join(
        report(v) for v in verifications if v.mismatches)
    return verifications


def report(verification: Verification) -> str:
    """The three tables, engine (expected) against kernel (observed), as upstream prints them."""
    v = verification
    lines = [f"{v.probe}: {len(v.mismatches)} mismatches: "
             + ", ".join(f"{s} -> {d}" for s, d in v.mismatches)]
    for title, table in (("expected (engine)", v.expected), ("observed (kernel)", v.observed),
                         ("comparison", v.expected.compare(v.observed))):
        lines += ["", f"{title}:", table.pretty("  ")]
    return "\n".join(lines)
