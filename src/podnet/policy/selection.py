"""Which pods a selector or an ipBlock matches, for all pods at once.

Labels are indexed per key as integer codes in a numpy column, so a requirement costs one
vectorised comparison over every pod, and each distinct selector is evaluated once. Host
network pods are never matched by selectors ("selectors match pods only"); ipBlocks match
any pod address, host network pods included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from podnet.model import (
    IPBlock,
    IPNetwork,
    LabelSelector,
    Namespace,
    Operator,
    Peer,
    Pod,
    Requirement,
)

Mask = npt.NDArray[np.bool_]


class PodSelection:
    """Selectors and ipBlocks evaluated over a fixed list of pods, with caching."""

    def __init__(self, pods: Sequence[Pod], namespaces: dict[str, Namespace]) -> None:
        self.pods = pods
        self.namespaces = namespaces
        count = len(pods)
        self._selectable = np.array([not p.host_network for p in pods], dtype=bool)
        ns_names = sorted({p.namespace for p in pods} | set(namespaces))
        self._ns_code = {name: i for i, name in enumerate(ns_names)}
        self._pod_ns = np.array([self._ns_code[p.namespace] for p in pods], dtype=np.int32)
        self._columns: dict[str, tuple[npt.NDArray[np.int32], dict[str, int]]] = {}
        for i, pod in enumerate(pods):
            for key, value in pod.labels.items():
                column = self._columns.get(key)
                if column is None:
                    column = (np.full(count, -1, dtype=np.int32), {})
                    self._columns[key] = column
                codes, values = column
                codes[i] = values.setdefault(value, len(values))
        self._ipv4 = np.array([_ipv4_int(p) for p in pods], dtype=np.int64)
        self._cache: dict[object, Mask] = {}

    def serves(self, pods: Sequence[Pod], namespaces: dict[str, Namespace]) -> bool:
        """Whether this selection is the one of these pods and namespaces (its cache holds)."""
        return tuple(self.pods) == tuple(pods) and self.namespaces == namespaces

    def none(self) -> Mask:
        return np.zeros(len(self.pods), dtype=bool)

    def in_namespace(self, namespace: str) -> Mask:
        result: Mask = self._pod_ns == self._ns_code.get(namespace, -1)
        return result

    def peer(self, peer: Peer, policy_namespace: str) -> Mask:
        """The pods one `from`/`to` entry matches."""
        if peer.ip_block is not None:
            return self.ip_block(peer.ip_block)
        key = ("peer", peer.pod_selector, peer.namespace_selector,
               None if peer.namespace_selector else policy_namespace)
        cached = self._cache.get(key)
        if cached is None:
            if peer.namespace_selector is None:
                # "If namespaceSelector is also not set, the pods are selected in the
                # policy's own namespace."
                namespaces = self.in_namespace(policy_namespace)
            else:
                namespaces = self.namespaces_matching(peer.namespace_selector)
            pods = self.labels(peer.pod_selector) if peer.pod_selector is not None else True
            cached = np.asarray(namespaces & pods & self._selectable, dtype=bool)
            self._cache[key] = cached
        return cached

    def subjects(self, selector: LabelSelector, namespace: str) -> Mask:
        """The pods a policy's podSelector selects: only in the policy's own namespace."""
        key = ("subjects", selector, namespace)
        cached = self._cache.get(key)
        if cached is None:
            cached = self.in_namespace(namespace) & self.labels(selector) & self._selectable
            self._cache[key] = cached
        return cached

    def namespaces_matching(self, selector: LabelSelector) -> Mask:
        key = ("ns", selector)
        cached = self._cache.get(key)
        if cached is None:
            codes = [self._ns_code[ns.name] for ns in self.namespaces.values()
                     if selector.matches(ns.labels)]
            cached = np.isin(self._pod_ns, np.array(codes, dtype=np.int32))
            self._cache[key] = cached
        return cached

    def labels(self, selector: LabelSelector) -> Mask:
        key = ("labels", selector)
        cached = self._cache.get(key)
        if cached is None:
            cached = np.ones(len(self.pods), dtype=bool)
            for requirement in selector.requirements:
                cached &= self._requirement(requirement)
            self._cache[key] = cached
        return cached

    def _requirement(self, r: Requirement) -> Mask:
        column = self._columns.get(r.key)
        if column is None:
            present = self.none()
            return ~present if r.operator in (Operator.NOT_IN, Operator.DOES_NOT_EXIST) else present
        codes, values = column
        if r.operator is Operator.EXISTS:
            return codes >= 0
        if r.operator is Operator.DOES_NOT_EXIST:
            return codes < 0
        wanted = np.array([values[v] for v in r.values if v in values], dtype=np.int32)
        matched: Mask = np.isin(codes, wanted)
        # NotIn also matches pods without the key.
        return matched if r.operator is Operator.IN else ~matched

    def ip_block(self, block: IPBlock) -> Mask:
        key = ("ipBlock", block)
        cached = self._cache.get(key)
        if cached is None:
            if block.cidr.version == 4 and not any(e.version == 6 for e in block.except_):
                cached = in_v4(self._ipv4, block.cidr)
                for excluded in block.except_:
                    cached &= ~in_v4(self._ipv4, excluded)
            else:
                cached = np.array([any(block.contains(ip) for ip in p.ips) for p in self.pods],
                                  dtype=bool)
            self._cache[key] = cached
        return cached


def _ipv4_int(pod: Pod) -> int:
    for ip in pod.ips:
        if ip.version == 4:
            return int(ip)
    return -1


def in_v4(addresses: npt.NDArray[np.int64], network: IPNetwork) -> Mask:
    """Which of the IPv4 addresses (as integers, -1 for none) lie in `network`."""
    mask = int(network.netmask)
    base = int(network.network_address)
    result: Mask = (addresses >= 0) & ((addresses & mask) == base)
    return result
