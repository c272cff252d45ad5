"""IPAM reservations in etcd: the `IPStore` of one pool, by compare-and-create on keys.

Under `<prefix>/ipam/<pool>/` (the pool URL-quoted, as it holds a slash):

| key | value |
|---|---|
| `ips/<ip>` | the holder: `{"containerID", "ifname", "pod"}` |
| `owners/<container_id>/<ifname>` | the address it holds |
| `cursors/<range_id>` | the last address reserved (host-local's `last_reserved_ip`) |

`reserve` is one Txn that creates the address key and the owner key only if neither exists,
and moves the cursor: two holders of an address, or two addresses for one attachment, are
impossible whoever races. No lock is needed around an allocation (`transaction()` is
empty): when an address is taken meanwhile, the allocator simply tries the next.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import quote, unquote

from podnet.ipam.errors import AlreadyAllocated
from podnet.ipam.reservations import Attachment, Reservation
from podnet.model import IPAddress
from podnet.store.base import Conflict
from podnet.store.etcd_client import EtcdClient, decode, encode, range_end

_RELEASE_ATTEMPTS = 20


def pools_prefix(prefix: str) -> str:
    return f"{prefix}/ipam/"


def pool_of_key(where: str, key: str) -> str | None:
    """The pool of an address key under `where` (None for owner and cursor keys)."""
    pool, sep, rest = key[len(where):].partition("/")
    return unquote(pool) if sep and rest.startswith("ips/") else None


class EtcdIPStore:
    """The reservations of `pool`, kept in etcd."""

    def __init__(self, client: EtcdClient, prefix: str, pool: str) -> None:
        self._client = client
        self.pool = pool
        self._base = f"{pools_prefix(prefix)}{quote(pool, safe='')}/"

    def _ip_key(self, ip: IPAddress | str) -> str:
        return f"{self._base}ips/{ip}"

    def _owner_key(self, attachment: Attachment) -> str:
        return f"{self._base}owners/{attachment.container_id}/{attachment.ifname}"

    def _get(self, key: str) -> dict[str, Any] | None:
        kvs = self._client.post("kv/range", {"key": encode(key)}).get("kvs")
        return kvs[0] if kvs else None

    def transaction(self) -> AbstractContextManager[object]:
        return nullcontext()

    def reserve(self, attachment: Attachment, ip: IPAddress, range_id: str,
                pod: str | None = None) -> bool:
        ip_key, owner_key = encode(self._ip_key(ip)), encode(self._owner_key(attachment))
        holder = {"containerID": attachment.container_id, "ifname": attachment.ifname, "pod": pod}
        answer = self._client.post("kv/txn", {
            "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": 0}
                        for k in (ip_key, owner_key)],
            "success": [
                {"request_put": {"key": ip_key, "value": encode(json.dumps(holder))}},
                {"request_put": {"key": owner_key, "value": encode(str(ip))}},
                {"request_put": {"key": encode(f"{self._base}cursors/{range_id}"),
                                 "value": encode(str(ip))}},
            ],
            "failure": [{"request_range": {"key": ip_key, "count_only": True}}],
        })
        if answer.get("succeeded"):
            return True
        if int(answer["responses"][0]["response_range"].get("count", 0)):
            return False  # the address is taken
        raise AlreadyAllocated(f"{attachment} already holds an address in {self.pool}")

    def last_reserved(self, range_id: str) -> IPAddress | None:
        kv = self._get(f"{self._base}cursors/{range_id}")
        return ipaddress.ip_address(decode(kv["value"]).decode()) if kv else None

    def get_by_owner(self, attachment: Attachment) -> list[IPAddress]:
        kv = self._get(self._owner_key(attachment))
        return [ipaddress.ip_address(decode(kv["value"]).decode())] if kv else []

    def release_by_owner(self, attachment: Attachment) -> list[IPAddress]:
        owner_key = self._owner_key(attachment)
        for _ in range(_RELEASE_ATTEMPTS):
            kv = self._get(owner_key)
            if kv is None:
                return []
            ip = decode(kv["value"]).decode()
            answer = self._client.post("kv/txn", {
                "compare": [{"key": kv["key"], "target": "MOD", "result": "EQUAL",
                             "mod_revision": kv["mod_revision"]}],
                "success": [{"request_delete_range": {"key": kv["key"]}},
                            {"request_delete_range": {"key": encode(self._ip_key(ip))}}],
            })
            if answer.get("succeeded"):
                return [ipaddress.ip_address(ip)]
        raise Conflict(f"{attachment} in {self.pool} kept changing while being released")

    def reservations(self) -> Iterator[Reservation]:
        where = f"{self._base}ips/"
        answer = self._client.post("kv/range", {"key": encode(where),
                                                "range_end": range_end(where)})
        found = []
        for kv in answer.get("kvs", ()):
            holder = json.loads(decode(kv["value"]))
            found.append(Reservation(ipaddress.ip_address(decode(kv["key"]).decode()[len(where):]),
                                     Attachment(holder["containerID"], holder["ifname"]),
                                     holder.get("pod")))
        return iter(sorted(found, key=lambda r: (r.ip.version, r.ip)))
