"""The nftables compiler: the engine's resolved policies, as one `inet podnet` table for a node.

Design note. In the routed model every packet of a pod is forwarded by its node, so policy
lives in the node's forward path, keyed by the pod's host-side veth (`iifname`: the pod
sends, its egress; `oifname`: the pod receives, its ingress). Traffic from the node itself
to its pods leaves through `output`, never `forward`: "traffic from the pod's own node" passes
by construction. A pod's traffic to its node's own addresses enters through `input`, where
the pod's egress chain applies too.

    forward_egress (hook forward, prio 0)    anti-spoofing, ct state, iifname vmap @egress
    forward_ingress (hook forward, prio 10)  ct state, oifname vmap @ingress
    input_egress (hook input, prio 0)        anti-spoofing, ct state, iifname vmap @egress
    egress-<h> / ingress-<h>                 one per (direction, selecting policies, named
                                             ports): jump to each policy, then counter drop
    egress-policy-<h> / ingress-policy-<h>   one per (direction, policy): one rule per policy
                                             rule, `counter accept`, comment `ns/name ingress[i]`

Egress and ingress are two base chains on the same hook: `accept` ends only the chain that
says it, so a packet allowed by its sender's egress still meets its receiver's ingress, and
each policy's rules exist once however many local pods it selects. Peers are named sets
shared by equal content (pod addresses plus ipBlocks with their excepts cut out), ports are
`meta l4proto . th dport` interval sets, and a named port on egress is resolved on each
destination pod (`ip daddr . meta l4proto . th dport`). The compiler decides nothing: peers,
ports and isolation are the engine's (`Resolution`), translated. Only pods' packets are ever
dropped: every dropping rule first matches a pod veth, so the node's other traffic meets
nothing but `accept`s, which end only this table's chains.

The document has the shape of `nft -j list table inet podnet` (objects, no commands, no
handles), deterministic: sets and chains sorted and named by a hash of their content.

Policy chains are most of the work, and an agent renders again on every policy change: given
a `ChainCache`, a render reuses the policy chains (with their sets) of the render before it,
so a changed policy compiles that policy alone; the document is the same either way.
IPv4 only for now: pods have no IPv6 address, so IPv6 from a pod veth is spoofed and dropped.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from podnet.errors import PodnetError
from podnet.model import Direction, IPAddress, IPBlock, NetworkPolicy, Pod, Protocol
from podnet.policy.portset import PortSet
from podnet.policy.resolve import Resolution, ResolvedRule
from podnet.policy.selection import PodSelection

Json = dict[str, Any]
FAMILY = "inet"
TABLE = "podnet"
COMMENT_MAX = 128  # nft refuses longer comments (NFTNL_UDATA_COMMENT_MAXLEN)
LOG_PREFIX_MAX = 127  # NF_LOG_PREFIXLEN, its NUL excluded
PROTOCOLS = (Protocol.TCP, Protocol.UDP, Protocol.SCTP)
Ranges = list[tuple[int, int]]


class NodePodError(PodnetError, ValueError):
    """A pod wired on the node that cannot be policed: unknown to the cluster, in the host
    network, or behind a veth named twice."""


@dataclass(frozen=True)
class NodePod:
    """A pod wired on this node: its `ns/name`, host-side veth and addresses."""

    pod: str
    ifname: str
    ips: tuple[IPAddress, ...]


@dataclass(frozen=True)
class AddressFamily:
    """The nftables words of one IP family; IPv6 is a second instance, once pods have it."""

    version: int
    payload: str  # `ip` / `ip6`
    addr_type: str  # `ipv4_addr` / `ipv6_addr`


IPV4 = AddressFamily(4, "ip", "ipv4_addr")

_L4 = {"concat": [{"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}
_COUNTER = {"counter": {"packets": 0, "bytes": 0}}
_ACCEPT: Json = {"accept": None}
_DROP: Json = {"drop": None}


def render(res: Resolution, node_pods: Sequence[NodePod], family: AddressFamily = IPV4,
           log_group: int | None = None, cache: ChainCache | None = None) -> Json:
    """The `inet podnet` table enforcing `res` for the pods wired on one node.

    With `log_group`, every counted verdict (policy rule, default deny, anti-spoofing) also
    sends the first packet of each connection to that NFLOG group, prefixed with the rule's
    comment, so that flows and denials can be told apart one by one. With `cache`, the policy
    chains of the last render given it are reused where they still hold.
    """
    cache = cache or ChainCache()
    compiler = _Compiler(res, family, log_group, cache.take(res, family, log_group))
    document = compiler.document(node_pods)
    cache.chains = compiler.policy_chains  # those this render used: the next one's
    return document


@dataclass(frozen=True)
class PolicyChain:
    """One policy's chain for one direction, the sets its rules name, and the policy it was
    compiled from."""

    policy: NetworkPolicy
    name: str
    body: list[Json]
    sets: dict[str, Json]


# (direction, the policy's `ns/name`, the numbers its named ports mean on the local pod:
# ingress only); the chain holds while the policy is equal to the one it was compiled from.
ChainKey = tuple[Direction, str, tuple[int | None, ...]]


class ChainCache:
    """The policy chains of the last render, for the next one.

    A policy's chain is a function of the policy, the pods and namespaces of the cluster (which
    pods its peers match, their addresses and named ports) and, for ingress, the local pod's
    numbers for the policy's named ports. The key and `PolicyChain.policy` hold the first and
    the last (a policy is compared, not hashed: cheaper for the same object); the pods and
    namespaces are those of the engine's `PodSelection`, which is reused only while they stay
    the same: another selection (or family, or log group) empties the cache.
    """

    def __init__(self) -> None:
        self.selection: PodSelection | None = None
        self.settings: tuple[AddressFamily, int | None] | None = None
        self.chains: dict[ChainKey, PolicyChain] = {}

    def take(self, res: Resolution, family: AddressFamily, log_group: int | None
             ) -> dict[ChainKey, PolicyChain]:
        """The chains that hold for a render of `res` (the cache now serves that render)."""
        if self.selection is not res.selection or self.settings != (family, log_group):
            self.selection, self.settings, self.chains = res.selection, (family, log_group), {}
        return self.chains


def _digest(content: object) -> str:
    """A name from content: `repr` is deterministic here (the compiler builds every dict in one
    order and sorts every list) and 2.4 times cheaper than `json.dumps(sort_keys=True)`."""
    return hashlib.sha256(repr(content).encode()).hexdigest()[:12]


def _comment(text: str, limit: int = COMMENT_MAX) -> str:
    """`text`, cut to the kernel's limit with a hash that keeps it unique."""
    if len(text.encode()) <= limit:
        return text
    return text[: limit - 14] + "~" + _digest(text)


def _match(left: Json, right: object, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> Json:
    return {"meta": {"key": key}}


def _merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    """Sorted disjoint ranges; touching ones joined (an interval set refuses overlaps)."""
    merged: Ranges = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _cut(ranges: Ranges, holes: Ranges) -> Ranges:
    """`ranges` without the addresses in `holes` (both sorted and disjoint)."""
    out: Ranges = []
    for lo, hi in ranges:
        start = lo
        for hole_lo, hole_hi in holes:
            if hole_hi < start or hole_lo > hi:
                continue
            if hole_lo > start:
                out.append((start, hole_lo - 1))
            start = hole_hi + 1
        if start <= hi:
            out.append((start, hi))
    return out


class _Compiler:
    """Collects sets and chains by content while the node's chains are built."""

    def __init__(self, res: Resolution, family: AddressFamily, log_group: int | None,
                 kept: dict[ChainKey, PolicyChain]) -> None:
        self.res = res
        self.family = family
        self.log_group = log_group
        self.sets: dict[str, Json] = {}
        self.chains: dict[str, list[Json]] = {}
        self._class_chains: dict[tuple[Direction, int], str | None] = {}
        # A policy's chain is built once per key, and taken from the last render if it has it.
        self._kept = kept
        self.policy_chains: dict[ChainKey, PolicyChain] = {}
        self._policies = {p.key: p for p in res.cluster.policies}
        # By the peers' pods, ipBlocks and field: rules of different policies often share them.
        self._peer_matches: dict[tuple[bytes, tuple[IPBlock, ...], str], Json] = {}
        self._address_sets: dict[tuple[tuple[int, int], ...], str] = {}
        self._addresses = [self._pod_addresses(p) for p in res.pods]

    # -- the document ----------------------------------------------------------------------
    def document(self, node_pods: Sequence[NodePod]) -> Json:
        node_pods = sorted(node_pods, key=lambda p: p.ifname)
        for first, second in itertools.pairwise(node_pods):
            if first.ifname == second.ifname:
                raise NodePodError(f"veth {first.ifname} given for {first.pod} and {second.pod}")
        maps: dict[Direction, list[list[object]]] = {d: [] for d in Direction}
        for node_pod in node_pods:
            pod = self._local_pod(node_pod)
            cls = int(self.res.class_of[self.res.pod_index[pod.key]])
            for d in Direction:
                chain = self._class_chain(d, cls, pod)
                if chain is not None:
                    maps[d].append([node_pod.ifname, {"jump": {"target": chain}}])
        self._set("pod_ifnames", "ifname", [p.ifname for p in node_pods], interval=False)
        self._set("pod_addresses", ["ifname", self.family.addr_type],
                  [{"concat": [p.ifname, str(ip)]} for p in node_pods for ip in p.ips
                   if ip.version == self.family.version], interval=False)
        self._base_chains()
        objects: list[Json] = [{"table": {"family": FAMILY, "name": TABLE}}]
        objects += [{"set": self.sets[n]} for n in sorted(self.sets)]
        objects += [{"chain": self._chain_header(n)} for n in sorted(self.chains)]
        objects += [{"map": self._object(name=str(d).lower(), type="ifname", map="verdict",
                                         **({"elem": maps[d]} if maps[d] else {}))}
                    for d in (Direction.EGRESS, Direction.INGRESS)]
        objects += [{"rule": self._object(chain=n, **rule)}
                    for n in sorted(self.chains) for rule in self.chains[n]]
        return {"nftables": objects}

    def _object(self, **fields: object) -> Json:
        return {"family": FAMILY, "table": TABLE, **fields}

    def _chain_header(self, name: str) -> Json:
        header = self._object(name=name)
        hook = _BASE_CHAINS.get(name)
        if hook is not None:
            header.update(type="filter", hook=hook[0], prio=hook[1], policy="accept")
        return header

    def _local_pod(self, node_pod: NodePod) -> Pod:
        index = self.res.pod_index.get(node_pod.pod)
        if index is None:
            raise NodePodError(f"pod {node_pod.pod} on {node_pod.ifname} is not in the cluster")
        pod = self.res.pods[index]
        if pod.host_network:
            raise NodePodError(f"pod {node_pod.pod} is in the host network: it has no veth")
        return pod

    # -- base chains -----------------------------------------------------------------------
    def _base_chains(self) -> None:
        iif, oif, saddr = _meta("iifname"), _meta("oifname"), self._addr("saddr")
        established = [_match({"ct": {"key": "state"}}, ["established", "related"], "in"), _ACCEPT]

        def invalid(ifname: Json) -> Json:
            # Only a pod's packets: the table drops nothing of the node's other traffic.
            return _rule([_match(ifname, "@pod_ifnames"),
                          _match({"ct": {"key": "state"}}, "invalid", "in"), _DROP])

        spoofing = [
            self._counted([_match(iif, "@pod_ifnames"),
                           _match({"concat": [iif, saddr]}, "@pod_addresses", "!=")], _DROP,
                          "anti-spoofing: source address is not the pod's"),
            self._counted([_match(iif, "@pod_ifnames"), _match(_meta("nfproto"), "ipv6")], _DROP,
                          "anti-spoofing: pods have no IPv6 address"),
        ]
        sender = [*spoofing, _rule(established), invalid(iif),
                  _rule([{"vmap": {"key": iif, "data": "@egress"}}])]
        self.chains["forward_egress"] = sender
        self.chains["input_egress"] = sender
        self.chains["forward_ingress"] = [
            _rule(established), invalid(oif), _rule([{"vmap": {"key": oif, "data": "@ingress"}}])]

    # -- per class and per policy ----------------------------------------------------------
    def _class_chain(self, d: Direction, cls: int, pod: Pod) -> str | None:
        """The chain of the local pods of class `cls` for `d`; None when not isolated."""
        key = (d, cls)
        if key not in self._class_chains:
            isolating = sorted(self.res.isolating_policies(d, cls))
            name = None
            if isolating:
                rules = self.res.rules(d)
                by_policy: dict[str, list[ResolvedRule]] = {}
                for rid in self.res.class_rules(d, cls):
                    by_policy.setdefault(rules[rid].ref.policy, []).append(rules[rid])
                body = [_rule([{"jump": {"target": self._policy_chain(d, p, by_policy[p], pod)}}],
                              p)
                        for p in isolating if p in by_policy]
                body.append(self._counted(
                    [], _DROP, f"default deny {str(d).lower()}: {', '.join(isolating)}"))
                name = self._chain(str(d).lower(), body)
            self._class_chains[key] = name
        return self._class_chains[key]

    def _policy_chain(self, d: Direction, policy: str, rules: list[ResolvedRule],
                      local: Pod) -> str:
        """The chain of one policy's rules for `d`, as they apply to the local pod `local`."""
        named = (tuple(local.named_port(p.port, p.protocol) for r in rules for p in r.ports
                       if isinstance(p.port, str)) if d is Direction.INGRESS else ())
        key = (d, policy, named)
        made = self.policy_chains.get(key) or self._kept.get(key)
        if made is None or made.policy != self._policies[policy]:
            body = []
            for rule in rules:
                for exprs in (self._ingress_rule(rule, local) if d is Direction.INGRESS
                              else self._egress_rule(rule)):
                    body.append(self._counted(exprs, _ACCEPT, str(rule.ref)))
            name = self._chain(f"{str(d).lower()}-policy", body)
            made = PolicyChain(self._policies[policy], name, body,
                               {n: self.sets[n] for n in _named_sets(body)})
        self.policy_chains[key] = made
        self.chains[made.name] = made.body
        self.sets.update(made.sets)
        return made.name

    def _ingress_rule(self, rule: ResolvedRule, local: Pod) -> list[list[Json]]:
        """Ingress: peers are sources; named ports resolve on the local (destination) pod."""
        exprs = [] if rule.any_peer else [self._peers(rule, "saddr")]
        return [exprs + self._ports(rule.ports_on(local))]

    def _egress_rule(self, rule: ResolvedRule) -> list[list[Json]]:
        """Egress: peers are destinations; named ports resolve on each destination pod."""
        if not rule.has_named_ports:
            exprs = [] if rule.any_peer else [self._peers(rule, "daddr")]
            return [exprs + self._ports(rule.ports_on(None))]
        out = []
        pods = (range(len(self.res.pods)) if rule.any_peer
                else (int(i) for i in np.flatnonzero(rule.peers)))
        per_address: dict[int, PortSet] = {}
        per_class: dict[int, PortSet] = {}  # a class's pods have the same named ports
        for i in pods:
            cls = int(self.res.class_of[i])
            ports = per_class.get(cls)
            if ports is None:
                ports = per_class[cls] = rule.ports_on(self.res.pods[i])
            for lo, _ in self._addresses[i]:
                per_address[lo] = per_address.get(lo, PortSet.none()) | ports
        elements = [{"concat": [str(_ip(self.family, a)), *element]}
                    for a in sorted(per_address) for element in _port_elements(per_address[a])]
        name = self._set(f"dports-{_digest(elements)}",
                         [self.family.addr_type, "inet_proto", "inet_service"], elements)
        out.append([_match({"concat": [self._addr("daddr"), *_L4["concat"]]}, f"@{name}")])
        numeric = rule.ports_on(None)  # addresses outside the pods: named ports match nothing
        if not numeric.is_empty() and (rule.any_peer or rule.ip_blocks):
            exprs = [] if rule.any_peer else [self._address_match(
                "daddr", self._block_ranges(rule.ip_blocks))]
            out.append(exprs + self._ports(numeric))
        return out

    # -- sets ------------------------------------------------------------------------------
    def _peers(self, rule: ResolvedRule, field: str) -> Json:
        key = (rule.peers.tobytes(), rule.ip_blocks, field)
        if key not in self._peer_matches:
            pods = [r for i in np.flatnonzero(rule.peers) for r in self._addresses[int(i)]]
            self._peer_matches[key] = self._address_match(
                field, _merge(pods + self._block_ranges(rule.ip_blocks)))
        return self._peer_matches[key]

    def _address_match(self, field: str, ranges: Ranges) -> Json:
        key = tuple(ranges)
        name = self._address_sets.get(key)
        if name is None:
            elements = [_address_element(self.family, lo, hi) for lo, hi in ranges]
            name = self._address_sets[key] = self._set(f"peers-{_digest(elements)}",
                                                       self.family.addr_type, elements)
        return _match(self._addr(field), f"@{name}")

    def _ports(self, ports: PortSet) -> list[Json]:
        if ports.is_all():
            return []
        elements = [{"concat": e} for e in _port_elements(ports)]
        name = self._set(f"ports-{_digest(elements)}", ["inet_proto", "inet_service"], elements)
        return [_match(_L4, f"@{name}")]

    def _block_ranges(self, blocks: Iterable[IPBlock]) -> Ranges:
        out: Ranges = []
        for b in blocks:
            if b.cidr.version == self.family.version:
                holes = _merge(_network_range(e) for e in b.except_
                               if e.version == self.family.version)
                out += _cut([_network_range(b.cidr)], holes)
        return _merge(out)

    def _pod_addresses(self, pod: Pod) -> Ranges:
        return [(int(ip), int(ip)) for ip in pod.ips if ip.version == self.family.version]

    def _set(self, name: str, type_: object, elements: list[Any], interval: bool = True) -> str:
        body = self._object(name=name, type=type_)
        if interval:
            body["flags"] = ["interval"]
        if elements:
            body["elem"] = elements
        self.sets[name] = body
        return name

    def _chain(self, prefix: str, body: list[Json]) -> str:
        name = f"{prefix}-{_digest(body)}"
        self.chains[name] = body
        return name

    def _counted(self, exprs: list[Json], verdict: Json, comment: str) -> Json:
        """A rule that counts (and, with a log group, logs) what it decides, named `comment`."""
        log = ([] if self.log_group is None else
               [{"log": {"prefix": _comment(comment, LOG_PREFIX_MAX), "group": self.log_group}}])
        return _rule([*exprs, *log, _COUNTER, verdict], comment)

    def _addr(self, field: str) -> Json:
        return {"payload": {"protocol": self.family.payload, "field": field}}


_BASE_CHAINS = {"forward_egress": ("forward", 0), "forward_ingress": ("forward", 10),
                "input_egress": ("input", 0)}


def _named_sets(body: list[Json]) -> list[str]:
    """The sets the rules of `body` look up (`@name`)."""
    return [right[1:] for rule in body for e in rule["expr"] if "match" in e
            and isinstance(right := e["match"]["right"], str) and right.startswith("@")]


def _rule(exprs: list[Json], comment: str | None = None) -> Json:
    return {"expr": exprs, **({"comment": _comment(comment)} if comment else {})}


def _network_range(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    return int(net.network_address), int(net.broadcast_address)


def _address_element(family: AddressFamily, lo: int, hi: int) -> object:
    """As nft prints it: an address, a prefix when the range is one, else a range."""
    if lo == hi:
        return str(_ip(family, lo))
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:
        bits = 32 if family.version == 4 else 128
        return {"prefix": {"addr": str(_ip(family, lo)), "len": bits - size.bit_length() + 1}}
    return {"range": [str(_ip(family, lo)), str(_ip(family, hi))]}


def _ip(family: AddressFamily, value: int) -> IPAddress:
    return ipaddress.IPv4Address(value) if family.version == 4 else ipaddress.IPv6Address(value)


def _port_elements(ports: PortSet) -> list[list[object]]:
    """`[protocol, port or range]` for each range of TCP, UDP and SCTP in `ports`."""
    return [[str(p).lower(), lo if lo == hi else {"range": [lo, hi]}]
            for p in PROTOCOLS for lo, hi in ports.ranges(p)]
