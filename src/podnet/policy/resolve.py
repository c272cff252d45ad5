"""The resolved form of a cluster's policies: the one reading of NetworkPolicy semantics.

Selectors are evaluated once over all pods; rules become `ResolvedRule`s (which pods their
peers match, which ipBlocks, which ports); and pods that no policy can tell apart are merged
into classes. Verdicts, matrices, connectivity and the nftables compiler all read this form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from podnet.model import Cluster, Direction, IPBlock, Pod, PolicyPort
from podnet.policy.portset import PortSet
from podnet.policy.selection import Mask, PodSelection

DIRECTIONS = (Direction.INGRESS, Direction.EGRESS)


@dataclass(frozen=True)
class RuleRef:
    """Rule `index` of the `direction` rules of policy `ns/name`."""

    policy: str
    direction: Direction
    index: int

    def __str__(self) -> str:
        return f"{self.policy} {self.direction.lower()}[{self.index}]"


@dataclass(frozen=True, eq=False)
class ResolvedRule:
    ref: RuleRef
    any_peer: bool  # no `from`/`to`: "this rule matches all sources/destinations"
    peers: Mask  # pods matched by the rule's peers (selectors and ipBlocks)
    ip_blocks: tuple[IPBlock, ...]  # the ipBlock peers, for addresses that are not pods
    ports: tuple[PolicyPort, ...]  # empty: "this rule matches all ports"

    @property
    def has_named_ports(self) -> bool:
        return any(isinstance(p.port, str) for p in self.ports)

    def ports_on(self, destination: Pod | None) -> PortSet:
        """The ports this rule admits towards `destination` (None: an address, not a pod).

        A named port is resolved on the destination pod, protocol included; it matches nothing
        where the pod has no such port, never an address outside the pods, and never a
        host-network pod (whose traffic is its node's address's).
        """
        if not self.ports:
            return PortSet.all()
        result = PortSet.none()
        for p in self.ports:
            if p.port is None:
                result |= PortSet.of(p.protocol)
            elif isinstance(p.port, int):
                result |= PortSet.of(p.protocol, p.port, p.end_port or p.port)
            elif destination is not None and not destination.host_network:
                number = destination.named_port(p.port, p.protocol)
                if number is not None:
                    result |= PortSet.of(p.protocol, number, number)
        return result

    def matches_address(self, address: object) -> bool:
        return self.any_peer or any(b.contains(address) for b in self.ip_blocks)  # type: ignore[arg-type]


@dataclass
class DirectionRules:
    """The rules of one direction, and which pods each policy selects for it."""

    rules: list[ResolvedRule] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)  # policy keys, in cluster order
    policy_rules: list[list[int]] = field(default_factory=list)  # rule indices of each policy
    subjects: list[Mask] = field(default_factory=list)  # pods each policy selects


class Resolution:
    """Policies resolved against the pods of one cluster, pods grouped into classes."""

    def __init__(self, cluster: Cluster, selection: PodSelection | None = None) -> None:
        """`selection`: one made for an earlier cluster, reused (with the selectors it has
        evaluated) if that cluster had the same pods and namespaces; only policies changed."""
        self.cluster = cluster
        self.pods: Sequence[Pod] = cluster.pods
        self.pod_index = {p.key: i for i, p in enumerate(self.pods)}
        namespaces = dict(cluster.namespaces)
        if selection is None or not selection.serves(self.pods, namespaces):
            selection = PodSelection(self.pods, namespaces)
        self.selection = selection
        self.directions = {d: _resolve_direction(cluster, selection, d) for d in DIRECTIONS}
        self.class_of, self.members, self.named_ports = _classes(self.pods, self.directions)
        reps = np.array([m[0] for m in self.members], dtype=np.int64)
        self.reps = [self.pods[i] for i in reps]
        count = len(self.members)
        # Per direction and class: the rules of the policies that select the class.
        self._class_rules: dict[Direction, list[list[int]]] = {}
        self._isolating: dict[Direction, list[list[str]]] = {}
        self._peer_matrix: dict[Direction, Mask] = {}
        for d, dr in self.directions.items():
            class_rules: list[list[int]] = [[] for _ in range(count)]
            isolating: list[list[str]] = [[] for _ in range(count)]
            # policies x classes, whole matrices at once: the pairs come policy by policy.
            selects = _rows(dr.subjects, len(self.pods))[:, reps]
            for p, c in zip(*np.nonzero(selects), strict=True):
                class_rules[c] += dr.policy_rules[p]
                isolating[c].append(dr.policies[p])
            self._class_rules[d] = class_rules
            self._isolating[d] = isolating
            self._peer_matrix[d] = _rows([r.peers for r in dr.rules], len(self.pods))[:, reps]

    def class_count(self) -> int:
        return len(self.members)

    def rules(self, direction: Direction) -> list[ResolvedRule]:
        return self.directions[direction].rules

    def class_rules(self, direction: Direction, cls: int) -> list[int]:
        """Rules (indices) of the policies selecting class `cls` for `direction`."""
        return self._class_rules[direction][cls]

    def isolating_policies(self, direction: Direction, cls: int) -> list[str]:
        """"A pod is isolated for a direction when some policy selects it for that direction."""
        return self._isolating[direction][cls]

    def peer_matrix(self, direction: Direction) -> Mask:
        """rules x classes: whether the rule's peers match the class's pods."""
        return self._peer_matrix[direction]

    def ip_blocks(self) -> list[IPBlock]:
        return [b for d in DIRECTIONS for r in self.rules(d) for b in r.ip_blocks]


def _rows(masks: Sequence[Mask], pods: int) -> Mask:
    """Masks over the pods as the rows of one matrix (none: zero rows)."""
    return np.array(masks, dtype=bool).reshape(len(masks), pods)


def _resolve_direction(cluster: Cluster, selection: PodSelection, d: Direction) -> DirectionRules:
    dr = DirectionRules()
    for policy in cluster.policies:
        if d not in policy.policy_types:
            continue
        ids = []
        for index, rule in enumerate(policy.rules(d)):
            peers = selection.none()
            for peer in rule.peers:
                peers = peers | selection.peer(peer, policy.namespace)
            ids.append(len(dr.rules))
            dr.rules.append(ResolvedRule(
                ref=RuleRef(policy.key, d, index),
                any_peer=not rule.peers,
                peers=peers,
                ip_blocks=tuple(p.ip_block for p in rule.peers if p.ip_block is not None),
                ports=rule.ports,
            ))
        dr.policies.append(policy.key)
        dr.policy_rules.append(ids)
        dr.subjects.append(selection.subjects(policy.pod_selector, policy.namespace))
    return dr


def _classes(pods: Sequence[Pod], directions: dict[Direction, DirectionRules]
             ) -> tuple[np.ndarray, list[list[int]], list[int]]:
    """Group pods that every selector, ipBlock and named port treats alike.

    Returns each pod's class, each class's pods, and each class's named-port signature (an id,
    equal for classes whose named ports, as the policies use them, mean the same numbers).
    """
    rows = [m for dr in directions.values() for m in (*dr.subjects, *(r.peers for r in dr.rules))]
    bits = (np.packbits(np.array(rows, dtype=bool).T, axis=1) if rows
            else np.zeros((len(pods), 0), dtype=np.uint8))
    named = sorted({(p.port, p.protocol) for dr in directions.values() for r in dr.rules
                    for p in r.ports if isinstance(p.port, str)})
    # The node matters only to host network pods, whose traffic to pods of their own node is
    # the node's own (always allowed); then every pod's node is part of its class.
    by_node = any(p.host_network for p in pods)
    keys: dict[object, int] = {}
    signatures: dict[tuple[int | None, ...], int] = {}
    class_of = np.empty(len(pods), dtype=np.int64)
    members: list[list[int]] = []
    named_ports: list[int] = []
    for i, pod in enumerate(pods):
        # A named port never resolves on a host-network pod (`ResolvedRule.ports_on`).
        signature = tuple(None if pod.host_network else pod.named_port(n, proto)
                          for n, proto in named)
        key = (bits[i].tobytes(), signature, pod.host_network, pod.node_name if by_node else None)
        cls = keys.setdefault(key, len(members))
        if cls == len(members):
            members.append([])
            named_ports.append(signatures.setdefault(signature, len(signatures) + 1))
        members[cls].append(i)
        class_of[i] = cls
    return class_of, members, named_ports
