"""Hypothesis against the kernel: random valid policies and labels on a small lab, and the
kernel's verdict equals the engine's on every pair, port and protocol.

The policies come from the strategy of tests/policy/test_engine_vs_oracle.py (both selectors
and their operators, ipBlocks with excepts, TCP/UDP/SCTP, numbered, ranged and named ports,
defaulted and explicit policyTypes), and so do the pods' and namespaces' labels. The lab is
drawn once: two nodes, four pods over namespaces x, y, z, two on each node, whose named
ports `http` and `dns` mean different numbers and protocols on each pod, and a host-network
pod on node-1. Each example writes its state to the store; the agents must bring the kernel
to the engine's verdicts within 2 s: TCP and UDP probed from every pod to every pod on ports
80-82, SCTP read from the nodes' tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kernel import (
    LAB_TEST,
    converge,
    lab_manifest,
    lab_name,
    namespace_manifests,
    pod_manifest,
    running_lab,
)
from test_engine_vs_oracle import labels, policies

from podnet.lab.pods import running_pods
from podnet.lab.state import LabPaths
from podnet.model import Protocol

pytestmark = LAB_TEST

NAMESPACES = ("x", "y", "z")
PORTS = (80, 81, 82)
PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)


def port(number: int, protocol: str, name: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"containerPort": number, "protocol": protocol}
    return {**found, "name": name} if name else found


# pod: (node, containerPorts); `http` and `dns` differ from pod to pod. z/host is in its
# node's network (selectors never pick it, ipBlocks of 192.0.2.0/24 do; node-1's own traffic).
HOST = "z/host"
PODS = {
    HOST: ("node-1", [port(81, "TCP", "http"), port(82, "UDP", "dns")]),
    "x/p0": ("node-1", [port(80, "TCP", "http"), port(81, "UDP", "dns"), port(81, "TCP"),
                        port(80, "UDP")]),
    "x/p1": ("node-2", [port(81, "TCP", "http"), port(80, "UDP", "dns"), port(80, "TCP")]),
    "y/p2": ("node-1", [port(82, "TCP", "http"), port(82, "UDP", "dns"), port(80, "TCP"),
                        port(81, "UDP")]),
    "z/p3": ("node-2", [port(80, "TCP", "http"), port(80, "SCTP", "dns"), port(82, "UDP")]),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("dif")
    workloads = [*namespace_manifests(NAMESPACES),
                 *(pod_manifest(key, node, ports, host_network=key == HOST)
                   for key, (node, ports) in PODS.items())]
    with running_lab(name, [lab_manifest(name, ("node-1", "node-2")), *workloads],
                     tmp_path_factory.mktemp("dif")) as paths:
        assert sorted(p.key for p in running_pods(paths)) == sorted(PODS)
        yield paths


@st.composite
def states(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Policies, namespace labels and pod labels, as the policy tests draw them."""
    drawn = [draw(policies(i, draw(st.sampled_from(NAMESPACES))))
             for i in range(draw(st.integers(1, 4)))]
    for policy in drawn:
        policy["apiVersion"] = "networking.k8s.io/v1"
    namespace_labels = {ns: draw(labels) for ns in NAMESPACES}
    pod_labels = {pod: draw(labels) for pod in PODS}
    return drawn, namespace_labels, pod_labels


# No shrinking: each example costs a convergence and a round of probes, and a failure's report
# already shows the policies, the labels and the three tables of every mismatched probe.
@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(state=states())
def test_the_kernel_decides_as_the_engine(
    lab: LabPaths, state: tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]
) -> None:
    converge(lab, *state, ports=PORTS, protocols=PROTOCOLS)
