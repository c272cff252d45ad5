"""Decoding, defaulting and validating networking.k8s.io/v1 NetworkPolicy.

Mirrors the API server: SetDefaults_NetworkPolicy (protocol TCP, policyTypes) and
ValidateNetworkPolicy (ports, peers, ipBlocks, policyTypes), with the same field paths.
"""

from __future__ import annotations

import ipaddress

from podnet.model.fields import Field
from podnet.model.names import port_name_errors, port_number_errors
from podnet.model.objects import (
    Direction,
    IPBlock,
    IPNetwork,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Protocol,
    Rule,
)
from podnet.model.selectors import decode_selector

_PROTOCOLS = '"SCTP", "TCP", "UDP"'


def decode_network_policy(f: Field, namespace: str, name: str) -> NetworkPolicy:
    spec = f.get("spec")
    pod_selector = decode_selector(spec.get("podSelector"))
    ingress = tuple(_rule(r, "from") for r in spec.get("ingress").items())
    egress = tuple(_rule(r, "to") for r in spec.get("egress").items())
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=pod_selector,
        policy_types=_policy_types(spec.get("policyTypes"), has_egress=bool(egress)),
        ingress=ingress,
        egress=egress,
    )


def _policy_types(f: Field, has_egress: bool) -> tuple[Direction, ...]:
    # "If this field is not specified, it will default based on the existence of ingress or
    # egress rules; policies that contain an egress section are assumed to affect egress, and
    # all policies (whether or not they contain an ingress section) are assumed to affect ingress."
    entries = list(f.items())
    if not entries:
        return (Direction.INGRESS, Direction.EGRESS) if has_egress else (Direction.INGRESS,)
    if len(entries) > 2:
        f.report("Invalid value: may not specify more than two policyTypes")
        return ()
    types = []
    for entry in entries:
        value = entry.string()
        try:
            types.append(Direction(value))
        except ValueError:
            entry.report(f'Unsupported value: "{value}": supported values: "Ingress", "Egress"')
    return tuple(types)


def _rule(f: Field, peers_key: str) -> Rule:
    return Rule(
        peers=tuple(_peer(p) for p in f.get(peers_key).items()),
        ports=tuple(_port(p) for p in f.get("ports").items()),
    )


def _peer(f: Field) -> Peer:
    pod_f, ns_f, block_f = f.get("podSelector"), f.get("namespaceSelector"), f.get("ipBlock")
    peer = Peer(
        pod_selector=decode_selector(pod_f) if pod_f.present else None,
        namespace_selector=decode_selector(ns_f) if ns_f.present else None,
        ip_block=_ip_block(block_f) if block_f.present else None,
    )
    count = sum(x.present for x in (pod_f, ns_f, block_f))
    if count == 0:
        f.report("Required value: must specify a peer")
    elif count > 1 and block_f.present:
        f.report("Forbidden: may not specify both ipBlock and another peer")
    return peer


def _ip_block(f: Field) -> IPBlock | None:
    cidr_f = f.get("cidr")
    text = cidr_f.string("")
    if not text:
        cidr_f.report("Required value")
        return None
    cidr = _cidr(cidr_f)
    excepts = []
    for e in f.get("except").items():
        net = _cidr(e)
        if net is None or cidr is None:
            continue
        strict_subset = (net.version == cidr.version and net.prefixlen > cidr.prefixlen
                         and net.subnet_of(cidr))  # type: ignore[arg-type]
        if not strict_subset:
            e.report(f"Invalid value: {e.value!r}: must be a strict subset of `cidr`")
            continue
        excepts.append(net)
    return IPBlock(cidr, tuple(excepts)) if cidr is not None else None


def _cidr(f: Field) -> IPNetwork | None:
    text = f.string()
    try:
        if "/" not in text:  # net.ParseCIDR wants a prefix length...
            raise ValueError(text)
        # ...and accepts host bits ("10.0.0.1/24"), which it masks; so do we.
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        f.report(f"Invalid value: {text!r}: must be a valid CIDR (e.g. 10.0.0.0/16)")
        return None


def _port(f: Field) -> PolicyPort:
    proto_f = f.get("protocol")
    proto_name = proto_f.string("TCP")
    try:
        protocol = Protocol(proto_name)
    except ValueError:
        proto_f.report(f'Unsupported value: "{proto_name}": supported values: {_PROTOCOLS}')
        protocol = Protocol.TCP
    port_f, end_f = f.get("port"), f.get("endPort")
    port = port_f.int_or_string() if port_f.present else None
    end_port = end_f.integer() if end_f.present else None
    if isinstance(port, int):
        for msg in port_number_errors(port):
            port_f.report(f"Invalid value: {port}: {msg}")
        if end_port is not None:
            if end_port < port:
                end_f.report(f"Invalid value: {end_port}: must be greater than or equal to "
                             "`port`")
            for msg in port_number_errors(end_port):
                end_f.report(f"Invalid value: {end_port}: {msg}")
    elif isinstance(port, str):
        if end_port is not None:
            end_f.report(f"Invalid value: {end_port}: may not be specified when `port` is "
                         "non-numeric")
        for msg in port_name_errors(port):
            port_f.report(f"Invalid value: {port!r}: {msg}")
    elif end_port is not None:
        end_f.report(f"Invalid value: {end_port}: may not be specified when `port` is not "
                     "specified")
    return PolicyPort(protocol, port, end_port)
