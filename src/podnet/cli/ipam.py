"""`podnet ipam show`: per node, its subnet, how much of it is used, and who holds what."""

from __future__ import annotations

import argparse
from typing import Any

from podnet import ipam
from podnet.cli.output import print_json, print_table
from podnet.cli.resources import add_store, store_of
from podnet.store import NotFound, Store, open_store


def register(sub: Any) -> None:
    parser = sub.add_parser("ipam", help="address management: node subnets and pod addresses")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    show = verbs.add_parser("show", help="per node: subnet, used, free, and each allocation")
    show.add_argument("--node", metavar="NODE", help="only this node")
    show.add_argument("-o", "--output", choices=("table", "json"), default="table")
    add_store(show)
    show.set_defaults(handler=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    with open_store(store_of(args)) as store:
        report = usage(store, args.node)
    if args.output == "json":
        print_json(report)
        return 0
    cluster = report["cluster"]
    if cluster:
        print(f"cluster CIDR {cluster['clusterCIDR']}, /{cluster['nodeSubnetPrefix']} per node")
    print_table(["node", "subnet", "used", "free"],
                [[n["node"], n["subnet"], n["used"], n["free"]] for n in report["nodes"]])
    for n in report["nodes"]:
        if n["allocations"]:
            print()
            print_table(["pod", "container", "ifname", "ip"],
                        [[a["pod"] or "<unknown>", a["containerID"], a["ifname"], a["ip"]]
                         for a in n["allocations"]],
                        title=f"{n['node']} {n['subnet']}")
    return 0


def usage(store: Store, only: str | None = None) -> dict[str, Any]:
    """What `ipam show -o json` prints (documented in docs/store.md)."""
    try:
        cluster: dict[str, Any] | None = ipam.cluster_config(store).spec()
    except NotFound:
        cluster = None
    try:
        leases = [ipam.node_lease(store, only)] if only else ipam.node_leases(store)
    except NotFound:
        raise NotFound(f"node {only} has no subnet: it never registered, or was deleted") from None
    nodes = []
    for lease in leases:
        alloc = ipam.pod_allocator(store, lease)
        held = alloc.reservations()
        nodes.append({
            "node": lease.node,
            "subnet": str(lease.subnet),
            "used": len(held),
            "free": len(alloc.range) - len(held),
            "allocations": [{"pod": r.pod, "containerID": r.attachment.container_id,
                             "ifname": r.attachment.ifname, "ip": str(r.ip)} for r in held],
        })
    return {"cluster": cluster, "nodes": nodes}
