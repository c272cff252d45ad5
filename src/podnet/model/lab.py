"""`kind: Lab` (podnet.dev/v1alpha1): the emulated cluster a `podnet lab up` brings up."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from podnet.model.fields import Field
from podnet.model.names import dns_label_errors

API_VERSION = "podnet.dev/v1alpha1"
BACKENDS = ("vxlan", "host-gw")
DATASTORES = ("sqlite", "etcd")
MAX_NODES = 200  # node addresses are 192.0.2.10 and up, in TEST-NET-1
DEFAULT_POD_CIDR = ipaddress.IPv4Network("10.244.0.0/16")


@dataclass(frozen=True)
class Lab:
    name: str = "lab"
    nodes: tuple[str, ...] = ("node-1", "node-2")
    pod_cidr: ipaddress.IPv4Network = DEFAULT_POD_CIDR
    node_subnet_size: int = 24
    backend: str = "vxlan"
    datastore: str = "sqlite"
    mtu: int = 1500


def decode_lab(f: Field, name: str) -> Lab:
    if len(name) > 20:
        f.report(f"Invalid value: {name!r}: must be no more than 20 characters (it prefixes "
                 "namespace names)", "metadata.name")
    spec = f.get("spec")
    defaults = Lab()
    return Lab(
        name=name,
        nodes=_nodes(spec.get("nodes"), defaults.nodes),
        pod_cidr=_pod_cidr(spec.get("podCIDR"), defaults.pod_cidr),
        node_subnet_size=_bounded(spec.get("nodeSubnetSize"), defaults.node_subnet_size, 16, 28),
        backend=_choice(spec.get("backend"), BACKENDS),
        datastore=_choice(spec.get("datastore"), DATASTORES),
        mtu=_bounded(spec.get("mtu"), defaults.mtu, 1280, 9000),
    )


def _nodes(f: Field, default: tuple[str, ...]) -> tuple[str, ...]:
    if not f.present:
        return default
    if isinstance(f.value, int) and not isinstance(f.value, bool):
        count = f.integer()
        if not 1 <= count <= MAX_NODES:
            f.report(f"Invalid value: {count}: must be between 1 and {MAX_NODES}")
        return tuple(f"node-{i}" for i in range(1, count + 1))
    names = []
    for item in f.items():
        node = item.string()
        for msg in dns_label_errors(node):
            item.report(f"Invalid value: {node!r}: {msg}")
        if node in names:
            item.report(f'Duplicate value: "{node}"')
        names.append(node)
    if not 1 <= len(names) <= MAX_NODES:
        f.report(f"Invalid value: {len(names)} nodes: must be between 1 and {MAX_NODES}")
    return tuple(names)


def _pod_cidr(f: Field, default: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    if not f.present:
        return default
    try:
        return ipaddress.IPv4Network(f.string())
    except ValueError:
        f.report(f"Invalid value: {f.value!r}: must be an IPv4 CIDR such as 10.244.0.0/16")
        return default


def _bounded(f: Field, default: int, low: int, high: int) -> int:
    if not f.present:
        return default
    value = f.integer()
    if not low <= value <= high:
        f.report(f"Invalid value: {value}: must be between {low} and {high}")
    return value


def _choice(f: Field, allowed: tuple[str, ...]) -> str:
    value = f.string(allowed[0])
    if value not in allowed:
        f.report(f'Unsupported value: "{value}": supported values: '
                 + ", ".join(f'"{a}"' for a in allowed))
    return value
