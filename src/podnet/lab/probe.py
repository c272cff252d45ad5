"""Probes in the lab: servers, the prober, results as truth tables, and the command line.

`python -m podnet.lab.probe connect IP PORT` is the command each `ProbeResult` carries to
reproduce it by hand; `python -m podnet.lab.probe serve --pod x/a --port 80/TCP` serves a pod's
ports in the current namespace until killed (host-network pods, people). See docs/lab.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from podnet.errors import PodnetError
from podnet.lab.prober import DEFAULT_TIMEOUT, ProbeJob, ProbeResult, run_probes
from podnet.lab.probeserver import Answer, ProbeServer, ProbeServerError
from podnet.lab.reachability import PodString, Reachability
from podnet.lab.truthtable import TruthTable
from podnet.model import Protocol

__all__ = [
    "Answer",
    "ProbeJob",
    "ProbeResult",
    "ProbeServer",
    "ProbeServerError",
    "observe",
    "probe_json",
    "run_probes",
    "truth_tables",
]

ProbeKey = tuple[int, Protocol]


def _pods(results: Iterable[ProbeResult]) -> list[PodString]:
    """Sources and destinations in order of first appearance."""
    seen: dict[PodString, None] = {}
    for r in results:
        seen.setdefault(r.job.src)
        seen.setdefault(r.job.dst)
    return list(seen)


def _by_probe(results: Iterable[ProbeResult]) -> dict[ProbeKey, list[ProbeResult]]:
    grouped: dict[ProbeKey, list[ProbeResult]] = {}
    for r in results:
        grouped.setdefault((r.job.port, r.job.protocol), []).append(r)
    return grouped


def truth_tables(results: Sequence[ProbeResult],
                 pods: Sequence[str] | None = None) -> dict[ProbeKey, TruthTable]:
    """One observed table per (port, protocol); pairs not probed stay unknown (`?`)."""
    keys = list(pods) if pods is not None else _pods(results)
    tables: dict[ProbeKey, TruthTable] = {}
    for probe, group in _by_probe(results).items():
        table = tables[probe] = TruthTable(keys)
        for r in group:
            table.set(r.job.src, r.job.dst, r.connected)
    return tables


def observe(reachability: Reachability, results: Iterable[ProbeResult]) -> None:
    """Record the results of one (port, protocol) as the Observed side of `reachability`."""
    grouped = _by_probe(results)
    if len(grouped) > 1:
        raise ValueError(f"results of several probes {sorted(grouped)}: observe one at a time")
    for group in grouped.values():
        for r in group:
            reachability.observe(r.job.src, r.job.dst, r.connected)


def probe_json(results: Sequence[ProbeResult],
               pods: Sequence[str] | None = None) -> dict[str, Any]:
    """`podnet lab probe -o json`: the shape of `podnet policy matrix -o json`, plus details.

    `details[src][dst]` holds `answeredBy` and `sourceIP` (what the server saw), or null and
    the `error`; and the `command` that repeats the probe.
    """
    keys = list(pods) if pods is not None else _pods(results)
    out: list[dict[str, Any]] = []
    for (port, protocol), group in _by_probe(results).items():
        allowed: dict[str, dict[str, bool]] = {}
        details: dict[str, dict[str, dict[str, Any]]] = {}
        for r in group:
            allowed.setdefault(r.job.src, {})[r.job.dst] = r.connected
            details.setdefault(r.job.src, {})[r.job.dst] = {
                "answeredBy": r.answered_by,
                "sourceIP": None if r.source_ip is None else str(r.source_ip),
                "error": r.error,
                "command": r.command,
            }
        out.append({"port": port, "protocol": str(protocol), "allowed": allowed,
                    "details": details})
    return {"pods": keys, "results": out}


# The command line.

LOCAL = PodString("-/-")  # a `connect` from the shell has no pod names


def _port(text: str) -> tuple[int, Protocol]:
    number, _, proto = text.partition("/")
    try:
        return int(number), Protocol((proto or "TCP").upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PORT[/TCP|UDP|SCTP], found {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m podnet.lab.probe", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    connect = verbs.add_parser("connect", help="probe one address and port from here")
    connect.add_argument("ip", type=ipaddress.ip_address)
    connect.add_argument("port", type=int)
    connect.add_argument("--protocol", type=str.upper, choices=("TCP", "UDP"), default="TCP")
    connect.add_argument("--size", type=int, default=None, help="UDP datagram size in bytes")
    connect.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds")
    serve = verbs.add_parser("serve", help="serve a pod's ports in this namespace until killed")
    serve.add_argument("--pod", type=PodString, required=True, help="namespace/name")
    serve.add_argument("--port", type=_port, action="append", required=True,
                       help="PORT[/PROTOCOL], repeatable (80/TCP, 81/UDP)")
    return parser


def _connect(args: argparse.Namespace) -> int:
    job = ProbeJob(LOCAL, None, LOCAL, args.ip, args.port, Protocol(args.protocol), args.size)
    (result,) = run_probes([job], timeout=args.timeout)
    if not result.connected:
        print(f"{args.ip} {args.port}/{args.protocol}: {result.error}", file=sys.stderr)
        return 1
    assert result.answered_by is not None and result.source_ip is not None
    answer = Answer(result.answered_by, result.source_ip, job.port, job.protocol, result.size)
    sys.stdout.write(answer.encode().decode())
    return 0


def _serve(args: argparse.Namespace) -> int:
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # before the server thread starts: it inherits
    with ProbeServer() as server:
        server.add(args.pod, None, args.port)
        ports = ", ".join(f"{port}/{proto}" for port, proto in args.port)
        print(f"serving {args.pod} on {ports}", flush=True)
        signal.sigwait(stop)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return _connect(args) if args.verb == "connect" else _serve(args)
    except PodnetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
