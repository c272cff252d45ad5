"""Applying manifests to the store, as `kubectl apply` does: validate all, then write all.

Every object is decoded by the model first; one bad object rejects the whole set with its
file, object and field path, and nothing is written. The writes are one transaction, guarded
by the revisions read while planning (re-planned if someone wrote meanwhile). Re-applying
changes objects in place and keeps what the network filled in (`status`, `spec.nodeName`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from podnet.model import Manifest, ManifestError, Problem, decode
from podnet.model.load import KINDS
from podnet.model.objects import NAMESPACE_NAME_LABEL
from podnet.store.base import Conflict, Create, Key, NotFound, ResourceStore, Update

log = logging.getLogger(__name__)

# Fields that the API server owns: a manifest (or a `get -o yaml` dump) cannot set them.
SERVER_METADATA = ("resourceVersion", "uid", "generation", "managedFields", "selfLink")
_ATTEMPTS = 10


@dataclass(frozen=True)
class Applied:
    """What `apply` did to one object: created, configured or unchanged."""

    key: Key
    action: str

    def __str__(self) -> str:
        return f"{ref(self.key.kind, self.key.name)} {self.action}"


def ref(kind: str, name: str) -> str:
    """`pod/web`, as kubectl names an object in its messages."""
    return f"{kind.lower()}/{name}"


def manifest_key(m: Manifest) -> Key:
    return Key(m.kind, m.namespace or "", m.name)


def known(manifests: Sequence[Manifest]) -> list[Manifest]:
    """The manifests of kinds podnet stores; a warning for each other one."""
    for m in manifests:
        if m.kind not in KINDS:
            log.warning("%s: %s: skipped, podnet does not store this kind", m.source, m.title)
    return [m for m in manifests if m.kind in KINDS]


def validated(manifests: Sequence[Manifest]) -> list[Manifest]:
    """The manifests podnet stores, each decoded by the model; ManifestError lists all problems."""
    problems: list[Problem] = []
    seen: dict[Key, str] = {}
    kept = []
    for m in known(manifests):
        key = manifest_key(m)
        if key in seen:
            problems.append(Problem(m.source, m.title, "", f"defined again (first in {seen[key]})"))
            continue
        seen[key] = m.source
        try:
            decode(m)
        except ManifestError as err:
            problems += err.problems
        kept.append(m)
    if problems:
        raise ManifestError(problems)
    return kept


def apply_manifests(store: ResourceStore, manifests: Sequence[Manifest]) -> list[Applied]:
    """Create or update every object of `manifests` in one transaction; what was done to each."""
    checked = validated(manifests)
    for _ in range(_ATTEMPTS):
        ops, applied = plan(store, checked)
        try:
            store.commit(ops)
            return applied
        except Conflict:
            log.info("objects changed while applying: planning again")
    raise Conflict(f"objects kept changing while applying: gave up after {_ATTEMPTS} attempts")


def plan(store: ResourceStore, manifests: Sequence[Manifest]
         ) -> tuple[list[Create | Update], list[Applied]]:
    """The writes that make the store hold `manifests`, guarded by the revisions read."""
    ops: list[Create | Update] = []
    applied = []
    for m in manifests:
        key = manifest_key(m)
        body = stored_body(m)
        try:
            current = store.get(key)
        except NotFound:
            ops.append(Create(key, body))
            applied.append(Applied(key, "created"))
            continue
        body = keep_network_fields(body, current.body)
        if body == current.body:
            applied.append(Applied(key, "unchanged"))
        else:
            ops.append(Update(key, body, current.revision))
            applied.append(Applied(key, "configured"))
    return ops, applied


def stored_body(m: Manifest) -> dict[str, Any]:
    body = copy.deepcopy(m.body)
    meta = body.setdefault("metadata", {})
    for field in SERVER_METADATA:
        meta.pop(field, None)
    if m.namespace:
        meta["namespace"] = m.namespace
    if m.kind == "Namespace":  # the control plane sets it on every namespace
        meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = m.name
    return body


def keep_network_fields(body: dict[str, Any], current: Any) -> dict[str, Any]:
    """A new manifest without `status` or `spec.nodeName` keeps the ones the network set."""
    if "status" not in body and "status" in current:
        body["status"] = current["status"]
    node = (current.get("spec") or {}).get("nodeName")
    if node and isinstance(body.get("spec"), dict) and "nodeName" not in body["spec"]:
        body["spec"]["nodeName"] = node
    return body
