"""The simplest direct reading of NetworkPolicy semantics, one pair at a time: the oracle.

It shares nothing with `podnet.policy` but the model's objects (and `LabelSelector.matches`,
which the model tests cover), so the engine and the oracle can only agree by both being
right. Quotes are from the networking.k8s.io/v1 API reference; see also
/work/shared/reference/networkpolicy.md.

Decisions the API leaves to implementations, fixed here as podnet documents them:
- a pod reaches itself (loopback) whatever the policies say;
- hostNetwork pods are their node's addresses: no selector matches them, an ipBlock may,
  no policy selects them, and a named port never resolves on them;
- a hostNetwork pod reaches every pod on its own node (the node's own traffic).
"""

from __future__ import annotations

import ipaddress

from podnet.model import (
    Cluster,
    Direction,
    IPAddress,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Protocol,
    Rule,
)

Endpoint = Pod | IPAddress


def allowed(cluster: Cluster, src: Endpoint, dst: Endpoint, port: int, protocol: Protocol) -> bool:
    """Whether a connection from `src` to `dst` on `port`/`protocol` is allowed."""
    if isinstance(src, Pod) and isinstance(dst, Pod):
        if src.key == dst.key:
            return True  # loopback
        if src.host_network and src.node_name is not None and src.node_name == dst.node_name:
            return True  # the node's own traffic to its pods
    # DESIGN §1.5: "a connection needs the sender's egress and the receiver's ingress".
    return (egress_allows(cluster, src, dst, port, protocol)
            and ingress_allows(cluster, src, dst, port, protocol))


def ingress_allows(
    cluster: Cluster, src: Endpoint, dst: Endpoint, port: int, protocol: Protocol
) -> bool:
    """Whether `dst`'s ingress side lets the connection in."""
    return _side_allows(cluster, src, dst, port, protocol, Direction.INGRESS)


def egress_allows(
    cluster: Cluster, src: Endpoint, dst: Endpoint, port: int, protocol: Protocol
) -> bool:
    """Whether `src`'s egress side lets the connection out."""
    return _side_allows(cluster, src, dst, port, protocol, Direction.EGRESS)


def isolated(cluster: Cluster, pod: Pod, direction: Direction) -> bool:
    """Whether some policy selects `pod` for `direction`."""
    return bool(_selecting(cluster, pod, direction))


def allowing_rules(
    cluster: Cluster, src: Endpoint, dst: Endpoint, port: int, protocol: Protocol,
    direction: Direction,
) -> set[tuple[str, int]]:
    """Every (policy `ns/name`, rule index) of `direction` that allows the connection."""
    # The ingress side is the destination's, its peer the source; egress the other way round.
    subject, peer = (dst, src) if direction is Direction.INGRESS else (src, dst)
    if not isinstance(subject, Pod):
        return set()  # not a pod: no NetworkPolicy applies to it
    # ingress: "If this field is empty then this NetworkPolicy does not allow any traffic
    # (and serves solely to ensure that the pods it selects are isolated by default)".
    return {
        (policy.key, index)
        for policy in _selecting(cluster, subject, direction)
        for index, rule in enumerate(policy.rules(direction))
        if _rule_allows(cluster, rule, policy.namespace, peer, dst, port, protocol)
    }


def _side_allows(
    cluster: Cluster, src: Endpoint, dst: Endpoint, port: int, protocol: Protocol,
    direction: Direction,
) -> bool:
    subject = dst if direction is Direction.INGRESS else src
    if not isinstance(subject, Pod) or not isolated(cluster, subject, direction):
        return True  # not isolated in this direction: everything is allowed
    # Policies are additive: any rule of any selecting policy allows.
    return bool(allowing_rules(cluster, src, dst, port, protocol, direction))


def _selecting(cluster: Cluster, pod: Pod, direction: Direction) -> list[NetworkPolicy]:
    # podSelector: "Selects the pods to which this NetworkPolicy object applies ... An empty
    # podSelector matches all pods in this namespace." A policy never reaches across namespaces.
    # policyTypes: "List of rule types that the NetworkPolicy relates to."
    if pod.host_network:
        return []
    return [
        p for p in cluster.policies
        if p.namespace == pod.namespace and direction in p.policy_types
        and p.pod_selector.matches(pod.labels)
    ]


def _rule_allows(
    cluster: Cluster,
    rule: Rule,
    namespace: str,
    peer: Endpoint,
    dst: Endpoint,
    port: int,
    protocol: Protocol,
) -> bool:
    # from/to: "If this field is empty or missing, this rule matches all sources
    # (traffic not restricted by source)." ports: "If this field is empty or missing, this
    # rule matches all ports (traffic not restricted by port)."
    # "If this field is present and contains at least one item, then this rule allows
    # traffic only if the traffic matches at least one item in the from list."
    peers_ok = not rule.peers or any(_peer_matches(cluster, p, namespace, peer)
                                     for p in rule.peers)
    ports_ok = not rule.ports or any(_port_matches(p, dst, port, protocol) for p in rule.ports)
    return peers_ok and ports_ok


def _peer_matches(cluster: Cluster, peer: Peer, namespace: str, endpoint: Endpoint) -> bool:
    if peer.ip_block is not None:
        # ipBlock: "defines policy on a particular IPBlock"; it matches any address,
        # pod IPs included (the upstream e2e suite allows egress to a pod by its /32).
        addresses = _addresses(endpoint)
        return any(a.version == peer.ip_block.cidr.version and peer.ip_block.contains(a)
                   for a in addresses)
    if not isinstance(endpoint, Pod) or endpoint.host_network:
        return False  # selectors select pods, and hostNetwork pods are not selectable
    if peer.namespace_selector is None:
        # podSelector alone: "selects particular Pods in the same namespace as the
        # NetworkPolicy".
        ns_ok = endpoint.namespace == namespace
    else:
        # namespaceSelector: "If podSelector is also set, then the NetworkPolicyPeer as a
        # whole selects the Pods matching podSelector in the Namespaces selected by
        # NamespaceSelector. Otherwise it selects all Pods in the Namespaces selected".
        ns = cluster.namespaces.get(endpoint.namespace)
        ns_ok = ns is not None and peer.namespace_selector.matches(ns.labels)
    pod_ok = peer.pod_selector is None or peer.pod_selector.matches(endpoint.labels)
    return ns_ok and pod_ok


def _port_matches(rule_port: PolicyPort, dst: Endpoint, port: int, protocol: Protocol) -> bool:
    # protocol: "The protocol (TCP, UDP, or SCTP) which traffic must match. If not
    # specified, this field defaults to TCP." (defaulted by the model)
    if rule_port.protocol is not protocol:
        return False
    if rule_port.port is None:
        # port: "If this is not provided, this matches all port names and numbers."
        return True
    if isinstance(rule_port.port, str):
        # A named port is "a named port on a pod": it exists only on the destination pod,
        # for this protocol. An address, or a hostNetwork pod (an address too), has none.
        if not isinstance(dst, Pod) or dst.host_network:
            return False
        return dst.named_port(rule_port.port, protocol) == port
    # endPort: "indicates that the range of ports from port to endPort if set, inclusive,
    # should be allowed by the policy."
    end = rule_port.end_port if rule_port.end_port is not None else rule_port.port
    return rule_port.port <= port <= end


def _addresses(endpoint: Endpoint) -> tuple[IPAddress, ...]:
    if isinstance(endpoint, Pod):
        return endpoint.ips
    return (ipaddress.ip_address(endpoint),)
