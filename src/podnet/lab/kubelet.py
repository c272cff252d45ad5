"""The lab's kubelet (with its controller manager and scheduler): pods in the store become
network namespaces wired by the real `podnet-cni`, serving their ports.

For each pod placed on a node it does what a container runtime does: create the pod's
namespace, run `podnet-cni ADD` inside the node's namespace with the CNI environment, and
report the address in the pod's status; on deletion, `DEL` and remove the namespace. A
host-network pod gets no namespace: it lives in its node's. Each pod's declared
containerPorts are served by one `ProbeServer` for the whole lab, answering with the pod's
name and the address it saw.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from podnet.agent.informer import Informer, Snapshot
from podnet.lab.controllers import controller_changes, is_controller, schedule
from podnet.lab.probeserver import ProbeServer
from podnet.lab.state import LabPaths, node_address
from podnet.lab.underlay import create_netns, delete_netns
from podnet.model import Protocol
from podnet.model.lab import Lab
from podnet.model.workloads import WORKLOAD_KINDS
from podnet.store import Key, modify
from podnet.store.base import Conflict, NotFound, Store

log = logging.getLogger(__name__)

CNI_VERSION = "1.1.0"
IFNAME = "eth0"
CONTAINER_ID = "podnet.dev/container-id"


class KubeletError(Exception):
    """Some pods could not be started or stopped; the reconciliation is retried."""


@dataclass(frozen=True)
class PodPlan:
    """What the kubelet runs for a pod; a change of any field replaces the pod."""

    namespace: str
    name: str
    node: str
    host_network: bool
    ports: tuple[tuple[int, Protocol], ...]
    created: int  # the store revision that created this pod object: one per incarnation

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def container_id(self) -> str:
        digest = hashlib.sha256(f"{self.key}/{self.created}".encode()).hexdigest()
        return digest[:32]


class Kubelet:
    def __init__(self, paths: LabPaths, lab: Lab, store: Store, workers: int = 8) -> None:
        self.paths = paths
        self.lab = lab
        self.store = store
        self.server = ProbeServer()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="kubelet")
        self.running: dict[str, PodPlan] = {}
        self.cni = str(Path(sys.executable).with_name("podnet-cni"))

    def reconcile(self, snapshot: Snapshot) -> None:
        pods = snapshot["Pod"]
        bodies = [r.body for r in pods.values()]
        controllers = [r.body for kind in WORKLOAD_KINDS for r in snapshot[kind].values()]
        changes = controller_changes(controllers, bodies, self.lab.nodes)
        for body in changes.create:
            self._write(self.store.create, _key(body), body)
        for namespace, name in changes.delete:
            self._write(self.store.delete, Key("Pod", namespace, name))
        for (namespace, name), node in schedule(bodies, self.lab.nodes).items():
            self._write(modify, self.store, Key("Pod", namespace, name),
                        partial(_place, node=node))
        if changes.create or changes.delete:
            return  # the pods changed: the next snapshot has them
        wanted = {p.key: p for p in (self._plan(r.body, r.created) for r in pods.values()) if p}
        stale = [p for key, p in self.running.items() if wanted.get(key) != p]
        fresh = [p for key, p in wanted.items() if self.running.get(key) != p]
        failures = [f for f in self.pool.map(self._stop, stale) if f]
        failures += [f for f in self.pool.map(self._start, fresh) if f]
        if failures:
            raise KubeletError("; ".join(failures))

    def _plan(self, body: Mapping[str, Any], created: int) -> PodPlan | None:
        meta, spec = body["metadata"], body.get("spec") or {}
        node = spec.get("nodeName")
        if node not in self.lab.nodes:
            return None
        ports = []
        for c in spec.get("containers") or []:
            for p in c.get("ports") or []:
                protocol = Protocol(p.get("protocol", "TCP"))
                if protocol is Protocol.SCTP:
                    log.warning("%s/%s: SCTP port %s not served (no SCTP sockets here)",
                                meta.get("namespace"), meta["name"], p["containerPort"])
                    continue
                ports.append((int(p["containerPort"]), protocol))
        return PodPlan(meta.get("namespace", "default"), meta["name"], node,
                       bool(spec.get("hostNetwork")), tuple(sorted(set(ports))), created)

    def _start(self, plan: PodPlan) -> str | None:
        try:
            if plan.host_network:
                netns = self.paths.netns_path(self.paths.node(plan.node))
                ip = node_address(self.lab.nodes.index(plan.node))
            else:
                netns = self.paths.netns_path(self.paths.pod(plan.namespace, plan.name))
                if not os.path.exists(netns):
                    create_netns(self.paths.pod(plan.namespace, plan.name))
                ip = self._cni("ADD", plan)["ips"][0]["address"].split("/")[0]
            self.server.add(plan.key, netns, plan.ports)
            self.running[plan.key] = plan
            self._write(modify, self.store, Key("Pod", plan.namespace, plan.name),
                        partial(_set_status, plan=plan, ip=ip, host_ip=self._node_ip(plan)))
            log.info("pod %s on %s: %s", plan.key, plan.node, ip)
            return None
        except (OSError, KubeletError, KeyError, ValueError) as err:
            log.error("pod %s: cannot start: %s", plan.key, err)
            return f"{plan.key}: {err}"

    def _stop(self, plan: PodPlan) -> str | None:
        try:
            self.server.remove(plan.key)
            if not plan.host_network:
                self._cni("DEL", plan)
                delete_netns(self.paths.pod(plan.namespace, plan.name))
            del self.running[plan.key]
            log.info("pod %s stopped", plan.key)
            return None
        except (OSError, KubeletError) as err:
            log.error("pod %s: cannot stop: %s", plan.key, err)
            return f"{plan.key}: {err}"

    def _cni(self, command: str, plan: PodPlan) -> dict[str, Any]:
        """Run podnet-cni inside the node's namespace, as a runtime would."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": plan.container_id,
            "CNI_NETNS": self.paths.netns_path(self.paths.pod(plan.namespace, plan.name)),
            "CNI_IFNAME": IFNAME,
            "CNI_PATH": str(Path(self.cni).parent),
            "CNI_ARGS": f"K8S_POD_NAMESPACE={plan.namespace};K8S_POD_NAME={plan.name};"
                        f"K8S_POD_INFRA_CONTAINER_ID={plan.container_id}",
        }
        conf = {"cniVersion": CNI_VERSION, "name": "podnet", "type": "podnet-cni",
                "socket": str(self.paths.socket(plan.node))}
        node_netns = self.paths.netns_path(self.paths.node(plan.node))
        done = subprocess.run(["nsenter", f"--net={node_netns}", self.cni], env=env,
                              input=json.dumps(conf), capture_output=True, text=True,
                              timeout=30, check=False)
        if done.returncode != 0:
            raise KubeletError(f"CNI {command} failed: {done.stdout.strip() or done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
        return result

    def _node_ip(self, plan: PodPlan) -> str:
        return node_address(self.lab.nodes.index(plan.node))

    def _write(self, call: Callable[..., object], *args: object) -> None:
        """A store write whose object moved meanwhile: the next snapshot decides again."""
        try:
            call(*args)
        except (Conflict, NotFound) as err:
            log.info("store changed under us (%s); reconciling again", err)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.server.close()


def _place(body: dict[str, Any], node: str) -> None:
    body.setdefault("spec", {})["nodeName"] = node


def _set_status(body: dict[str, Any], plan: PodPlan, ip: str, host_ip: str) -> None:
    body.setdefault("metadata", {}).setdefault("annotations", {})[CONTAINER_ID] = \
        plan.container_id
    body["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                      "hostIP": host_ip}


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return Key(str(body["kind"]), meta.get("namespace", "default"), meta["name"])


def run(paths: LabPaths, stop: threading.Event) -> None:
    """The kubelet process: follow the lab's store until `stop`."""
    from podnet.store import open_store

    lab = paths.load()
    store = open_store(paths.store_url)
    kubelet = Kubelet(paths, lab, store)
    informer = Informer(store, ["Pod", *WORKLOAD_KINDS], kubelet.reconcile)
    try:
        informer.run(stop)
    finally:
        kubelet.close()
        store.close()


__all__ = ["Kubelet", "KubeletError", "PodPlan", "is_controller", "run"]
