"""Sleep until a file in a directory changes (inotify), so that idle watchers cost nothing.

A SQLite store has no push notifications; its watchers would poll. Every commit writes the
database's `-wal` file, so an inotify watch on the directory wakes a watcher at once when
something may have changed, and lets it sleep otherwise. Without inotify, it sleeps the
timeout (polling, as before).

It waits with `poll`, not `select`: a fresh watch takes the lowest free descriptor, which in a
process holding a thousand sockets (the lab's kubelet serves every pod's probes) is above
`select`'s limit of 1023.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import time
from pathlib import Path

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)


class DirectoryWatch:
    """Wakes `wait` when a file whose name starts with `prefix` changes in `directory`."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.prefix = prefix
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd >= 0 and _libc.inotify_add_watch(
                self.fd, os.fsencode(directory), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO
                | IN_CREATE) < 0:
            os.close(self.fd)
            self.fd = -1

    def wait(self, timeout: float) -> bool:
        """Return when a matching file may have changed (True), or after `timeout` seconds."""
        if self.fd < 0:
            time.sleep(timeout)
            return False
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 65536):
                pass
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
