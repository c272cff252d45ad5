"""Decoding core/v1 objects: Namespace, Pod (and pod templates), Node."""

from __future__ import annotations

import ipaddress

from podnet.model.fields import Field
from podnet.model.names import port_name_errors, port_number_errors
from podnet.model.objects import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    IPAddress,
    IPNetwork,
    Namespace,
    Node,
    Pod,
    Protocol,
)


def decode_namespace(f: Field, name: str) -> Namespace:
    labels = f.get("metadata").get("labels").labels()
    # The control plane sets this label on every namespace, whatever the manifest says.
    labels[NAMESPACE_NAME_LABEL] = name
    return Namespace(name, labels)


def decode_pod(f: Field, namespace: str, name: str) -> Pod:
    """A Pod; `f` may also be a pod template (no status)."""
    spec = f.get("spec")
    status = f.get("status")
    ips: list[IPAddress] = []
    for ip_f in [status.get("podIP"), *(e.get("ip") for e in status.get("podIPs").items())]:
        if ip_f.present:
            ip = _address(ip_f)
            if ip is not None and ip not in ips:
                ips.append(ip)
    return Pod(
        namespace=namespace,
        name=name,
        labels=f.get("metadata").get("labels").labels(),
        ports=tuple(p for c in spec.get("containers").items() for p in _container_ports(c)),
        host_network=spec.get("hostNetwork").boolean(),
        node_name=spec.get("nodeName").optional_string(),
        ips=tuple(ips),
    )


def _container_ports(container: Field) -> list[ContainerPort]:
    ports: list[ContainerPort] = []
    for p in container.get("ports").items():
        number_f = p.get("containerPort")
        number = number_f.integer()
        for msg in port_number_errors(number):
            number_f.report(f"Invalid value: {number}: {msg}")
        proto_f = p.get("protocol")
        proto_name = proto_f.string("TCP")
        try:
            protocol = Protocol(proto_name)
        except ValueError:
            proto_f.report(f'Unsupported value: "{proto_name}": supported values: "SCTP", "TCP", '
                           '"UDP"')
            protocol = Protocol.TCP
        name_f = p.get("name")
        name = name_f.optional_string()
        if name is not None:
            for msg in port_name_errors(name):
                name_f.report(f"Invalid value: {name!r}: {msg}")
            if any(p.name == name for p in ports):
                name_f.report(f'Duplicate value: "{name}"')
        ports.append(ContainerPort(number, protocol, name))
    return ports


def decode_node(f: Field, name: str) -> Node:
    spec, status = f.get("spec"), f.get("status")
    addresses = [_address(a.get("address")) for a in status.get("addresses").items()
                 if a.get("type").string("") == "InternalIP"]
    cidr_fields = [spec.get("podCIDR"), *spec.get("podCIDRs").items()]
    cidrs: list[IPNetwork] = []
    for c in cidr_fields:
        if c.present:
            net = _network(c)
            if net is not None and net not in cidrs:
                cidrs.append(net)
    return Node(
        name=name,
        labels=f.get("metadata").get("labels").labels(),
        addresses=tuple(a for a in addresses if a is not None),
        pod_cidrs=tuple(cidrs),
    )


def _address(f: Field) -> IPAddress | None:
    try:
        return ipaddress.ip_address(f.string())
    except ValueError:
        f.report(f"Invalid value: {f.value!r}: must be a valid IP address")
        return None


def _network(f: Field) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(f.string())
    except ValueError:
        f.report(f"Invalid value: {f.value!r}: must be a valid CIDR")
        return None
