"""The prober: from every pod to every pod and port at once, each result with its reproduction.

Design note, after the Kubernetes e2e suite's probe.go: a `ProbeJob` goes in, a `ProbeResult`
comes out, and probing only reports, never fails: a refused, dropped or unanswered probe is a
result like any other. Denied traffic is usually dropped by nftables (a timeout, not a RST),
so all probes run at once, `parallel` at a time, as non-blocking sockets in one `selectors`
loop: the aggregate time is about one timeout per `parallel` dropped probes. Client sockets are
created in their source pods' namespaces by one throwaway thread per batch, which visits each
source namespace once (`datapath.netns.run_in_each`: a setns costs ~1% of a thread), and are
driven from the caller's thread. A probe fails only if the kernel held nothing for it when the
selector was asked after its deadline: on a loaded machine the caller may look a second late,
and the answer waiting in the socket then still counts.

Allowed means: TCP, connected and answered; UDP, an answer within the timeout (a datagram that
is dropped and one that is lost look the same, so UDP resends twice within the timeout). An
ICMP port unreachable (nothing listens) fails a UDP probe at once, as a RST fails a TCP one.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import heapq
import itertools
import os
import selectors
import shlex
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from podnet.datapath.netns import run_in_each
from podnet.lab.probeserver import SOCKET_TYPE, Answer, allow_many_sockets
from podnet.lab.reachability import PodString
from podnet.model import IPAddress, Protocol

DEFAULT_TIMEOUT = 1.0
DEFAULT_PARALLEL = 2048
SPARE_FDS = 64  # left to the rest of the process while probing
UDP_SENDS = 3  # evenly spread over the timeout
REQUEST = b"podnet probe\n"
NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class ProbeJob:
    """One probe: from a pod (whose namespace is `src_netns`) to a pod's address and port."""

    src: PodString
    src_netns: str | None  # None: the caller's own namespace
    dst: PodString
    dst_ip: IPAddress
    port: int
    protocol: Protocol
    size: int | None = None  # UDP: the datagram's size (default: a short request line)

    def command(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The shell command that runs this probe by hand, from the same namespace."""
        size = "" if self.size is None else f" --size {self.size}"
        return (f"{_enter(self.src_netns)}{shlex.quote(sys.executable)} -m podnet.lab.probe "
                f"connect {self.dst_ip} {self.port} --protocol {self.protocol} "
                f"--timeout {timeout:g}{size}")


@dataclass(frozen=True)
class ProbeResult:
    """What a probe saw; `connected` is the verdict (allowed), `error` says why not."""

    job: ProbeJob
    connected: bool
    answered_by: PodString | None
    source_ip: IPAddress | None  # the address the server saw the probe come from
    error: str | None
    command: str
    size: int | None = None  # UDP: the datagram size the server received


@dataclass(eq=False)
class _Attempt:
    """One probe in flight: its socket, what it waits for, what it has read."""

    index: int
    job: ProbeJob
    sock: socket.socket
    deadline: float
    connecting: bool = False
    received: bytearray = field(default_factory=bytearray)
    done: bool = False


class _Run:
    """All jobs of one `run_probes` call: a window of attempts over one selector."""

    def __init__(self, jobs: Sequence[ProbeJob], timeout: float, parallel: int) -> None:
        self.jobs = jobs
        self.timeout = timeout
        self.parallel = max(1, parallel)
        self.results: list[ProbeResult | None] = [None] * len(jobs)
        sources = {job.src_netns: n for n, job in reversed(list(enumerate(jobs)))}
        # source by source (stable): a batch then visits few namespaces
        self.order = sorted(range(len(jobs)), key=lambda i: sources[jobs[i].src_netns])
        self.next_job = 0
        self.active = 0
        self.selector = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, _Attempt]] = []  # (when, tie-break, attempt)
        self.tie = itertools.count()

    def run(self) -> list[ProbeResult]:
        try:
            while self.next_job < len(self.jobs) or self.active:
                if self.active <= self.parallel * 3 // 4:
                    self.start_batch()
                    if not self.active:  # all failed at once: nothing to wait for
                        continue
                asked = time.monotonic()
                wait = max(0.0, self.timers[0][0] - asked) if self.timers else None
                for key, _ in self.selector.select(wait):
                    self.on_event(key.data)
                self.on_timers(asked)
        finally:
            self.selector.close()
        return [r for r in self.results if r is not None]

    def start_batch(self) -> None:
        """Open sockets for the next jobs, one namespace visit per source namespace."""
        count = min(self.parallel - self.active, len(self.jobs) - self.next_job)
        batch = self.order[self.next_job:self.next_job + count]
        self.next_job += count
        groups: dict[str | None, list[int]] = {}
        for i in batch:
            groups.setdefault(self.jobs[i].src_netns, []).append(i)
        remote = [(netns, indices) for netns, indices in groups.items() if netns is not None]
        visits = run_in_each([(netns, functools.partial(_sockets, [self.jobs[i] for i in indices]))
                              for netns, indices in remote])
        outcomes: list[tuple[list[int], list[socket.socket | OSError] | OSError]] = [
            (indices, made) for (_, indices), made in zip(remote, visits, strict=True)]
        if None in groups:
            outcomes.append((groups[None], _sockets([self.jobs[i] for i in groups[None]])))
        for indices, made in outcomes:
            socks = [made] * len(indices) if isinstance(made, OSError) else made  # netns gone
            for i, sock in zip(indices, socks, strict=True):
                if isinstance(sock, OSError):
                    self.finish_early(i, f"cannot create a socket: {_reason(sock)}")
                else:
                    self.start(i, sock)

    def start(self, index: int, sock: socket.socket) -> None:
        job = self.jobs[index]
        now = time.monotonic()
        attempt = _Attempt(index, job, sock, now + self.timeout)
        self.active += 1
        sock.setblocking(False)
        address = (str(job.dst_ip), job.port)
        if job.protocol is Protocol.TCP:
            code = sock.connect_ex(address)
            if code not in (0, errno.EINPROGRESS):
                self.finish(attempt, error=_reason(OSError(code, os.strerror(code))))
                return
            attempt.connecting = True
            self.selector.register(sock, selectors.EVENT_WRITE, attempt)
        else:
            try:
                sock.connect(address)  # a connected UDP socket hears ICMP port unreachable
                sock.send(_payload(job))
            except OSError as err:
                self.finish(attempt, error=_reason(err))
                return
            self.selector.register(sock, selectors.EVENT_READ, attempt)
            for k in range(1, UDP_SENDS):
                self.push(now + self.timeout * k / UDP_SENDS, attempt)
        self.push(attempt.deadline, attempt)

    def push(self, when: float, attempt: _Attempt) -> None:
        heapq.heappush(self.timers, (when, next(self.tie), attempt))

    def on_event(self, attempt: _Attempt) -> None:
        sock = attempt.sock
        if attempt.connecting:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.finish(attempt, error=_reason(OSError(code, os.strerror(code))))
                return
            attempt.connecting = False
            self.selector.modify(sock, selectors.EVENT_READ, attempt)  # the answer may be here
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as err:
            self.finish(attempt, error=_reason(err))
            return
        if attempt.job.protocol is Protocol.TCP:
            attempt.received += data
            if data and b"\n" not in data and len(attempt.received) < 65536:
                return  # more to come
            data = bytes(attempt.received)
        self.finish_answer(attempt, data)

    def on_timers(self, asked: float) -> None:
        """Fire the timers due when the selector was last asked: a probe times out only if the
        kernel held nothing for it after its deadline (not when this process merely looks late:
        on a loaded machine its answer may have waited in the socket for a second)."""
        while self.timers and self.timers[0][0] <= asked:
            when, _, attempt = heapq.heappop(self.timers)
            if attempt.done:
                continue
            if when < attempt.deadline:  # a UDP resend
                try:
                    attempt.sock.send(_payload(attempt.job))
                except OSError as err:
                    self.finish(attempt, error=_reason(err))
            elif attempt.connecting:
                self.finish(attempt, error=f"timed out connecting ({self.timeout:g}s)")
            elif attempt.job.protocol is Protocol.TCP:
                self.finish(attempt, error=f"connected, but no answer within {self.timeout:g}s")
            else:
                self.finish(attempt, error=f"no answer within {self.timeout:g}s")

    def finish_answer(self, attempt: _Attempt, line: bytes) -> None:
        if not line:
            self.finish(attempt, error="closed without an answer")
            return
        try:
            answer = Answer.decode(line.split(b"\n", 1)[0])
        except ValueError as err:
            self.finish(attempt, error=str(err))
            return
        self.finish(attempt, answer=answer)

    def finish(self, attempt: _Attempt, answer: Answer | None = None,
               error: str | None = None) -> None:
        attempt.done = True
        self.active -= 1
        with contextlib.suppress(KeyError):  # not registered when connect failed at once
            self.selector.unregister(attempt.sock)
        attempt.sock.close()
        self.record(attempt.index, answer, error)

    def finish_early(self, index: int, error: str) -> None:
        self.record(index, None, error)

    def record(self, index: int, answer: Answer | None, error: str | None) -> None:
        job = self.jobs[index]
        self.results[index] = ProbeResult(
            job, connected=answer is not None,
            answered_by=answer.answered_by if answer else None,
            source_ip=answer.source_ip if answer else None, error=error,
            command=job.command(self.timeout), size=answer.size if answer else None,
        )


@functools.cache
def _enter(netns: str | None) -> str:
    """The command prefix that enters `netns`: by name when `ip netns` knows it."""
    if netns is None:
        return ""
    path = Path(netns)
    if path.parent == NETNS_DIR:
        return shlex.join(["ip", "netns", "exec", path.name]) + " "
    return shlex.join(["nsenter", f"--net={path}"]) + " "


def _sockets(jobs: Sequence[ProbeJob]) -> list[socket.socket | OSError]:
    """One client socket per job, in the calling thread's namespace; failures as values."""
    made: list[socket.socket | OSError] = []
    for job in jobs:
        family = socket.AF_INET6 if job.dst_ip.version == 6 else socket.AF_INET
        try:
            if job.protocol not in SOCKET_TYPE:
                raise OSError(errno.EPROTONOSUPPORT, f"no {job.protocol} sockets here")
            made.append(socket.socket(family, SOCKET_TYPE[job.protocol]))
        except OSError as err:
            made.append(err)
    return made


def _payload(job: ProbeJob) -> bytes:
    if job.size is None:
        return REQUEST
    return (REQUEST * (job.size // len(REQUEST) + 1))[: job.size]


def _reason(err: OSError) -> str:
    """A short lower-case reason: "connection refused", "network is unreachable"."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


def run_probes(jobs: Sequence[ProbeJob], timeout: float = DEFAULT_TIMEOUT,
               parallel: int = DEFAULT_PARALLEL) -> list[ProbeResult]:
    """Every job probed, at most `parallel` at a time; one result per job, in order.

    Never raises for a probe that fails: the failure is in its result. `parallel` is lowered to
    what the open-file limit leaves free, so that no probe fails for want of a socket.
    """
    free = allow_many_sockets() - len(os.listdir("/proc/self/fd")) - SPARE_FDS
    return _Run(jobs, timeout, max(1, min(parallel, free))).run()
