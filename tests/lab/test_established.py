"""A connection established while policy allowed it keeps flowing after a policy denies it;
new connections of the same flow are dropped (docs/datapath.md, "Existing connections").

A 2-node lab: the client x/a on node-1, servers y/b on node-2 (the connection crosses the
VXLAN overlay) and y/c on node-1 (it stays on one node). The test opens its own long-lived
TCP connection and UDP flow from the client to a server, then denies both sides (all egress
of namespace x, all ingress of namespace y) and waits until the kernel drops new probes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from kernel import (
    LAB_TEST,
    converge,
    lab_manifest,
    lab_name,
    namespace_manifests,
    pod_manifest,
    running_lab,
)

from podnet.datapath.netns import socket_in
from podnet.lab.pods import LabPod, running_pods
from podnet.lab.state import LabPaths
from podnet.model import Protocol

pytestmark = LAB_TEST

PORT = 9000  # not a port the lab serves: the test owns both ends
TIMEOUT = 2.0
PODS = {"x/a": "node-1", "y/b": "node-2", "y/c": "node-1"}
DENY = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "deny-egress", "namespace": "x"},
     "spec": {"podSelector": {}, "policyTypes": ["Egress"]}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
     "metadata": {"name": "deny-ingress", "namespace": "y"},
     "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("est")
    workloads = [*namespace_manifests("xy"), *(pod_manifest(k, n) for k, n in PODS.items())]
    with running_lab(name, [lab_manifest(name, ("node-1", "node-2")), *workloads],
                     tmp_path_factory.mktemp("est")) as paths:
        yield paths


@pytest.fixture
def pods(lab: LabPaths) -> Iterator[dict[str, LabPod]]:
    yield {p.key: p for p in running_pods(lab)}
    converge(lab, [])


class Flow:
    """Both ends of one connection (TCP) or flow (UDP) between two pods, owned by the test."""

    def __init__(self, client: LabPod, server: LabPod, protocol: Protocol) -> None:
        kind = socket.SOCK_STREAM if protocol is Protocol.TCP else socket.SOCK_DGRAM
        self.protocol = protocol
        self.address = (str(server.ip), PORT)
        self.listener = socket_in(server.netns, socket.AF_INET, kind)
        self.listener.bind(("0.0.0.0", PORT))
        self.client = socket_in(client.netns, socket.AF_INET, kind)
        self.client_netns = client.netns
        for s in (self.listener, self.client):
            s.settimeout(TIMEOUT)
        if protocol is Protocol.TCP:
            self.listener.listen()
            self.client.connect(self.address)
            self.server, _ = self.listener.accept()
            self.server.settimeout(TIMEOUT)
        else:
            self.client.connect(self.address)
            self.server = self.listener
        self.peer = self.client.getsockname()

    def exchange(self, what: bytes) -> tuple[bytes, bytes]:
        """`what` to the server and back; what each side received."""
        self.client.sendall(what)
        if self.protocol is Protocol.TCP:
            request = self.server.recv(len(what))
            self.server.sendall(request)
        else:
            request, self.peer = self.server.recvfrom(len(what))
            self.server.sendto(request, self.peer)
        return request, self.client.recv(len(what))

    def new_one_answered(self) -> bool:
        """Whether a new connection (TCP) or a new flow from another port (UDP) gets through."""
        kind = socket.SOCK_STREAM if self.protocol is Protocol.TCP else socket.SOCK_DGRAM
        with socket_in(self.client_netns, socket.AF_INET, kind) as fresh:
            fresh.settimeout(1.0)
            try:
                fresh.connect(self.address)
                if self.protocol is Protocol.UDP:
                    fresh.send(b"new")
                    self.server.settimeout(1.0)
                    self.server.recvfrom(16)
            except TimeoutError:
                return False
            finally:
                self.server.settimeout(TIMEOUT)
            return True

    def close(self) -> None:
        for s in {self.client, self.server, self.listener}:
            s.close()


@pytest.mark.parametrize("server", ["y/b", "y/c"], ids=["across-nodes", "same-node"])
@pytest.mark.parametrize("protocol", [Protocol.TCP, Protocol.UDP], ids=str)
def test_an_established_connection_survives_a_denying_policy(
    lab: LabPaths, pods: dict[str, LabPod], server: str, protocol: Protocol
) -> None:
    flow = Flow(pods["x/a"], pods[server], protocol)
    try:
        assert flow.exchange(b"before") == (b"before", b"before")
        (verification,) = converge(lab, DENY)  # new connections are dropped now
        assert not verification.observed.get("x/a", server)
        assert not flow.new_one_answered(), "the policy does not deny new connections"
        for i in range(3):
            message = f"after {i}".encode()
            assert flow.exchange(message) == (message, message)
    finally:
        flow.close()
