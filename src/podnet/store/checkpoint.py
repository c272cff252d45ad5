"""Checkpoints of the SQLite store in a background thread, so that no caller waits for them.

A checkpoint copies the WAL into the database file and fsyncs both: milliseconds to tens
of milliseconds on a virtual disk. SQLite's automatic checkpoint runs inside the COMMIT
that crosses its threshold, so one call in a few hundred would pay it (and every writer
queued behind that one). Here a writer only wakes this thread, which checkpoints on its own
connection while the writers go on appending to the WAL (a PASSIVE checkpoint never blocks
them).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class Checkpointer:
    """A daemon thread that checkpoints `path` each time it is asked to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Checkpoint soon (the thread starts on the first request)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="podnet-checkpoint",
                                            daemon=True)
            self._thread.start()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread after its last checkpoint."""
        if self._thread is not None:
            self._closing = True
            self._wake.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as err:  # the next request tries again
                    log.warning("checkpoint of %s failed: %s", self.path, err)
                if self._closing:
                    return
        finally:
            db.close()
