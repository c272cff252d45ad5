"""Network namespaces: the one way into a namespace, and the guard that keeps the root one safe.

Design note. Linux binds a socket to the network namespace of the thread that creates it, for
its whole life. So to talk netlink inside a pod's namespace we create the socket in a short-lived
thread that joins the namespace (setns affects only the calling thread), hand the descriptor back
and let the thread end: no long-lived thread ever changes namespace, and the caller's namespace
is never touched (pyroute2's own `IPRoute(netns=...)` forks a child for the same reason, which
costs milliseconds per pod). Every write is preceded by `assert_not_root`: podnet changes only
namespaces it was started in or was handed by a runtime, never the host's.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from pyroute2 import IPRoute

from podnet.errors import PodnetError

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
ROOT_NETNS = "/proc/1/ns/net"
# The kernel numbers the initial network namespace PROC_NET_INIT_INO; PID 1's may be unreadable.
INIT_NETNS_INODE = 0xEFFFFFF9
_libc = ctypes.CDLL(None, use_errno=True)
T = TypeVar("T")


class DatapathError(PodnetError):
    """The kernel refused a change, or a change would touch what podnet must not touch."""


class NetnsGone(DatapathError, FileNotFoundError):
    """The namespace path does not exist (any more), or is not a network namespace."""


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError as err:
        raise NetnsGone(f"network namespace {path} does not exist") from err
    return (st.st_dev, st.st_ino)


def current_netns() -> str:
    """The path of the calling thread's network namespace."""
    return f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"


def is_root(path: str) -> bool:
    """Whether `path` names the host's initial network namespace."""
    target = _identity(path)
    if target[1] == INIT_NETNS_INODE:
        return True
    try:
        return target == _identity(ROOT_NETNS)
    except PermissionError:  # PID 1 may hide its namespaces; the inode test above still holds
        return False


def assert_not_root(path: str) -> None:
    """Refuse to go on if `path` is the root network namespace: podnet never writes there."""
    if is_root(path):
        raise DatapathError(f"refusing to change the root network namespace ({path})")


def _join(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise NetnsGone(f"network namespace {path} does not exist") from err
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetnsGone(f"{path} is not a network namespace: {os.strerror(errno)}")
    finally:
        os.close(fd)


def run_in(path: str, make: Callable[[], T]) -> T:
    """`make()` called by a throwaway thread that joined the namespace at `path`; its result.

    For what keeps the namespace it was made in (a socket): the caller's namespace is untouched.
    """
    return start_in(path, make)()


def start_in(path: str, make: Callable[[], T]) -> Callable[[], T]:
    """`run_in` while the caller goes on: the call returned waits for the thread and gives
    `make()`'s result (or raises its error)."""
    done = _start_each([(path, make)])

    def result() -> T:
        (outcome,) = done()
        if isinstance(outcome, OSError):
            raise outcome
        return outcome

    return result


def run_in_each(calls: Sequence[tuple[str, Callable[[], T]]]) -> list[T | OSError]:
    """Each `make()` called in its namespace, in turn, by one throwaway thread.

    Starting a thread costs about a hundred setns calls, so many namespaces are visited by one
    thread. An OSError (a namespace gone, a socket refused) is that call's outcome; any other
    exception is raised here.
    """
    return _start_each(calls)()


def _start_each(calls: Sequence[tuple[str, Callable[[], T]]]
                ) -> Callable[[], list[T | OSError]]:
    outcomes: list[T | OSError] = []
    failure: list[BaseException] = []

    def work() -> None:
        for path, make in calls:
            try:
                _join(path)
                outcomes.append(make())
            except OSError as err:
                outcomes.append(err)
            except BaseException as err:
                failure.append(err)
                return

    worker = threading.Thread(target=work, name="podnet-netns")
    worker.start()

    def result() -> list[T | OSError]:
        worker.join()
        if failure:
            raise failure[0]
        return outcomes

    return result


def socket_in(path: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket living in the namespace at `path` for its whole life."""
    return run_in(path, lambda: socket.socket(family, type, proto))


def route_socket(path: str | None = None) -> socket.socket:
    """A NETLINK_ROUTE socket in the namespace at `path` (default: the caller's), never the root."""
    if path is None:
        assert_not_root(current_netns())
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    return start_route_socket(path)()


def start_route_socket(path: str) -> Callable[[], socket.socket]:
    """`route_socket(path)`, made by a thread while the caller goes on (`start_in`)."""
    made = start_in(path, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                                NETLINK_ROUTE))

    def result() -> socket.socket:
        sock = made()  # first, so that a missing namespace is NetnsGone
        try:
            assert_not_root(path)
        except BaseException:
            sock.close()
            raise
        return sock

    return result


@contextmanager
def rtnl(path: str | None = None) -> Iterator[IPRoute]:
    """An rtnetlink handle in the namespace at `path` (default: the caller's), never the root."""
    handle = IPRoute(fileno=route_socket(path).detach(), groups=0)
    try:
        yield handle
    finally:
        handle.close()
