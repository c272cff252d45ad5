"""The nftables applier: change the node's `inet podnet` table in one kernel transaction.

Design note. The compiler (`podnet.policy.nftables.render`) gives the whole table. The first
time, `apply_ruleset` swaps it in, as kube-network-policies does: `add table` (so that the
next command cannot fail on a first run), `delete table`, then the new contents, all in one
batch. After that, `NodeTable` sends only the difference from the table it applied last:
the compiler names sets and chains by their content, so a change of pods or policies is a few
new sets and chains, a few elements of the fixed-name sets and maps, and the old objects
deleted. At 300 pods and 300 policies the whole table is ~1,200 objects (~70 ms of `nft` on an
idle machine); one policy changed is a dozen commands. Either way the kernel commits the batch
whole or not at all, so packets meet the old ruleset or the new one, never a half-built one:
there is no window of allow-all. Conntrack entries survive both, so established connections
keep flowing, and the chains a change does not touch keep their counters.

Each change is one JSON batch, never a command per pod or rule. The agent, which runs in its
node's namespace, hands it to libnftables in its own process (`datapath.libnftables`: nft's
parser without starting `nft`, 0.2 ms against 5-30 ms); for another namespace (tests, the
lab's CLI in the root namespace) `nsenter --net=<path> nft -j -f -` runs it there, since a
libnftables context belongs to the namespace of the thread that made it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from typing import Any

from podnet.datapath import libnftables
from podnet.datapath.netns import DatapathError, assert_not_root, current_netns

log = logging.getLogger(__name__)

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
    _nft(json.dumps(transaction(document)), netns)


class NodeTable:
    """The node's table and the document last applied to it: each `apply` after the first
    sends only the difference. The agent owns the table; if the kernel refuses a difference
    (someone changed the table behind the agent's back), the whole table is replaced."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._applied: _Objects | None = None
        self._document: Json | None = None

    def holds(self, document: Json) -> bool:
        """Whether `document` is what was applied last."""
        return self._document == document

    def apply(self, document: Json) -> int:
        """Make the table `document`; the number of commands sent (0: it already was)."""
        wanted = _Objects(document)
        self._document = None
        if self._applied is not None:
            commands = difference(self._applied, wanted)
            if commands is not None:
                if not commands:
                    return 0
                try:
                    _nft(json.dumps({"nftables": commands}), self.netns)
                except DatapathError as err:
                    log.warning("nft refused the difference, replacing the table: %s", err)
                else:
                    self._applied, self._document = wanted, document
                    return len(commands)
        self._applied = None  # until the swap is known to have happened
        apply_ruleset(document, self.netns)
        self._applied, self._document = wanted, document
        return len(document["nftables"])


def difference(before: _Objects, after: _Objects) -> list[Json] | None:
    """The commands that turn the table `before` into `after` (both as the compiler renders
    them), ordered so that every reference is valid when the batch commits: new sets and
    chains first, then rules and elements, then the old objects; None when a set or chain of
    the same name changed its type (only a swap can do that)."""
    for name in before.headers.keys() & after.headers.keys():
        if before.headers[name] != after.headers[name]:
            return None
    added = [n for n in after.headers if n not in before.headers]
    removed = [n for n in before.headers if n not in after.headers]
    commands: list[Json] = [{"add": after.whole(n)} for n in added]
    for chain in after.chains():
        rules = after.rules.get(chain, [])
        if chain in before.headers and rules != before.rules.get(chain, []):
            commands.append({"flush": after.named(chain)})
        if chain not in before.headers or rules != before.rules.get(chain, []):
            commands += [{"add": {"rule": rule}} for rule in rules]
    for name in after.elements.keys() & before.elements.keys():
        old_elems, new_elems = before.elements[name], after.elements[name]
        gone = [key for key, e in old_elems.items() if new_elems.get(key) != e]
        came = [e for key, e in new_elems.items() if old_elems.get(key) != e]
        if gone:  # a map's element is deleted by its key
            is_map = after.headers[name][0] == "map"
            commands.append({"delete": {"element": {**after.ref(name), "elem": [
                old_elems[key][0] if is_map else old_elems[key] for key in gone]}}})
        if came:
            commands.append({"add": {"element": {**after.ref(name), "elem": came}}})
    commands += [{"flush": before.named(n)} for n in removed if n in before.chain_names]
    commands += [{"delete": before.named(n)} for n in removed]
    return commands


class _Objects:
    """A rendered document by name: headers of sets, maps and chains (without elements),
    their elements by key, and each chain's rules in order."""

    def __init__(self, document: Json) -> None:
        self.headers: dict[str, tuple[str, Json]] = {}
        self.elements: dict[str, dict[object, Any]] = {}
        self.rules: dict[str, list[Json]] = {}
        self.chain_names: set[str] = set()
        for obj in document["nftables"]:
            ((kind, body),) = obj.items()
            if kind == "rule":
                self.rules.setdefault(body["chain"], []).append(body)
            elif kind in ("set", "map", "chain"):
                self.headers[body["name"]] = kind, {k: v for k, v in body.items() if k != "elem"}
                if kind == "chain":
                    self.chain_names.add(body["name"])
                else:  # a map's element is [key, value]: keyed by its key
                    self.elements[body["name"]] = {
                        _key(e[0] if kind == "map" else e): e for e in body.get("elem", [])}

    def chains(self) -> list[str]:
        return [n for n in self.headers if n in self.chain_names]

    def ref(self, name: str) -> Json:
        body = self.headers[name][1]
        return {"family": body["family"], "table": body["table"], "name": name}

    def named(self, name: str) -> Json:
        return {self.headers[name][0]: self.ref(name)}

    def whole(self, name: str) -> Json:
        """The object as `add` wants it: with its elements (an `add` of an existing set or
        chain is never sent, so elements are never added twice)."""
        kind, body = self.headers[name]
        elems = list(self.elements.get(name, {}).values())
        return {kind: {**body, "elem": elems} if elems else body}


def _key(element: object) -> object:
    """A set element or map key as a dict key: names and addresses as they are (most are),
    others by `repr`, which is deterministic for rendered documents (the compiler builds every
    dict in one order) and three times cheaper than `json.dumps(sort_keys=True)`."""
    return element if isinstance(element, str | int) else repr(element)


def list_table(netns: str | None = None, family: str = FAMILY, table: str = TABLE) -> Json:
    """`nft -j list table`: the table as the kernel holds it, counters included."""
    listed: Json = json.loads(_nft(f"list table {family} {table}", netns))
    return listed


def delete_table(netns: str | None = None, family: str = FAMILY, table: str = TABLE) -> None:
    """Remove the table; absent is fine (the batch adds it first, so delete never fails)."""
    ref = {"family": family, "name": table}
    batch = {"nftables": [{"add": {"table": ref}}, {"delete": {"table": ref}}]}
    _nft(json.dumps(batch), netns)


def _nft(command: str, netns: str | None) -> str:
    """`command` (nft's words, or a JSON batch) in `netns`, never the root namespace: through
    libnftables in this process when `netns` is the caller's own, else `nft` run inside it.
    Output as JSON; nft's own message on failure."""
    assert_not_root(netns or current_netns())
    batch = command.startswith("{")
    ctx = libnftables.context() if netns is None else None
    if ctx is not None:
        ok, out, err = ctx.run(command)
    else:
        nft = shutil.which("nft")
        if nft is None:
            raise DatapathError("nft is not installed (Debian package nftables; scripts/setup)")
        argv = [nft, "-j", "-f", "-"] if batch else [nft, "-j", *command.split()]
        if netns is not None:
            argv = ["nsenter", f"--net={netns}", *argv]
        done = subprocess.run(argv, input=command if batch else None, capture_output=True,
                              text=True, check=False)
        ok, out, err = done.returncode == 0, done.stdout, done.stderr
    if not ok:
        where = f" in {netns}" if netns else ""
        raise DatapathError(f"nft {'batch' if batch else command}{where} failed: "
                            f"{err.strip() or out.strip()}")
    return out


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
