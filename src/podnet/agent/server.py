"""The agent's unix socket: one CNI request per connection, answered by a pool of workers.

The protocol is `podnet.cni.wire`. This module turns a request into `CniArgs` and `NetConf`
(validated again: the socket is an interface of its own), runs the handler, and maps podnet's
errors to CNI codes, so that only `podnet.cni` and this module know the numbers.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from podnet import ipam
from podnet.agent.commands import HANDLERS
from podnet.agent.env import Env
from podnet.cni import errors, wire
from podnet.cni.errors import CniError
from podnet.cni.types import CURRENT_VERSION, CniArgs, NetConf
from podnet.datapath.netns import DatapathError, NetnsGone
from podnet.datapath.veth import InterfaceExists
from podnet.errors import PodnetError
from podnet.store import Unavailable

log = logging.getLogger(__name__)

WORKERS = 16
ACCEPT_POLL = 0.2  # seconds between looks at the stop flag
# The metrics' `result` label of a failed request: the code's name in podnet.cni.errors.
ERROR_NAMES = {code: name.lower() for name, code in vars(errors).items()
               if name.isupper() and isinstance(code, int)}


def as_cni_error(err: Exception) -> CniError:
    """The CNI code of a failure raised below a handler."""
    if isinstance(err, CniError):
        return err
    if isinstance(err, NetnsGone):
        return CniError(errors.UNKNOWN_CONTAINER, "network namespace not found", str(err))
    if isinstance(err, InterfaceExists):
        return CniError(errors.DATAPATH_FAILURE, "interface already exists", str(err))
    if isinstance(err, Unavailable):
        return CniError(errors.TRY_AGAIN_LATER, "store unavailable", str(err))
    if isinstance(err, ipam.RangeExhausted):
        return CniError(errors.TRY_AGAIN_LATER, "no free pod address", str(err))
    if isinstance(err, DatapathError):
        return CniError(errors.DATAPATH_FAILURE, "kernel refused a change", str(err))
    if isinstance(err, PodnetError):
        return CniError(errors.INTERNAL, type(err).__name__, str(err))
    log.exception("unexpected failure")
    return CniError(errors.INTERNAL, "internal error", f"{type(err).__name__}: {err}")


def handle(request: Any, env: Env) -> bytes:
    """One request in, one response out; never raises. Logs and counts each request with its
    duration (the metrics: by command and result)."""
    started = (time.perf_counter(), resource.getrusage(resource.RUSAGE_THREAD))
    version = CURRENT_VERSION
    what, command, outcome = "malformed request", "unknown", "ok"
    try:
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            raise CniError(errors.DECODING_FAILURE, "malformed request")
        args = CniArgs.from_wire(request)
        what = f"{args.command} {args.container_id}/{args.ifname}"
        command = args.command if args.command in HANDLERS else command
        conf = NetConf.parse(request.get("config"), args.command)
        version = conf.cni_version
        handler = HANDLERS.get(args.command)
        if handler is None:
            raise CniError(errors.INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {args.command!r}")
        result = handler(args, conf, env)
    except Exception as err:
        cni = as_cni_error(err)
        outcome = ERROR_NAMES.get(cni.code, str(cni.code))
        log.info("%s: code %d in %s: %s", what, cni.code, took(started), cni)
        response = wire.encode_response(cni.code, json.dumps(cni.to_json(version)))
    else:
        log.info("%s: ok in %s", what, took(started))
        response = wire.encode_response(
            0, "" if result is None else json.dumps(result.to_json(version)))
    env.metrics.cni_request(command, outcome, time.perf_counter() - started[0])
    return response


def took(started: tuple[float, resource.struct_rusage]) -> str:
    """Wall clock, and this thread's CPU: user (Python) and system (the kernel's work)."""
    wall, before = time.perf_counter() - started[0], started[1]
    now = resource.getrusage(resource.RUSAGE_THREAD)
    user, system = now.ru_utime - before.ru_utime, now.ru_stime - before.ru_stime
    return (f"{wall * 1000:.2f} ms (cpu {(user + system) * 1000:.2f} ms: "
            f"user {user * 1000:.2f}, system {system * 1000:.2f})")


def serve_connection(conn: socket.socket, env: Env) -> None:
    with conn:
        try:
            raw = wire.read_all(conn)
            if not raw:
                return  # a readiness probe: connected and went away
            try:
                request = json.loads(raw)
            except ValueError:
                request = None
            conn.sendall(handle(request, env))
        except OSError as err:  # the plugin went away (killed runtime): nothing to answer
            log.warning("connection dropped: %s", err)


def listen(path: str) -> socket.socket:
    """Bind the agent socket, replacing a stale one left by a previous agent."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(path) == 0:
                    raise PodnetError(f"another agent is serving {path}")
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.settimeout(ACCEPT_POLL)
    return sock


def serve(sock: socket.socket, env: Env, stop: threading.Event) -> None:
    """Answer requests until `stop` is set; requests in progress finish first."""
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="podnet-cni") as pool:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            pool.submit(serve_connection, conn, env)
