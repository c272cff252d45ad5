"""The agent's flow log: each policy decision the kernel reports, one JSON line, bounded on disk.

With a flow log the agent renders its table with `log group FLOW_LOG_GROUP` on every counted
rule, reads the group in its node's namespace (`datapath.nflog`) and appends one line per
decision: when, which rule decided (its comment is the log prefix), and the packet's addresses
and ports. Only the first packet of a connection reaches the policy chains (established
traffic is accepted before them), so a connection costs one line per side that a policy
isolates, and nothing is copied for its established traffic; pods that no policy selects are
not logged at all. The file is rotated at `MAX_BYTES` into one `.1`, so at most twice that
is kept. Each decision is also counted in the agent's metrics (`podnet_policy_verdicts_total`);
decisions the kernel dropped because the agent read too slowly are counted too
(`podnet_flow_log_lost_total`), and reading goes on.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podnet.agent.metrics import Metrics
from podnet.datapath.nflog import LoggedPacket, NflogSocket
from podnet.errors import PodnetError

log = logging.getLogger(__name__)

FLOW_LOG_GROUP = 100
MAX_BYTES = 4 << 20
ALLOWED, DENIED = "allowed", "denied"
# The comments the compiler gives its counted rules (podnet.policy.nftables).
_POLICY_RULE = re.compile(r"(?P<policy>\S+) (?P<direction>ingress|egress)\[\d+\]")
_DEFAULT_DENY = re.compile(r"default deny (?P<direction>ingress|egress): (?P<policies>.*)")


@dataclass(frozen=True)
class Decision:
    """What a rule's comment says: allowed by a policy's rule, or denied (default or spoofing)."""

    verdict: str
    direction: str  # ingress, egress; "" for anti-spoofing
    policies: tuple[str, ...]  # the policy whose rule allowed; the isolating ones for a deny
    rule: str  # "ingress[0]", "default deny", "anti-spoofing: ..."

    @classmethod
    @functools.lru_cache(maxsize=4096)  # a node's tables have few distinct comments
    def of(cls, prefix: str) -> Decision:
        if match := _POLICY_RULE.fullmatch(prefix):
            return cls(ALLOWED, match["direction"], (match["policy"],),
                       prefix[len(match["policy"]) + 1:])
        if match := _DEFAULT_DENY.fullmatch(prefix):
            return cls(DENIED, match["direction"], tuple(match["policies"].split(", ")),
                       "default deny")
        return cls(DENIED, "", (), prefix)  # anti-spoofing: the only other counted drop


@dataclass(frozen=True)
class Flow:
    """One logged decision on one node."""

    time: float
    node: str
    decision: Decision
    protocol: str
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    sport: int | None
    dport: int | None

    @classmethod
    def of(cls, node: str, packet: LoggedPacket) -> Flow:
        return cls(packet.time, node, Decision.of(packet.prefix), packet.protocol, packet.src,
                   packet.dst, packet.sport, packet.dport)

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        return {"time": round(self.time, 6), "node": self.node, "verdict": d.verdict,
                "direction": d.direction, "policies": list(d.policies), "rule": d.rule,
                "protocol": self.protocol, "src": str(self.src), "sport": self.sport,
                "dst": str(self.dst), "dport": self.dport}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Flow:
        return cls(float(doc["time"]), doc["node"],
                   Decision(doc["verdict"], doc["direction"], tuple(doc["policies"]),
                            doc["rule"]),
                   doc["protocol"], ipaddress.IPv4Address(doc["src"]),
                   ipaddress.IPv4Address(doc["dst"]), doc["sport"], doc["dport"])


class FlowLog:
    """Reads NFLOG in the agent's namespace (the node) and appends to `path`."""

    def __init__(self, path: Path, node: str, group: int = FLOW_LOG_GROUP,
                 max_bytes: int = MAX_BYTES, metrics: Metrics | None = None) -> None:
        self.path = path
        self.node = node
        self.metrics = metrics or Metrics()
        self.max_bytes = max_bytes
        try:
            path.open("a").close()  # an unwritable path fails the agent's start, not later
        except OSError as err:
            raise PodnetError(f"flow log {path}: {err.strerror}") from err
        self._socket = NflogSocket(group)  # bound now: a busy group fails the agent's start

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(stop,), name="podnet-flows",
                                  daemon=True)
        thread.start()
        return thread

    def _run(self, stop: threading.Event) -> None:
        overruns = lost = 0  # already counted in the metrics
        with self._socket:
            while not stop.is_set():
                flows = [Flow.of(self.node, p) for p in self._socket.read(timeout=0.5)]
                self.metrics.decided(f.decision for f in flows)
                try:
                    append_flows(self.path, flows, self.max_bytes)
                except OSError as err:  # the policy keeps being enforced; only logging stops
                    log.warning("flow log %s: %s; %d decisions not logged", self.path,
                                err.strerror, len(flows))
                if self._socket.overruns > overruns or self._socket.lost > lost:
                    self.metrics.flow_log_overruns.inc(self._socket.overruns - overruns)
                    self.metrics.flow_log_lost.inc(self._socket.lost - lost)
                    log.warning("flow log: reading too slowly; the kernel dropped decisions "
                                "(%d overruns, %d decisions lost since the start)",
                                self._socket.overruns, self._socket.lost)
                    overruns, lost = self._socket.overruns, self._socket.lost


def append_flows(path: Path, flows: Iterable[Flow], max_bytes: int = MAX_BYTES) -> None:
    """Append one line per flow; first rename a log that would grow past `max_bytes` to
    `.1` (replacing the previous `.1`)."""
    lines = "".join(json.dumps(f.to_json()) + "\n" for f in flows)
    if not lines:
        return
    try:
        if path.stat().st_size + len(lines) > max_bytes:
            os.replace(path, rotated(path))
    except FileNotFoundError:
        pass
    with path.open("a") as out:
        out.write(lines)


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def read_flows(path: Path) -> list[Flow]:
    """The flows of one log, oldest first (the rotated part, then the current one)."""
    flows = []
    for part in (rotated(path), path):
        try:
            text = part.read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                flows.append(Flow.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a line being written, or cut by a crash
    return flows
