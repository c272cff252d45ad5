"""Keeps the node's routes to the other nodes' subnets equal to the subnet leases in the store.

Like flannel's LeaseWatcher, the decision is a pure diff between the peers the kernel was
given and the peers the leases describe; only the diff touches the kernel. A node joining
adds its entries on every other node, a node leaving (its lease deleted) removes them, and
a lease whose address or VTEP changed is removed and added again.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from pyroute2 import IPRoute

from podnet import ipam
from podnet.agent.informer import Informer, Snapshot
from podnet.datapath.overlay import Backend, Peer
from podnet.store.base import ResourceStore

log = logging.getLogger(__name__)


def peers_from(leases: Iterable[ipam.SubnetLease], local_node: str, backend: str
               ) -> dict[str, Peer]:
    """The remote nodes this node must reach, from their leases (same backend only)."""
    peers = {}
    for lease in leases:
        if lease.node == local_node:
            continue
        attrs = lease.attrs
        if attrs.get("backend") != backend or "publicIP" not in attrs:
            log.warning("node %s: lease has no %s attributes yet; not reachable", lease.node,
                        backend)
            continue
        peers[lease.node] = Peer(lease.node, lease.subnet,
                                 ipaddress.IPv4Address(attrs["publicIP"]), attrs.get("vtepMAC"))
    return peers


def diff(current: Mapping[str, Peer], desired: Mapping[str, Peer]
         ) -> tuple[list[Peer], list[Peer]]:
    """(to remove, to add); a changed peer is in both."""
    remove = [p for n, p in current.items() if desired.get(n) != p]
    add = [p for n, p in desired.items() if current.get(n) != p]
    return remove, add


class OverlaySync:
    """The reconciler: a snapshot of the leases in, kernel entries out."""

    def __init__(self, node: str, backend: Backend, rtnl: Callable[[], IPRoute]) -> None:
        self.node = node
        self.backend = backend
        self.rtnl = rtnl
        self.peers: dict[str, Peer] = {}

    def __call__(self, snapshot: Snapshot) -> None:
        leases = [ipam.lease_of(r) for r in snapshot[ipam.LEASE_KIND].values()]
        remove, add = diff(self.peers, peers_from(leases, self.node, self.backend.name))
        if not remove and not add:
            return
        node = self.rtnl()
        for peer in remove:
            self.backend.remove_peer(node, peer)
            del self.peers[peer.node]
            log.info("overlay: removed node %s (%s)", peer.node, peer.subnet)
        for peer in add:
            self.backend.add_peer(node, peer)
            self.peers[peer.node] = peer
            log.info("overlay: %s reachable via %s", peer.subnet, peer.public_ip)


def start_overlay(store: ResourceStore, sync: OverlaySync, stop: threading.Event
                  ) -> threading.Thread:
    """Follow the leases in a thread until `stop` is set."""
    informer = Informer(store, [ipam.LEASE_KIND], sync)
    thread = threading.Thread(target=informer.run, args=(stop,), name="podnet-overlay",
                              daemon=True)
    thread.start()
    return thread
