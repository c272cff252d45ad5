"""One etcd watch kept open per store, and the recent events it delivered: what `events` reads.

Why: etcd serves a watch that starts in the past ("unsynced") from a loop that runs every
100 ms, so a watch opened per `events` call costs up to 100 ms each time there is news. A
watch that is kept open is "synced": etcd pushes each commit to it at once. The follower
watches the whole keyspace (every revision has an event there, so "I have seen revision R"
is exact), keeps the last `keep` events, and lets `events` wait until it has seen the
revision the store is at. What it cannot answer (older history, a stream that lags or broke)
the store reads with a watch of its own, as before.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests

from podnet.store.base import Compacted, StoreError
from podnet.store.etcd_client import close_stream

log = logging.getLogger(__name__)

RawEvent = dict[str, Any]
OpenStream = Callable[[int], tuple[requests.Response, Iterator[dict[str, Any]]]]


class Follower:
    """A watch from `start + 1`, reopened after the last revision seen when it drops."""

    def __init__(self, open_stream: OpenStream, start: int, keep: int = 5000) -> None:
        self._open = open_stream
        self._keep = keep
        self._cond = threading.Condition()
        self._revisions: list[int] = []  # ascending, one per event
        self._events: list[RawEvent] = []
        self.start = start  # every event after `start` up to `latest` is held
        self.latest = start
        self._response: requests.Response | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="podnet-etcd-follow")
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def read(self, since: int, current: int, timeout: float) -> list[RawEvent] | None:
        """Events after `since` once `current` has been seen; None if they are not held."""
        with self._cond:
            if since < self.start or self._closed:
                return None
            if not self._cond.wait_for(lambda: self.latest >= current or self._closed, timeout):
                self._restart()  # etcd is at `current` and we are not: the stream is stuck
                return None
            if since < self.start or self._closed:
                return None
            return self._events[bisect.bisect_right(self._revisions, since):]

    def wait(self, since: int, timeout: float) -> None:
        """Until an event after `since` arrives, or `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self.latest > since or self._closed, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._restart()

    def _restart(self) -> None:
        if self._response is not None:
            close_stream(self._response)  # the thread opens a new one after `latest`

    def _run(self) -> None:
        while not self._closed:
            try:
                response, messages = self._open(self.latest)
            except Compacted:
                log.warning("etcd history compacted past %d: following stops", self.latest)
                self.close()
                return
            except StoreError as err:
                log.info("etcd follower: %s", err)
                with self._cond:
                    self._cond.wait(1.0)
                continue
            with self._cond:
                self._response = response
            try:
                for message in messages:
                    self._add(message.get("events", ()))
            except (requests.RequestException, StoreError, ValueError, AttributeError) as err:
                log.info("etcd follower stream ended: %s", err)
            finally:
                with self._cond:
                    self._response = None
                close_stream(response)

    def _add(self, events: list[RawEvent]) -> None:
        if not events:
            return
        with self._cond:
            for event in events:
                self._revisions.append(int(event["kv"]["mod_revision"]))
                self._events.append(event)
            self.latest = self._revisions[-1]
            if len(self._events) > self._keep:  # forget whole revisions, oldest first
                cut = bisect.bisect_right(self._revisions, self._revisions[-self._keep])
                self.start = self._revisions[cut - 1]
                del self._revisions[:cut], self._events[:cut]
            self._cond.notify_all()
