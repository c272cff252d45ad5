"""The nftables applier: replace the node's `inet podnet` table in one kernel transaction.

Design note. The compiler (`podnet.policy.nftables.render`) gives the whole table; this module
swaps it in atomically, as kube-network-policies does: `add table` (so that the next command
cannot fail on a first run), `delete table`, then the new contents, all in one batch. The
kernel commits the batch whole or not at all, so packets meet either the old ruleset or the
new one, never a half-built or empty one: there is no window of allow-all. Conntrack entries
survive the swap, so established connections keep flowing.

It runs `nft -j -f -` once per change with the JSON on stdin (one process per change, never
per pod or rule). Debian's `python3-nftables` binding is not importable from the project's
virtualenv, and libnftables binds its netlink socket to the namespace of the calling thread;
a child started with `nsenter --net=<path>` is the plain way to reach a node's namespace.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from podnet.datapath.netns import DatapathError, assert_not_root, current_netns

FAMILY = "inet"
TABLE = "podnet"
Json = dict[str, Any]


def transaction(document: Json, family: str = FAMILY, table: str = TABLE) -> Json:
    """The batch that replaces `family table` with the objects of `document`."""
    ref = {"family": family, "name": table}
    commands: list[Json] = [{"metainfo": {"json_schema_version": 1}},
                            {"add": {"table": ref}}, {"delete": {"table": ref}}]
    commands += [{"add": obj} for obj in document["nftables"]]
    return {"nftables": commands}


def apply_ruleset(document: Json, netns: str | None = None) -> None:
    """Replace the `inet podnet` table in `netns` (default: the caller's) with `document`."""
    _nft(["-j", "-f", "-"], netns, json.dumps(transaction(document)))


def list_table(netns: str | None = None, family: str = FAMILY, table: str = TABLE) -> Json:
    """`nft -j list table`: the table as the kernel holds it, counters included."""
    listed: Json = json.loads(_nft(["-j", "list", "table", family, table], netns))
    return listed


def delete_table(netns: str | None = None, family: str = FAMILY, table: str = TABLE) -> None:
    """Remove the table; absent is fine (the batch adds it first, so delete never fails)."""
    ref = {"family": family, "name": table}
    batch = {"nftables": [{"add": {"table": ref}}, {"delete": {"table": ref}}]}
    _nft(["-j", "-f", "-"], netns, json.dumps(batch))


def _nft(args: list[str], netns: str | None, stdin: str | None = None) -> str:
    """Run nft in `netns` (never the root namespace); nft's own message on failure."""
    nft = shutil.which("nft")
    if nft is None:
        raise DatapathError("nft is not installed (Debian package nftables; scripts/setup)")
    assert_not_root(netns or current_netns())
    argv = [nft, *args] if netns is None else ["nsenter", f"--net={netns}", nft, *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        where = f" in {netns}" if netns else ""
        raise DatapathError(f"nft {' '.join(args[:3])}{where} failed: "
                            f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def comparable(document: Json) -> list[Json]:
    """`document` without what the kernel adds (handles, metainfo, counter values), objects
    sorted, rules in their chain's order: equal for a rendered table and its `list_table`."""
    objects: list[Json] = []
    rules: list[Json] = []
    for obj in document["nftables"]:
        if "metainfo" in obj:
            continue
        ((kind, body),) = obj.items()
        body = {k: v for k, v in body.items() if k != "handle"}
        if "elem" in body:
            body["elem"] = sorted(body["elem"], key=lambda e: json.dumps(e, sort_keys=True))
        if "expr" in body:
            body["expr"] = [{"counter": None} if "counter" in e else e for e in body["expr"]]
        (rules if kind == "rule" else objects).append({kind: body})
    objects.sort(key=lambda o: json.dumps(o, sort_keys=True))
    # A stable sort by chain keeps each chain's rules in order.
    return objects + sorted(rules, key=lambda r: str(r["rule"]["chain"]))


def rule_counters(listing: Json) -> dict[str, int]:
    """Packets counted per rule comment in a `list_table` (`ns/name ingress[0]`, `default deny
    ingress: ...`), summed over the rules that share a comment."""
    out: dict[str, int] = {}
    for obj in listing["nftables"]:
        rule = obj.get("rule", {})
        for e in rule.get("expr", []):
            if "counter" in e and "comment" in rule:
                out[rule["comment"]] = out.get(rule["comment"], 0) + e["counter"]["packets"]
    return out
