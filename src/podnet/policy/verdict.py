"""The verdict for one connection, with its reasons: which policies isolate, which rules allow.

Kubernetes: "for a connection from a source pod to a destination pod to be allowed, both the
egress policy on the source pod and the ingress policy on the destination pod need to allow
the connection." Each side is judged alone, then the two are combined.
"""

from __future__ import annotations

from dataclasses import dataclass

from podnet.model import Direction, IPAddress, Pod, Protocol
from podnet.policy.resolve import Resolution, RuleRef

Endpoint = Pod | IPAddress


@dataclass(frozen=True)
class DirectionVerdict:
    """One side of a connection: the destination's ingress or the source's egress."""

    direction: Direction
    isolated: bool
    allowed: bool
    allowed_by: tuple[RuleRef, ...] = ()
    isolated_by: tuple[str, ...] = ()  # the policies that select the pod for this direction
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "isolated": self.isolated,
            "allowed": self.allowed,
            "allowedBy": [{"policy": r.policy, "rule": r.index} for r in self.allowed_by],
            "isolatedBy": list(self.isolated_by),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    ingress: DirectionVerdict
    egress: DirectionVerdict

    def to_json(self) -> dict[str, object]:
        return {"allowed": self.allowed, "ingress": self.ingress.to_json(),
                "egress": self.egress.to_json()}


def verdict(res: Resolution, src: Endpoint, dst: Endpoint, port: int,
            protocol: Protocol) -> Verdict:
    if isinstance(src, Pod) and src == dst:
        loop = "a pod's traffic to itself stays inside the pod (loopback)"
        return Verdict(True, DirectionVerdict(Direction.INGRESS, False, True, reason=loop),
                       DirectionVerdict(Direction.EGRESS, False, True, reason=loop))
    egress = _side(res, Direction.EGRESS, src, dst, port, protocol)
    ingress = _side(res, Direction.INGRESS, dst, src, port, protocol)
    if (not ingress.allowed and isinstance(src, Pod) and isinstance(dst, Pod)
            and src.host_network and src.node_name is not None
            and src.node_name == dst.node_name):
        ingress = DirectionVerdict(
            Direction.INGRESS, ingress.isolated, True, (), ingress.isolated_by,
            f"traffic from the pod's own node ({src.node_name}) is always allowed")
    return Verdict(ingress.allowed and egress.allowed, ingress, egress)


def _side(res: Resolution, direction: Direction, pod: Endpoint, peer: Endpoint, port: int,
          protocol: Protocol) -> DirectionVerdict:
    """The verdict of `pod`'s policies for `direction` on traffic with `peer`."""
    other = "destinations" if direction is Direction.EGRESS else "sources"
    if not isinstance(pod, Pod):
        return DirectionVerdict(direction, False, True, reason=f"{pod} is not a pod")
    if pod.host_network:
        return DirectionVerdict(direction, False, True,
                                reason=f"{pod.key} is in the host network: no policy selects it")
    cls = int(res.class_of[res.pod_index[pod.key]])
    isolating = tuple(res.isolating_policies(direction, cls))
    if not isolating:
        return DirectionVerdict(
            direction, False, True,
            reason=f"no policy selects {pod.key} for {direction.lower()}: all {other} allowed")
    # Named ports are resolved on the destination pod, for ingress and egress alike.
    destination = peer if direction is Direction.EGRESS else pod
    dest_pod = destination if isinstance(destination, Pod) else None
    rules = res.rules(direction)
    peer_matrix = res.peer_matrix(direction)
    peer_cls = (int(res.class_of[res.pod_index[peer.key]]) if isinstance(peer, Pod) else None)
    allowed_by = []
    for rid in res.class_rules(direction, cls):
        rule = rules[rid]
        if peer_cls is not None:
            matches = rule.any_peer or bool(peer_matrix[rid, peer_cls])
        else:
            matches = rule.matches_address(peer)
        if matches and rule.ports_on(dest_pod).allows(protocol, port):
            allowed_by.append(rule.ref)
    if allowed_by:
        reason = f"{pod.key} is isolated for {direction.lower()}; allowed by " + ", ".join(
            f"rule {r.index} of {r.policy}" for r in allowed_by)
    else:
        reason = (f"{pod.key} is isolated for {direction.lower()} by "
                  f"{', '.join(isolating)} and no rule allows {protocol}/{port} with {_name(peer)}")
    return DirectionVerdict(direction, True, bool(allowed_by), tuple(allowed_by), isolating,
                            reason)


def _name(endpoint: Endpoint) -> str:
    return endpoint.key if isinstance(endpoint, Pod) else str(endpoint)
