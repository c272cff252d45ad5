"""The agent's life: register the node, prepare it, reconcile with what the store recorded, serve.

The agent runs in whatever network namespace it is started in, and that namespace is the node;
it refuses to start in the host's root namespace. Stopping it leaves every pod wired: the kernel
holds the datapath, the store holds the endpoints, and the next agent re-reads both.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from podnet import ipam
from podnet.agent import server, wiring
from podnet.agent.endpoints import leaked_veths
from podnet.agent.env import Env
from podnet.agent.flows import FLOW_LOG_GROUP, FlowLog
from podnet.agent.liveness import NodeLeaseKeeper
from podnet.agent.metrics_http import MetricsTls
from podnet.agent.metrics_http import serve as serve_metrics
from podnet.agent.overlay import OverlaySync, start_overlay
from podnet.agent.policy import PolicySync
from podnet.datapath import routes, sysctl, veth
from podnet.datapath.netns import DatapathError, assert_not_root, current_netns, rtnl
from podnet.datapath.overlay import BACKENDS, find_underlay
from podnet.model import nodelease
from podnet.store import open_store

log = logging.getLogger(__name__)

DEFAULT_MTU = 1450  # without an underlay to measure: room for VXLAN on a 1500-byte network

@dataclass(frozen=True)
class AgentConfig:
    node: str
    store_url: str | None
    socket: str
    cluster_cidr: ipaddress.IPv4Network | None = None
    subnet_prefix: int | None = None
    mtu: int | None = None  # None: what the backend leaves of the underlay's MTU
    backend: str = "vxlan"
    iface: str | None = None  # the underlay interface; None: the default route's
    flow_log: str | None = None  # append each policy decision here (agent/flows.py)
    metrics_address: tuple[ipaddress.IPv4Address, int] | None = None  # serve /metrics here
    metrics_tls: MetricsTls | None = None  # serve it over HTTPS
    node_lease_duration: int = nodelease.DEFAULT_DURATION  # seconds without renewal: NotReady
    node_lease_renew_interval: float | None = None  # None: a third of the duration


@dataclass
class Node:
    """A started agent: the CNI handlers' Env and the overlay's reconciler."""

    env: Env
    overlay: OverlaySync | None


def start(config: AgentConfig) -> Node:
    """Register the node and prepare its namespace (and overlay); ready to serve."""
    assert_not_root(current_netns())
    store = open_store(config.store_url)
    if config.cluster_cidr is not None:
        wanted = ipam.ClusterConfig(config.cluster_cidr)
        if config.subnet_prefix is not None:
            wanted = ipam.ClusterConfig(config.cluster_cidr, config.subnet_prefix)
        ipam.ensure_cluster_config(store, wanted)
    lease = ipam.register_node(store, config.node)
    sysctl.enable_forwarding()
    backend = None
    with rtnl() as handle:
        try:
            backend = BACKENDS[config.backend](find_underlay(handle, config.iface))
        except DatapathError as err:
            if config.iface is not None:
                raise
            log.warning("%s: this node will not reach pods of other nodes", err)
        else:
            # Other nodes learn from the lease how to reach this one (address, VTEP MAC).
            lease = ipam.register_node(store, config.node, backend.setup(handle, lease.subnet))
    mtu = config.mtu or (backend.pod_mtu() if backend else DEFAULT_MTU)
    env = Env(config.node, store, lease, mtu)
    routes.bring_up_loopback(env.netlink())
    resync(env)
    log.info("node %s: subnet %s, %s, pod MTU %d, serving %s", config.node, lease.subnet,
             f"{backend.name} over {lease.attrs.get('publicIP')}" if backend else "no overlay",
             env.mtu, config.socket)
    return Node(env, OverlaySync(config.node, backend, env.rtnl) if backend else None)


def resync(env: Env) -> None:
    """After a restart: remove veths no endpoint owns, re-assert proxy ARP on the rest."""
    recorded = env.endpoints()
    node = env.rtnl()
    for name in leaked_veths(recorded, veth.list_host_veths(node)):
        log.warning("removing leaked veth %s (no endpoint recorded)", name)
        wiring.unwire_pod(env.netlink(), name)
    for ep in recorded:
        link = veth.get_link(node, ep.host_ifname)
        if link is None:
            log.warning("endpoint %s: veth %s is gone (pod deleted while the agent was down; "
                        "DEL or GC will release %s)", ep.name, ep.host_ifname, ep.ip)
        else:
            env.netlink().run(*routes.answer_arp(link.index))


def run(config: AgentConfig) -> int:
    """Serve until SIGTERM or SIGINT."""
    node = start(config)
    env = node.env
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    flows = (FlowLog(Path(config.flow_log), config.node, metrics=env.metrics)
             if config.flow_log else None)
    stop_metrics = (serve_metrics(env.metrics, *config.metrics_address, config.metrics_tls)
                    if config.metrics_address else lambda: None)
    sock = server.listen(config.socket)  # first: it refuses if another agent serves there
    # Its own store connection: a renewal waiting on an unreachable store holds up nothing else.
    lease_store = open_store(config.store_url)
    liveness = NodeLeaseKeeper(lease_store, config.node,
                               config.node_lease_duration,
                               config.node_lease_renew_interval or config.node_lease_duration / 3,
                               env.metrics)
    liveness.start(stop)  # the node is Ready before the agent serves
    if node.overlay is not None:
        start_overlay(env.store, node.overlay, stop)
    policy = PolicySync(config.node, env.store, FLOW_LOG_GROUP if flows else None, env.metrics)
    env.admit = policy.admit
    if flows is not None:
        flows.start(stop)
    policy.start(stop)
    try:
        server.serve(sock, env, stop)
    finally:
        stop.set()
        liveness.release()
        lease_store.close()
        stop_metrics()
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(config.socket)  # STATUS now says "not available" at once
        env.close()
        env.store.close()
    log.info("node %s: agent stopped; pods keep their network", config.node)
    return 0
