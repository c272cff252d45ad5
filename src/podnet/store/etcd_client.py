"""Talking to an etcd cluster through its v3 JSON gateway, with failover and bounded waits.

The requests go through `etcd3gw` (OpenStack's client of the gateway that every etcd serves
on its client port: plain HTTP and JSON, no gRPC stack); docs/etcd.md says why. This module
adds what a store needs on top: several members, each request bounded by a timeout, and
etcd's errors turned into the store's. Which member answers does not matter: every member
serves linearizable reads and forwards writes to the leader.

Failover: a member that refuses the connection, or answers that it has no leader, is skipped
and the next one is asked at once. A request that times out is not retried (a write may have
been applied); the call fails with `Unavailable` and the next call starts at the next member.
So without quorum every call fails within `timeout` seconds per member, never hangs.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import queue
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests
from etcd3gw import exceptions
from etcd3gw.client import Etcd3Client
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, PoolManager
from urllib3.connection import HTTPConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError

from podnet.store.base import Compacted, NotFound, StoreError, Unavailable

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0
API_PATH = "/v3/"  # etcd >= 3.4 (Debian ships 3.4)

# gRPC status codes that etcd puts in its JSON errors
_NOT_FOUND = 5
_RETRY_ELSEWHERE = (4, 14)  # DEADLINE_EXCEEDED, UNAVAILABLE ("no leader", "request timed out")


def encode(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def decode(text: str) -> bytes:
    return base64.b64decode(text)


def range_end(prefix: str) -> str:
    """The end of the key range of everything under `prefix` (etcd's "prefix end")."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return encode(bytes(raw))


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """`host:port,host:port` -> [(host, port)]; Unavailable when malformed."""
    endpoints = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise Unavailable(f"etcd endpoint {item!r}: want host:port")
        endpoints.append((host.strip("[]"), int(port)))
    return endpoints


class EtcdClient:
    """The members of one etcd cluster; `post` sends a request to the first that answers."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], timeout: float = DEFAULT_TIMEOUT,
                 netns: str | None = None) -> None:
        if not endpoints:
            raise Unavailable("no etcd endpoint given")
        self.timeout = timeout
        self._members = [Etcd3Client(host, port, timeout=timeout, api_path=API_PATH,
                                     session=_session(netns))
                         for host, port in endpoints]
        self._current = 0
        self._lock = threading.Lock()

    @property
    def endpoints(self) -> list[str]:
        return [m.base_url for m in self._members]

    def close(self) -> None:
        for member in self._members:
            member.session.close()

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer of the first member that can answer; Unavailable if none can."""
        errors = []
        for index, member in self._in_turn():
            try:
                answer: dict[str, Any] = member.post(member.get_url(path), json=payload)
            except exceptions.ConnectionTimeoutError as err:
                self._prefer(index + 1)
                raise Unavailable(f"etcd {member.base_url}: no answer within {self.timeout}s "
                                  f"({_reason(err)})") from err
            except (exceptions.ConnectionFailedError, exceptions.InternalServerError) as err:
                errors.append(f"{member.base_url}: {_reason(err)}")
                continue
            except exceptions.Etcd3Exception as err:
                code, message = _grpc_error(err)
                if code in _RETRY_ELSEWHERE:
                    errors.append(f"{member.base_url}: {message}")
                    continue
                if code == _NOT_FOUND:
                    raise NotFound(message) from err
                raise StoreError(f"etcd {member.base_url}: {message}") from err
            self._prefer(index)
            return answer
        raise Unavailable("etcd: no member answers: " + "; ".join(errors))

    def stream(self, path: str, payload: dict[str, Any],
               read_timeout: float | None) -> requests.Response:
        """A streamed answer (a watch), from the first member that accepts the request.

        `read_timeout` bounds each wait for the next line (None: wait as long as it takes).
        """
        errors = []
        for index, member in self._in_turn():
            post = functools.partial(member.session.post, member.get_url(path), json=payload,
                                     stream=True, timeout=(self.timeout, read_timeout))
            try:
                try:
                    response = post()
                except requests.ConnectionError as err:
                    if not (err.args and isinstance(err.args[0], ProtocolError)):
                        raise
                    # A pooled connection the member had closed ('Connection aborted'):
                    # the next request opens a new one.
                    response = post()
            except requests.RequestException as err:
                errors.append(f"{member.base_url}: {err}")
                continue
            if response.status_code != 200:
                errors.append(f"{member.base_url}: HTTP {response.status_code}")
                response.close()
                continue
            self._prefer(index)
            return response
        raise Unavailable("etcd: no member accepts a watch: " + "; ".join(errors))

    def _in_turn(self) -> Iterator[tuple[int, Etcd3Client]]:
        """Every member once, from the one that answered last."""
        start = self._current
        for i in range(len(self._members)):
            index = (start + i) % len(self._members)
            yield index, self._members[index]

    def _prefer(self, index: int) -> None:
        with self._lock:
            self._current = index % len(self._members)


def _check_canceled(message: Mapping[str, Any], since: int) -> None:
    compacted = int(message.get("compact_revision", 0))
    if compacted:
        raise Compacted(f"revision {since} is compacted (history starts at {compacted})")
    raise Unavailable(f"etcd refused the watch from {since + 1}: "
                      f"{message.get('cancel_reason') or message}")


def messages_of(response: requests.Response, since: int) -> Iterator[dict[str, Any]]:
    """The answers of a gateway watch stream (one JSON object a line) from `since + 1`."""
    # chunk_size None: each line as soon as it arrives (the stubs want an int)
    for line in response.iter_lines(chunk_size=None):  # type: ignore[call-overload]
        if line.strip():
            result: dict[str, Any] = json.loads(line).get("result", {})
            if result.get("canceled"):
                _check_canceled(result, since)
            yield result


def read_into(stream: Iterator[dict[str, Any]],
               messages: queue.Queue[dict[str, Any] | Exception]) -> None:
    """Move a stream's answers to `messages`, then why it ended (an exception)."""
    try:
        for message in stream:
            messages.put(message)
        messages.put(Unavailable("the etcd member closed the watch"))
    except (requests.RequestException, StoreError, ValueError, AttributeError) as err:
        messages.put(err)


def close_stream(response: requests.Response) -> None:
    """End a stream another thread is reading: closing alone would wait for that read."""
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # the reader wakes up at the end of the stream
    response.close()


def _session(netns: str | None) -> requests.Session:
    session = requests.Session()
    if netns is not None:
        session.mount("http://", NetnsAdapter(netns))
    return session


class NetnsAdapter(HTTPAdapter):
    """HTTP whose TCP connections are made inside the network namespace at `netns`.

    A socket belongs for life to the namespace it was created in, so a process of the root
    namespace reaches the lab's etcd (on the lab's underlay) without any route or address
    in the root namespace.
    """

    def __init__(self, netns: str) -> None:
        self.netns = netns
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **kwargs: Any) -> None:
        connection = type("NetnsConnection", (_NetnsConnection,), {"netns": self.netns})
        pool = type("NetnsPool", (HTTPConnectionPool,), {"ConnectionCls": connection})
        self.poolmanager = PoolManager(num_pools=connections, maxsize=maxsize, block=block,
                                       **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": pool}


class _NetnsConnection(HTTPConnection):
    netns = ""

    def _new_conn(self) -> socket.socket:
        from podnet.datapath.netns import socket_in  # loaded only by clients outside the lab

        sock = socket_in(self.netns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect((self._dns_host, self.port))
        except TimeoutError as err:
            sock.close()
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from err
        except OSError as err:
            sock.close()
            raise NewConnectionError(self, f"cannot connect from {self.netns}: {err}") from err
        return sock


def _grpc_error(err: exceptions.Etcd3Exception) -> tuple[int | None, str]:
    try:
        body = json.loads(err.detail_text or "")
        return int(body.get("code")), str(body.get("message") or body.get("error"))
    except (ValueError, TypeError, AttributeError):
        return None, _reason(err)


def _reason(err: exceptions.Etcd3Exception) -> str:
    return err.detail_text or " ".join(str(a) for a in err.args) or type(err).__name__
