"""The distributed store: the same resources, revisions, watch and leases, kept in etcd.

An object is the key `<prefix>/resources/<kind>/<namespace>/<name>`, its value the JSON body.
etcd supplies everything the store promises: the object's revision is its `mod_revision`
(one global counter that only grows), compare-and-swap is a Txn comparing `create_revision`
(absent) or `mod_revision` (unchanged), a `commit` is one Txn, leases are etcd leases, and
changes come from etcd's watch with `prev_kv` (the last body of a deleted object).

One difference from SQLite: the writes of one `commit` share a single revision, as they do
in etcd, where SQLite gives each its own. Nothing relies on either: callers compare an
object's revision with itself, and a watch resumes after a revision (never inside one),
because events are handed out a whole revision at a time.

`watch` keeps one etcd watch stream open and reopens it after the last revision seen when
the connection drops. `events` (what agents poll) asks etcd for its current revision, and
when there is anything new reads it from the store's kept-open watch of the whole keyspace
(etcd_follow.py), or from a watch opened for the call when that one cannot answer: every
revision has at least one event in the whole keyspace, so a reader knows when it has caught
up. A forgotten revision is `Compacted`; etcd out of reach is `Unavailable`.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import math
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests

from podnet.model import LabelSelector
from podnet.store.base import (
    Compacted,
    Conflict,
    Create,
    Delete,
    Event,
    EventType,
    Key,
    NotFound,
    Op,
    Resource,
    ResourceList,
    SingleWrites,
    StoreError,
    Unavailable,
    Watch,
)
from podnet.store.etcd_client import (
    DEFAULT_TIMEOUT,
    EtcdClient,
    close_stream,
    decode,
    encode,
    messages_of,
    range_end,
    read_into,
)
from podnet.store.etcd_follow import Follower
from podnet.store.etcd_ip import EtcdIPStore, pool_of_key
from podnet.store.etcd_ip import pools_prefix as ipam_prefix

log = logging.getLogger(__name__)

EVERYTHING = encode(b"\0")  # as key and range_end: the whole keyspace
SILENCE_CHECK = 5.0  # seconds without a watch message before checking that etcd still answers


class EtcdStore(SingleWrites):
    """A store in an etcd cluster, under `prefix`; usable from several threads."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], prefix: str = "/podnet",
                 url: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 netns: str | None = None) -> None:
        self.client = EtcdClient(endpoints, timeout, netns)
        self.prefix = prefix.rstrip("/")
        self._objects = f"{self.prefix}/resources/"
        self._lock = threading.Lock()
        self._follower: Follower | None = None
        self.url = url or "etcd://" + ",".join(f"{h}:{p}" for h, p in endpoints) + self.prefix

    def close(self) -> None:
        if self._follower is not None:
            self._follower.close()
        self.client.close()

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys and values ----------------------------------------------------------------------

    def etcd_key(self, key: Key) -> str:
        return f"{self._objects}{key.kind}/{key.namespace}/{key.name}"

    def _resource(self, kv: Mapping[str, Any]) -> Resource:
        kind, namespace, name = decode(kv["key"]).decode()[len(self._objects):].split("/", 2)
        return Resource(Key(kind, namespace, name), json.loads(decode(kv.get("value", ""))),
                        int(kv["mod_revision"]), int(kv.get("create_revision", 0)),
                        int(kv.get("lease", 0)) or None)

    def _range(self, key: str, prefix: bool = False) -> dict[str, Any]:
        payload = {"key": encode(key)}
        if prefix:
            payload["range_end"] = range_end(key)
        return self.client.post("kv/range", payload)

    # -- resources ----------------------------------------------------------------------------

    def revision(self) -> int:
        answer = self.client.post("kv/range", {"key": encode(self._objects), "count_only": True})
        return int(answer["header"]["revision"])

    def get(self, key: Key) -> Resource:
        kvs = self._range(self.etcd_key(key)).get("kvs")
        if not kvs:
            raise NotFound(f"{key} not found")
        return self._resource(kvs[0])

    def list(self, kind: str, namespace: str | None = None,
             selector: LabelSelector | None = None) -> ResourceList:
        where = f"{self._objects}{kind}/" + ("" if namespace is None else f"{namespace}/")
        answer = self._range(where, prefix=True)
        items = sorted((self._resource(kv) for kv in answer.get("kvs", ())),
                       key=lambda r: (r.namespace, r.name))
        if selector is not None:
            items = [r for r in items if selector.matches(r.labels)]
        return ResourceList(tuple(items), int(answer["header"]["revision"]))

    def commit(self, ops: Sequence[Op]) -> builtins.list[Resource]:
        if not ops:
            return []
        _refuse_repeated_keys(ops)
        compare, success, failure = [], [], []
        for op in ops:
            key = encode(self.etcd_key(op.key))
            if isinstance(op, Create):
                compare.append({"key": key, "target": "CREATE", "result": "EQUAL",
                                "create_revision": 0})
                put: dict[str, Any] = {"key": key, "value": encode(_dump(op.body))}
                if op.lease:
                    put["lease"] = op.lease
                success.append({"request_put": put})
            else:
                if op.revision is None:
                    compare.append({"key": key, "target": "CREATE", "result": "GREATER",
                                    "create_revision": 0})
                else:
                    compare.append({"key": key, "target": "MOD", "result": "EQUAL",
                                    "mod_revision": op.revision})
                if isinstance(op, Delete):
                    success.append({"request_delete_range": {"key": key, "prev_kv": True}})
                else:  # an update keeps the object's lease, as in SQLite
                    success.append({"request_put": {"key": key, "value": encode(_dump(op.body)),
                                                    "prev_kv": True, "ignore_lease": True}})
            failure.append({"request_range": {"key": key}})
        answer = self.client.post("kv/txn", {"compare": compare, "success": success,
                                             "failure": failure})
        responses = answer.get("responses", [])
        if not answer.get("succeeded"):
            raise _first_failure(ops, responses)
        revision = int(answer["header"]["revision"])
        return [self._written(op, response, revision) for op, response in zip(ops, responses,
                                                                             strict=True)]

    def _written(self, op: Op, response: Mapping[str, Any], revision: int) -> Resource:
        if isinstance(op, Create):
            return Resource(op.key, op.body, revision, revision, op.lease)
        if isinstance(op, Delete):
            return self._resource(response["response_delete_range"]["prev_kvs"][0])
        prev = response["response_put"]["prev_kv"]
        return Resource(op.key, op.body, revision, int(prev["create_revision"]),
                        int(prev.get("lease", 0)) or None)

    # -- watch --------------------------------------------------------------------------------

    def events(self, watch: Watch, limit: int = 1000) -> builtins.list[Event]:
        current = self.revision()
        if current <= watch.since:
            return []
        held = self._following(watch.since).read(watch.since, current, self.client.timeout)
        found: list[Event] = []
        for event in self._history(watch.since, current) if held is None else held:
            revision = int(event["kv"]["mod_revision"])
            if len(found) >= limit and revision != found[-1].revision:
                break  # never between two events of one revision
            if (mine := self._event(event, watch.kinds)) is not None:
                found.append(mine)
        return found

    def _history(self, since: int, current: int) -> Iterator[dict[str, Any]]:
        """The events after `since` up to `current`, from a watch opened for them."""
        response, messages = self._watch_stream(since, read_timeout=self.client.timeout)
        try:
            for message in messages:
                yield from message.get("events", ())
                if message.get("events") and int(
                        message["events"][-1]["kv"]["mod_revision"]) >= current:
                    return
        except requests.RequestException as err:
            raise Unavailable(f"etcd watch from revision {since + 1}: {err}") from err
        finally:
            close_stream(response)
        raise Unavailable(f"etcd watch from revision {since + 1} ended early")

    def _following(self, since: int) -> Follower:
        """The store's kept-open watch (started from `since` by the first caller)."""
        with self._lock:
            if self._follower is None or self._follower.closed:
                self._follower = Follower(
                    lambda after: self._watch_stream(after, read_timeout=None), since)
            return self._follower

    def watch(self, watch: Watch, stop: threading.Event | None = None,
              poll: float = 0.05) -> Iterator[Event]:
        stop = stop or threading.Event()
        since = watch.since
        while not stop.is_set():
            try:
                response, stream = self._watch_stream(since, read_timeout=None)
            except Unavailable as err:
                log.warning("%s; watching again in 1s", err)
                stop.wait(1.0)
                continue
            messages: queue.Queue[dict[str, Any] | Exception] = queue.Queue()
            reader = threading.Thread(target=read_into, args=(stream, messages),
                                      daemon=True,
                                      name="podnet-etcd-watch")
            reader.start()
            try:
                silent = 0.0
                while not stop.is_set():
                    try:
                        message = messages.get(timeout=poll)
                    except queue.Empty:
                        silent += poll
                        if silent >= SILENCE_CHECK:
                            silent = 0.0
                            self.revision()  # Unavailable: reconnect below
                        continue
                    silent = 0.0
                    if isinstance(message, Compacted):
                        raise message
                    if isinstance(message, Exception):
                        log.info("etcd watch stream ended (%s): watching again", message)
                        break  # reopen after the last revision seen
                    for event in message.get("events", ()):
                        if (mine := self._event(event, watch.kinds)) is not None:
                            yield mine
                        since = int(event["kv"]["mod_revision"])
            except Unavailable as err:
                log.warning("%s; watching again", err)
            finally:
                close_stream(response)

    def wait(self, since: int, timeout: float) -> None:
        """Return when etcd has changes after `since` (the kept-open watch saw one), or
        after `timeout`: what lets an informer sleep instead of polling `events`."""
        self._following(since).wait(since, timeout)

    def _watch_stream(self, since: int, read_timeout: float | None
                      ) -> tuple[requests.Response, Iterator[dict[str, Any]]]:
        """A watch of the whole keyspace from `since + 1`, past its `created` answer."""
        request = {"create_request": {"key": EVERYTHING, "range_end": EVERYTHING,
                                      "start_revision": since + 1, "prev_kv": True}}
        response = self.client.stream("watch", request, read_timeout)
        messages = messages_of(response, since)
        try:
            first = next(messages, {})
        except requests.RequestException as err:
            response.close()
            raise Unavailable(f"etcd watch from revision {since + 1}: {err}") from err
        except StoreError:
            response.close()
            raise
        if not first.get("created"):
            response.close()
            raise Unavailable(f"etcd did not create the watch from revision {since + 1}")
        return response, messages

    def _event(self, event: Mapping[str, Any], kinds: frozenset[str]) -> Event | None:
        kv = event["kv"]
        if not decode(kv["key"]).startswith(self._objects.encode()):
            return None
        revision = int(kv["mod_revision"])
        if event.get("type") == "DELETE":
            prev = event.get("prev_kv") or {**kv, "value": encode(b"{}")}
            resource = self._resource({**prev, "mod_revision": revision})
            kind = EventType.DELETED
        else:
            resource = self._resource(kv)
            kind = EventType.ADDED if resource.created == revision else EventType.MODIFIED
        if kinds and resource.kind not in kinds:
            return None
        return Event(kind, resource, revision)

    def compact(self, revision: int) -> None:
        """Forget the history up to `revision`: watches from before it get Compacted."""
        self.client.post("kv/compaction", {"revision": min(revision + 1, self.revision()),
                                           "physical": True})

    # -- leases -------------------------------------------------------------------------------

    def grant_lease(self, ttl: float) -> int:
        # etcd counts whole seconds and raises very short TTLs to its minimum (about 1.5
        # election timeouts): a lease never ends sooner than asked.
        answer = self.client.post("lease/grant", {"TTL": max(1, math.ceil(ttl)), "ID": 0})
        return int(answer["ID"])

    def keep_alive(self, lease: int) -> None:
        answer = self.client.post("lease/keepalive", {"ID": lease})
        if int(answer.get("result", {}).get("TTL", 0)) <= 0:
            raise NotFound(f"lease {lease} not found (expired or revoked)")

    def revoke_lease(self, lease: int) -> None:
        with contextlib.suppress(NotFound):  # gone already: revoking is idempotent
            self.client.post("kv/lease/revoke", {"ID": lease})

    # -- IPAM pools ---------------------------------------------------------------------------

    def ip_store(self, pool: str) -> EtcdIPStore:
        return EtcdIPStore(self.client, self.prefix, pool)

    def ip_pools(self) -> builtins.list[str]:
        where = ipam_prefix(self.prefix)
        answer = self.client.post("kv/range", {"key": encode(where), "range_end": range_end(where),
                                               "keys_only": True})
        pools = {pool_of_key(where, decode(kv["key"]).decode()) for kv in answer.get("kvs", ())}
        return sorted(p for p in pools if p is not None)


def _refuse_repeated_keys(ops: Sequence[Op]) -> None:
    """etcd allows one write per key in a Txn: refuse what SQLite would, and the rest."""
    exists: dict[Key, bool] = {}
    for op in ops:
        if op.key not in exists:
            exists[op.key] = not isinstance(op, Delete)
            continue
        if isinstance(op, Create) and exists[op.key]:
            raise Conflict(f"{op.key} already exists")
        if not isinstance(op, Create) and not exists[op.key]:
            raise NotFound(f"{op.key} not found")
        if not isinstance(op, Create) and op.revision is not None:
            raise Conflict(f"{op.key} changed earlier in the same commit")
        raise StoreError(f"{op.key} is written twice in one commit (etcd allows one write per "
                         "key in a transaction)")


def _first_failure(ops: Sequence[Op], responses: Sequence[Mapping[str, Any]]) -> StoreError:
    """Why a Txn's compares failed, from the objects read in its failure branch."""
    for op, response in zip(ops, responses, strict=True):
        kvs = response["response_range"].get("kvs")
        if isinstance(op, Create):
            if kvs:
                return Conflict(f"{op.key} already exists")
        elif not kvs:
            return NotFound(f"{op.key} not found")
        elif op.revision is not None and int(kvs[0]["mod_revision"]) != op.revision:
            return Conflict(f"{op.key} changed: at revision {kvs[0]['mod_revision']}, "
                            f"not {op.revision}")
    return Conflict("the objects changed while the commit was sent")


def _dump(body: Mapping[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
