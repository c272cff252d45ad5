"""The policy engine: a cluster in, verdicts, matrices and connectivity out."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import numpy.typing as npt

from podnet.errors import PodnetError
from podnet.model import Cluster, Protocol
from podnet.policy.classes import ClassMatrices
from podnet.policy.connectivity import Connectivity, Probe, ProbeMatrix, probe_matrices
from podnet.policy.resolve import Resolution
from podnet.policy.selection import PodSelection
from podnet.policy.verdict import Endpoint, Verdict, verdict


class UnknownEndpoint(PodnetError, LookupError):
    """An endpoint that is neither a pod of the cluster (`ns/name`) nor an IP address."""


class Engine:
    """NetworkPolicy semantics over one cluster; selectors are resolved once, at creation."""

    def __init__(self, cluster: Cluster, selection: PodSelection | None = None) -> None:
        self.cluster = cluster
        self.resolution = Resolution(cluster, selection)

    @cached_property
    def _matrices(self) -> ClassMatrices:
        return ClassMatrices(self.resolution)

    def verdict(self, src: Endpoint, dst: Endpoint, port: int,
                protocol: Protocol = Protocol.TCP) -> Verdict:
        return verdict(self.resolution, src, dst, port, protocol)

    def matrix(self, probes: Sequence[Probe]) -> list[ProbeMatrix]:
        return probe_matrices(self._matrices, probes)

    def class_matrix(self, probe: Probe) -> npt.NDArray[np.bool_]:
        """`probe`'s verdict between pod classes (`resolution.members`), [source, destination]:
        the matrix of pods without one entry per pod pair. A class with itself stands for two
        of its pods; a pod with itself (loopback) is not in it."""
        m = self._matrices
        pods = m.pod_classes
        return m.table.allows(probe.protocol, probe.port)[m.allowed[:pods, :pods]]

    def connectivity(self) -> Connectivity:
        return Connectivity(self._matrices)

    def endpoint(self, text: str) -> Endpoint:
        """`ns/name` names a pod; an IP address names itself, or the pod that has it."""
        index = self.resolution.pod_index
        if text in index:
            return self.resolution.pods[index[text]]
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise UnknownEndpoint(f"{text!r} is neither a pod (namespace/name) of these "
                                  "manifests nor an IP address") from None
        for pod in self.resolution.pods:
            if address in pod.ips and not pod.host_network:
                return pod
        return address
