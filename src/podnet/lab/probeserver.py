"""Probe servers: every lab pod's containerPorts, served for many pods from one thread.

Design note. A lab pod is a network namespace, not a process, so serving its ports needs no
process per pod. A socket keeps the namespace it was created in for life: `add()` creates a pod's
listening sockets in a throwaway thread that joined the pod's namespace (`datapath.netns.run_in`),
and one `selectors` loop serves all pods from then on. Each answer is one JSON line naming the pod
and the source address the server saw, so a probe proves who answered and that nothing rewrote
the sender's address (DESIGN §1: pod to pod without NAT).

- TCP: the answer goes out on accept, then the write side is shut and the connection is read
  until the client closes it (at most `DRAIN_SECONDS`). A request line is optional and ignored;
  closing with unread input would send a RST, which can destroy the answer before it is read.
- UDP: every datagram is answered, with its size in `bytes` (an MTU-sized probe shows that it
  arrived whole).
- SCTP: skipped with a warning; this kernel has no SCTP sockets.

IPv4 listens on 0.0.0.0; `families` adds `::` (IPV6_V6ONLY, so each family has its own socket).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import queue
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from podnet.datapath.netns import run_in
from podnet.errors import PodnetError
from podnet.lab.reachability import PodString
from podnet.model import IPAddress, Protocol

log = logging.getLogger(__name__)

DRAIN_SECONDS = 2.0
MAX_DATAGRAM = 65535
BACKLOG = 128
WILDCARD: dict[int, str] = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
SOCKET_TYPE = {Protocol.TCP: socket.SOCK_STREAM, Protocol.UDP: socket.SOCK_DGRAM}


class ProbeServerError(PodnetError):
    """A pod's port could not be served (port taken, namespace gone, server closed)."""


@dataclass(frozen=True)
class Answer:
    """What a probe server says: who answered, whom it saw, on which port."""

    answered_by: PodString
    source_ip: IPAddress
    port: int
    protocol: Protocol
    size: int | None = None  # UDP: the size of the datagram received ("bytes")

    def encode(self) -> bytes:
        doc: dict[str, object] = {"answeredBy": self.answered_by,
                                  "sourceIP": str(self.source_ip),
                                  "port": self.port, "protocol": str(self.protocol)}
        if self.size is not None:
            doc["bytes"] = self.size
        return json.dumps(doc).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Answer:
        """ValueError if `line` is not a probe server's answer."""
        try:
            doc = json.loads(line)
            size = doc.get("bytes")
            return cls(PodString(doc["answeredBy"]), ipaddress.ip_address(doc["sourceIP"]),
                       int(doc["port"]), Protocol(doc["protocol"]),
                       None if size is None else int(size))
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"not a probe answer: {line[:80]!r}") from err


def allow_many_sockets() -> int:
    """Raise the soft limit on open files to the hard one (500 pods x 4 ports); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def peer_ip(address: tuple[str, int] | tuple[str, int, int, int]) -> IPAddress:
    return ipaddress.ip_address(address[0])


@dataclass(frozen=True)
class _Listener:
    pod: PodString
    port: int
    protocol: Protocol
    sock: socket.socket


def _listen(pod: PodString, family: int, port: int, protocol: Protocol) -> _Listener:
    sock = socket.socket(family, SOCKET_TYPE[protocol])
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((WILDCARD[family], port))
        if protocol is Protocol.TCP:
            sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise ProbeServerError(f"cannot serve {pod} {port}/{protocol}: {err.strerror}") from err
    return _Listener(pod, port, protocol, sock)


def _open(pod: PodString, ports: Iterable[tuple[int, Protocol]],
          families: Sequence[int]) -> list[_Listener]:
    """All listening sockets of one pod, in the calling thread's namespace; none if one fails."""
    made: list[_Listener] = []
    try:
        for port, protocol in ports:
            if protocol not in SOCKET_TYPE:
                log.warning("%s: not serving %d/%s, no %s sockets here", pod, port, protocol,
                            protocol)
                continue
            made += [_listen(pod, family, port, protocol) for family in families]
    except BaseException:
        for listener in made:
            listener.sock.close()
        raise
    return made


class ProbeServer:
    """Serves the ports of any number of pods, each in its own namespace, from one thread.

    `add` and `remove` may be called from any thread at any time; they return once the loop
    serves (or has closed) the pod's sockets.
    """

    def __init__(self) -> None:
        allow_many_sockets()
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._listeners: dict[PodString, list[_Listener]] = {}
        self._draining: dict[socket.socket, tuple[float, PodString]] = {}
        self._stopping = False
        self._lock = threading.Lock()  # serialises callers against close()
        self._selector.register(self._wake_reader, selectors.EVENT_READ, self._run_commands)
        self._thread = threading.Thread(target=self._loop, name="podnet-probe-server",
                                        daemon=True)
        self._thread.start()

    def add(self, pod: str, netns: str | None, ports: Iterable[tuple[int, Protocol]],
            families: Sequence[int] = (socket.AF_INET,)) -> None:
        """Serve `ports` of `pod` inside the namespace at `netns` (None: this thread's)."""
        key = PodString(pod)
        opened = partial(_open, key, list(ports), families)
        listeners = opened() if netns is None else run_in(netns, opened)
        try:
            self._call(partial(self._register, key, listeners))
        except BaseException:
            for listener in listeners:
                listener.sock.close()
            raise

    def remove(self, pod: str) -> None:
        """Stop serving `pod`: its listening sockets and open connections are closed."""
        self._call(partial(self._unregister, PodString(pod)))

    def pods(self) -> list[PodString]:
        done: list[PodString] = []
        self._call(lambda: done.extend(self._listeners))
        return done

    def close(self) -> None:
        """Stop the loop and close every socket; a second call does nothing."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._wake()
        self._thread.join()
        for pod in list(self._listeners):
            self._unregister(pod)
        for conn in list(self._draining):
            self._close_conn(conn)
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def __enter__(self) -> ProbeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The caller's side: hand a command to the loop and wait for it.

    def _call(self, command: Callable[[], None]) -> None:
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                command()
            except BaseException as err:
                failure.append(err)
            finally:
                done.set()

        with self._lock:
            if self._stopping:
                raise ProbeServerError("the probe server is closed")
            self._commands.put(run)
            self._wake()
        done.wait()
        if failure:
            raise failure[0]

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_writer.send(b"\0")

    # The loop's side: everything below runs in the server thread only.

    def _loop(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(self._expire_drains()):
                try:
                    key.data(key.fileobj)
                except Exception:  # a bug must not stop the other pods' service
                    log.exception("probe server: handling %s", key.fileobj)
        self._run_commands(self._wake_reader)  # callers already waiting are answered

    def _run_commands(self, reader: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            while reader.recv(4096):
                pass
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _register(self, pod: PodString, listeners: list[_Listener]) -> None:
        if pod in self._listeners:
            raise ProbeServerError(f"{pod} is served already")
        self._listeners[pod] = listeners
        for listener in listeners:
            handle = self._accept if listener.protocol is Protocol.TCP else self._answer_datagram
            self._selector.register(listener.sock, selectors.EVENT_READ, partial(handle, listener))

    def _unregister(self, pod: PodString) -> None:
        for listener in self._listeners.pop(pod, []):
            self._selector.unregister(listener.sock)
            listener.sock.close()
        for conn, (_, owner) in list(self._draining.items()):
            if owner == pod:
                self._close_conn(conn)

    def _accept(self, listener: _Listener, _: socket.socket) -> None:
        try:
            conn, address = listener.sock.accept()
        except OSError as err:  # the client gave up already (ECONNABORTED), or fd limits
            log.debug("%s %d/TCP: accept: %s", listener.pod, listener.port, err)
            return
        conn.setblocking(False)
        answer = Answer(listener.pod, peer_ip(address), listener.port, Protocol.TCP)
        try:
            conn.send(answer.encode())  # ~100 bytes into an empty send buffer: sent whole
            conn.shutdown(socket.SHUT_WR)
        except OSError as err:
            log.debug("%s %d/TCP: answer: %s", listener.pod, listener.port, err)
            conn.close()
            return
        self._draining[conn] = (time.monotonic() + DRAIN_SECONDS, listener.pod)
        self._selector.register(conn, selectors.EVENT_READ, self._drain)

    def _drain(self, conn: socket.socket) -> None:
        try:
            if conn.recv(4096):
                return
        except OSError:
            pass
        self._close_conn(conn)

    def _close_conn(self, conn: socket.socket) -> None:
        del self._draining[conn]
        self._selector.unregister(conn)
        conn.close()

    def _expire_drains(self) -> float | None:
        """Close connections drained for too long; the seconds until the next one expires."""
        now = time.monotonic()
        expired = []
        for conn, (deadline, _) in self._draining.items():  # in deadline order: insertion order
            if deadline > now:
                break
            expired.append(conn)
        for conn in expired:
            self._close_conn(conn)
        return next((d - now for d, _ in self._draining.values()), None)

    def _answer_datagram(self, listener: _Listener, _: socket.socket) -> None:
        try:
            data, address = listener.sock.recvfrom(MAX_DATAGRAM)
            answer = Answer(listener.pod, peer_ip(address), listener.port, Protocol.UDP,
                            len(data))
            listener.sock.sendto(answer.encode(), address)
        except OSError as err:
            log.debug("%s %d/UDP: %s", listener.pod, listener.port, err)
