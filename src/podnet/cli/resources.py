"""`podnet apply|get|delete|label`: the cluster's objects in the store, as kubectl shows them.

`apply` validates every object with the model first and writes all of them in one
transaction, or nothing. Re-applying changes objects in place (labels of pods and namespaces
included) and keeps what the network filled in (`status`, `spec.nodeName`).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from podnet import ipam
from podnet.agent.liveness import delete_node_lease, node_leases
from podnet.cli.output import age, print_json, print_table
from podnet.errors import PodnetError, UsageError
from podnet.model import (
    LabelSelector,
    SelectorSyntaxError,
    nodelease,
    parse_selector,
)
from podnet.model.load import CLUSTER_SCOPED, read_manifests
from podnet.model.names import label_key_errors, label_value_errors
from podnet.store import (
    ENV,
    Key,
    NotFound,
    Resource,
    Store,
    modify,
    open_store,
)
from podnet.store.apply import apply_manifests, known, manifest_key, ref

log = logging.getLogger(__name__)

ENDPOINT_KIND = "PodEndpoint"
# What users type for a kind: plural, singular and kubectl's short names.
ALIASES = {
    "Pod": ("pods", "pod", "po"),
    "Namespace": ("namespaces", "namespace", "ns"),
    "NetworkPolicy": ("networkpolicies", "networkpolicy", "netpol"),
    "Node": ("nodes", "node", "no"),
    "Deployment": ("deployments", "deployment", "deploy"),
    "ReplicaSet": ("replicasets", "replicaset", "rs"),
    "StatefulSet": ("statefulsets", "statefulset", "sts"),
    "DaemonSet": ("daemonsets", "daemonset", "ds"),
    "Job": ("jobs", "job"),
    ipam.LEASE_KIND: ("subnetleases", "subnetlease"),
    nodelease.KIND: ("leases", "lease"),
    "ClusterNetwork": ("clusternetworks", "clusternetwork"),
    ENDPOINT_KIND: ("podendpoints", "podendpoint", "endpoints", "ep"),
}
CLUSTER_KINDS = {*CLUSTER_SCOPED, ipam.LEASE_KIND, "ClusterNetwork", "SubnetClaim", ENDPOINT_KIND}


class UnknownKind(PodnetError):
    pass


def register(sub: Any) -> None:
    apply = sub.add_parser("apply", help="create or update objects from manifests")
    add_files(apply, required=True)
    add_store(apply)
    apply.set_defaults(handler=cmd_apply)

    get = sub.add_parser("get", help="show objects from the store")
    get.add_argument("kind", metavar="KIND", help="pods, namespaces, networkpolicies, nodes, ...")
    get.add_argument("names", nargs="*", metavar="NAME")
    add_namespace(get, all_namespaces=True)
    get.add_argument("-l", "--selector", type=selector, help="label selector, e.g. app=web")
    get.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"), default="table")
    add_store(get)
    get.set_defaults(handler=cmd_get)

    delete = sub.add_parser("delete", help="delete objects (from manifests, or by kind and name)")
    add_files(delete, required=False)
    delete.add_argument("kind", nargs="?", metavar="KIND")
    delete.add_argument("names", nargs="*", metavar="NAME")
    add_namespace(delete)
    delete.add_argument("--ignore-not-found", action="store_true")
    add_store(delete)
    delete.set_defaults(handler=cmd_delete)

    label = sub.add_parser("label", help="set (key=value) or remove (key-) labels of an object")
    label.add_argument("kind", metavar="KIND")
    label.add_argument("name", metavar="NAME")
    label.add_argument("labels", nargs="+", metavar="KEY=VALUE|KEY-")
    add_namespace(label)
    label.add_argument("--overwrite", action="store_true", help="allow changing a value")
    add_store(label)
    label.set_defaults(handler=cmd_label)


def add_files(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("-f", "--filename", dest="files", action="extend", nargs="+",
                        required=required, metavar="PATH", default=[],
                        help="manifest files or directories (YAML, JSON, lists); repeatable")


def add_namespace(parser: argparse.ArgumentParser, all_namespaces: bool = False) -> None:
    parser.add_argument("-n", "--namespace", default="default")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true")


def add_store(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--store", metavar="URL",
                       help="store URL (default: --lab's, else $PODNET_STORE, else the running "
                            "lab's, else sqlite:///var/lib/podnet/state.db as root; docs/store.md)")
    which.add_argument("--lab", help="the store of this lab (default: the only lab running)")


def store_of(args: argparse.Namespace) -> str | None:
    """--store, --lab, $PODNET_STORE, the only lab running; None: the default store."""
    from podnet.lab.state import choose, labs

    if args.store:
        return str(args.store)
    if args.lab:  # named on the command line: wins over the environment
        return choose(args.lab).store_url
    if os.environ.get(ENV):
        return os.environ[ENV]
    if labs():
        return choose(None).store_url
    return None


def selector(text: str) -> LabelSelector:
    try:
        return parse_selector(text)
    except SelectorSyntaxError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def resolve_kind(name: str) -> str:
    lowered = name.lower()
    for kind, aliases in ALIASES.items():
        if lowered == kind.lower() or lowered in aliases:
            return kind
    raise UnknownKind(f'unknown resource type "{name}" (known: '
                      f'{", ".join(a[0] for a in ALIASES.values())})')


def key_of(kind: str, namespace: str, name: str) -> Key:
    return Key(kind, "" if kind in CLUSTER_KINDS else namespace, name)


# -- apply -------------------------------------------------------------------------------------

def cmd_apply(args: argparse.Namespace) -> int:
    with open_store(store_of(args)) as store:
        messages = apply_manifests(store, read_manifests(args.files))
    for line in messages:
        print(line)
    return 0


# -- get ---------------------------------------------------------------------------------------

def cmd_get(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.kind)
    with open_store(store_of(args)) as store:
        if kind == "Node":
            found = nodes(store, args.selector, args.names)
        elif args.names:
            found = [store.get(key_of(kind, args.namespace, n)) for n in args.names]
        else:
            namespace = None if args.all_namespaces or kind in CLUSTER_KINDS else args.namespace
            found = list(store.list(kind, namespace, args.selector).items)
            if args.selector is None and not found and namespace and not args.all_namespaces:
                print(f"No resources found in {namespace} namespace.", file=sys.stderr)
        if kind == "Pod":
            found = with_endpoints(store, found)
        revision = store.revision()
    if args.output in ("json", "yaml"):
        docs = [r.manifest() for r in found]
        doc: Any = docs[0] if len(args.names) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": docs,
            "metadata": {"resourceVersion": str(revision)}}
        if args.output == "json":
            print_json(doc)
        else:
            sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
        return 0
    if found:
        wide = args.output == "wide"
        namespaced = args.all_namespaces and kind not in CLUSTER_KINDS
        headers, rows = columns(kind, found, wide)
        if namespaced:
            headers = ["namespace", *headers]
            rows = [[r.namespace, *row] for r, row in zip(found, rows, strict=True)]
        print_table(headers, rows)
    elif args.selector is not None or args.all_namespaces or kind in CLUSTER_KINDS:
        print("No resources found", file=sys.stderr)
    return 0


def with_endpoints(store: Store, pods: list[Resource]) -> list[Resource]:
    """Pods with `status.podIP(s)` and `spec.nodeName` from the agents' endpoints, if unset."""
    where: dict[tuple[str, str], tuple[str, str]] = {}
    for ep in store.list(ENDPOINT_KIND).items:
        spec = ep.body.get("spec") or {}
        pod = spec.get("pod") or {}
        if pod and (spec.get("ifname") == "eth0" or (pod["namespace"], pod["name"]) not in where):
            where[pod["namespace"], pod["name"]] = (spec["ip"], spec["node"])
    result = []
    for r in pods:
        if (r.namespace, r.name) in where and not (r.body.get("status") or {}).get("podIP"):
            ip, node = where[r.namespace, r.name]
            body = copy.deepcopy(dict(r.body))
            body.setdefault("status", {}).update(podIP=ip, podIPs=[{"ip": ip}])
            body.setdefault("spec", {}).setdefault("nodeName", node)
            result.append(Resource(r.key, body, r.revision, r.created, r.lease))
        else:
            result.append(r)
    return result


def nodes(store: Store, selector: LabelSelector | None, names: Sequence[str]) -> list[Resource]:
    """Node objects, and nodes known only by their agent's subnet lease, with their subnet.

    As kubelet registers its Node, an agent registers a lease: both make a node. Each gets
    `spec.podCIDR(s)` from its lease and its underlay address as `InternalIP`, if unset, and
    the `Ready` condition its agent's node lease gives it (podnet.model.nodelease).
    """
    found = {r.name: r for r in store.list("Node", None, selector).items}
    alive = node_leases(store)
    now = datetime.datetime.now(datetime.UTC)
    for lease_resource in store.list(ipam.LEASE_KIND).items:
        lease = ipam.lease_of(lease_resource)
        node = found.get(lease.node)
        if node is None:
            if selector is not None and not selector.matches({}):
                continue
            node = Resource(Key("Node", "", lease.node), {
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": lease.node}},
                lease_resource.revision, lease_resource.created)
        body = copy.deepcopy(dict(node.body))
        spec = body.setdefault("spec", {})
        spec.setdefault("podCIDR", str(lease.subnet))
        spec.setdefault("podCIDRs", [str(lease.subnet)])
        if "publicIP" in lease.attrs:
            body.setdefault("status", {}).setdefault("addresses", [
                {"type": "InternalIP", "address": lease.attrs["publicIP"]}])
        found[lease.node] = Resource(node.key, body, node.revision, node.created, node.lease)
    for name, node in found.items():
        body = copy.deepcopy(dict(node.body))
        status = body.setdefault("status", {})
        status["conditions"] = [
            *(c for c in status.get("conditions") or [] if c.get("type") != "Ready"),
            nodelease.readiness(alive.get(name), now).condition()]
        found[name] = Resource(node.key, body, node.revision, node.created, node.lease)
    for name in names:
        if name not in found:
            raise NotFound(f"Node {name} not found")
    return [found[n] for n in (names or sorted(found))]


def ready_condition(body: Any) -> dict[str, Any]:
    """A node's `Ready` condition (`nodes` gives every node one); {} if it has none."""
    return next((c for c in (body.get("status") or {}).get("conditions") or []
                 if c.get("type") == "Ready"), {})


def node_status(body: Any) -> tuple[str, str]:
    """`Ready` or `NotReady`, and how long ago its agent last renewed the node lease."""
    ready = ready_condition(body)
    heartbeat = ready.get("lastHeartbeatTime")
    return (nodelease.status_word(ready.get("status") == "True"),
            age(nodelease.parse_time(heartbeat)) if heartbeat else "<none>")


def columns(kind: str, found: Sequence[Resource], wide: bool) -> tuple[list[str], list[list[str]]]:
    headers = ["name"]
    extra: list[tuple[str, Any]] = []
    if kind == "Pod":
        extra = [("ip", lambda b: (b.get("status") or {}).get("podIP", "<none>")),
                 ("node", lambda b: (b.get("spec") or {}).get("nodeName", "<none>"))]
    elif kind == "NetworkPolicy":
        extra = [("pod-selector", lambda b: selector_text((b.get("spec") or {}).get(
            "podSelector") or {}))]
    elif kind == ipam.LEASE_KIND:
        extra = [("subnet", lambda b: b["spec"]["subnet"])]
        if wide:
            extra.append(("attrs", lambda b: labels_text(b["spec"].get("attrs") or {})))
    elif kind == "Node":
        extra = [("status", lambda b: node_status(b)[0]),
                 ("renewed", lambda b: node_status(b)[1]),
                 ("pod-cidr", lambda b: (b.get("spec") or {}).get("podCIDR", "<none>")),
                 ("internal-ip", lambda b: next(
                     (a.get("address") for a in (b.get("status") or {}).get("addresses") or []
                      if a.get("type") == "InternalIP"), "<none>"))]
    elif kind == nodelease.KIND:
        extra = [("holder", lambda b: b["spec"]["holderIdentity"]),
                 ("duration", lambda b: f"{b['spec']['leaseDurationSeconds']}s"),
                 ("renewed", lambda b: age(nodelease.parse_time(b["spec"]["renewTime"])))]
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        extra = [("replicas", lambda b: (b.get("spec") or {}).get("replicas", 1))]
    if wide or kind == "Namespace":
        extra.append(("labels", lambda b: labels_text((b.get("metadata") or {}).get("labels"))))
    headers += [h for h, _ in extra]
    rows = [[r.name, *(str(f(r.body)) for _, f in extra)] for r in found]
    return headers, rows


def labels_text(labels: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def selector_text(selector: dict[str, Any]) -> str:
    labels = selector.get("matchLabels") or {}
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    parts += [f"{e.get('key')} {e.get('operator')} ({','.join(e.get('values') or [])})"
              for e in selector.get("matchExpressions") or []]
    return ",".join(parts) or "<none>"


# -- delete ------------------------------------------------------------------------------------

def cmd_delete(args: argparse.Namespace) -> int:
    if bool(args.files) == bool(args.kind):
        raise UsageError("delete: give either -f PATH... or KIND NAME...")
    if args.kind:
        kind = resolve_kind(args.kind)
        if not args.names:
            raise UsageError(f"delete {args.kind}: name the objects to delete")
        keys = [key_of(kind, args.namespace, n) for n in args.names]
    else:
        manifests = known(read_manifests(args.files))
        keys = [manifest_key(m) for m in manifests]
    missing = []
    with open_store(store_of(args)) as store:
        for key in keys:
            if delete_one(store, key):
                print(f"{ref(key.kind, key.name)} deleted")
            elif not args.ignore_not_found:
                missing.append(f"{ALIASES.get(key.kind, (key.kind.lower(),))[0]} "
                               f'"{key.name}" not found')
    if missing:
        raise NotFound("; ".join(missing))
    return 0


def delete_one(store: Store, key: Key) -> bool:
    """Delete `key`; a node (or its lease) also frees its subnet. False if nothing was there.

    A node's liveness Lease goes with it, as Kubernetes garbage-collects a Node's Lease.
    """
    deleted = False
    if key.kind != ipam.LEASE_KIND:
        try:
            store.delete(key)
            deleted = True
        except NotFound:
            pass
    if key.kind in ("Node", ipam.LEASE_KIND):
        delete_node_lease(store, key.name)
        deleted = ipam.release_node(store, key.name) is not None or deleted
    return deleted


# -- label -------------------------------------------------------------------------------------

def cmd_label(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.kind)
    set_to, remove = parse_label_changes(args.labels)
    key = key_of(kind, args.namespace, args.name)

    def change(body: dict[str, Any]) -> None:
        labels = body.setdefault("metadata", {}).setdefault("labels", {})
        for k, v in set_to.items():
            if not args.overwrite and labels.get(k, v) != v:
                raise PodnetError(f"'{k}' already has a value ({labels[k]}), and --overwrite is "
                                  "false")
            labels[k] = v
        for k in remove:
            labels.pop(k, None)

    with open_store(store_of(args)) as store:
        modify(store, key, change)
    print(f"{ref(kind, args.name)} labeled")
    return 0


def parse_label_changes(items: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    set_to: dict[str, str] = {}
    remove: list[str] = []
    for item in items:
        if item.endswith("-") and "=" not in item:
            key, value = item[:-1], None
        elif "=" in item:
            key, value = item.split("=", 1)
        else:
            raise UsageError(f"label {item!r}: want key=value or key-")
        errors = label_key_errors(key) + (label_value_errors(value) if value else [])
        if errors:
            raise PodnetError(f"label {item!r}: {errors[0]}")
        if value is None:
            remove.append(key)
        else:
            set_to[key] = value
    return set_to, remove

