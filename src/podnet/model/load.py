"""Loading manifests: files and directories of YAML or JSON into a validated `Cluster`.

Accepts what kubectl accepts: multi-document YAML, JSON, `List` kinds and `kubectl get -o yaml`
dumps. Every problem in every object is reported at once, and nothing is half-loaded.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from podnet.model.core import decode_namespace, decode_node, decode_pod
from podnet.model.errors import FieldError, ManifestError, Problem
from podnet.model.fields import Field
from podnet.model.lab import Lab, decode_lab
from podnet.model.names import dns_label_errors, dns_subdomain_errors
from podnet.model.networkpolicy import decode_network_policy
from podnet.model.objects import Cluster, Namespace, NetworkPolicy, Node, Pod
from podnet.model.workloads import WORKLOAD_KINDS, Workload, decode_workload
from podnet.model.yamlload import FastSafeLoader

log = logging.getLogger(__name__)

_SUFFIXES = (".yaml", ".yml", ".json")
CLUSTER_SCOPED = ("Namespace", "Node", "Lab")
KINDS = ("Namespace", "Pod", "NetworkPolicy", "Node", "Lab", *WORKLOAD_KINDS)

Decoded = Namespace | Pod | NetworkPolicy | Node | Workload | Lab


@dataclass(frozen=True)
class Manifest:
    """One object as found in a file, before decoding."""

    source: str
    kind: str
    namespace: str | None
    name: str
    body: dict[str, Any]

    @property
    def title(self) -> str:
        """`NetworkPolicy x/deny`, the way errors name the object."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where or '<unnamed>'}"

    def owners(self) -> list[tuple[str, str]]:
        refs = self.body.get("metadata", {}).get("ownerReferences") or []
        return [(str(r.get("kind")), str(r.get("name"))) for r in refs if isinstance(r, dict)]


def read_manifests(paths: Sequence[str | Path]) -> list[Manifest]:
    """Every object in the files (directories: their .yaml/.yml/.json files, recursively)."""
    manifests: list[Manifest] = []
    problems: list[Problem] = []
    for source, body in _documents(paths, problems):
        for item in _flatten(body):
            try:
                manifests.append(_manifest(source, item))
            except FieldError as err:
                problems.append(Problem(source, "", err.path, err.message))
    if problems:
        raise ManifestError(problems)
    return manifests


def decode(manifest: Manifest) -> Decoded:
    """Decode, default and validate one object; ManifestError lists all its problems."""
    root = Field(manifest.body)
    try:
        obj = _decode(root, manifest)
    except FieldError as err:
        root.findings.append(err)
    if root.findings:
        raise ManifestError([Problem(manifest.source, manifest.title, e.path, e.message)
                             for e in root.findings])
    return obj


def load_cluster(paths: Sequence[str | Path]) -> Cluster:
    """Read, decode and assemble manifests; known kinds only, others skipped with a warning."""
    return build_cluster(read_manifests(paths))


def build_cluster(manifests: Iterable[Manifest]) -> Cluster:
    problems: list[Problem] = []
    warnings: list[str] = []
    seen: dict[tuple[str, str | None, str], str] = {}
    decoded: list[tuple[Manifest, Decoded]] = []
    for m in manifests:
        if m.kind not in KINDS:
            warnings.append(f"{m.source}: {m.title}: skipped, podnet does not use this kind")
            continue
        key = (m.kind, m.namespace, m.name)
        if key in seen:
            problems.append(Problem(m.source, m.title, "", f"defined again (first in {seen[key]})"))
            continue
        seen[key] = m.source
        try:
            decoded.append((m, decode(m)))
        except ManifestError as err:
            problems += err.problems
    if problems:
        raise ManifestError(problems)
    for w in warnings:
        log.warning("%s", w)
    return assemble(decoded, tuple(warnings))


def assemble(decoded: Sequence[tuple[Manifest, Decoded]], warnings: tuple[str, ...] = ()
             ) -> Cluster:
    """The cluster of decoded objects: workloads expanded, implied namespaces added."""
    namespaces = {o.name: o for _, o in decoded if isinstance(o, Namespace)}
    nodes = tuple(o for _, o in decoded if isinstance(o, Node))
    pods = [o for _, o in decoded if isinstance(o, Pod)]
    owners = {(m.namespace, kind, name) for m, o in decoded if isinstance(o, Pod)
              for kind, name in m.owners()}
    for _, w in decoded:
        if isinstance(w, Workload) and not any(
            ns == w.namespace and w.owns(kind, name) for ns, kind, name in owners
        ):
            pods += w.pods(nodes)
    policies = tuple(o for _, o in decoded if isinstance(o, NetworkPolicy))
    for ns in sorted({p.namespace for p in pods} | {p.namespace for p in policies}):
        if ns not in namespaces:
            namespaces[ns] = decode_namespace(Field({}), ns)
    return Cluster(
        namespaces=dict(sorted(namespaces.items())),
        pods=tuple(pods),
        policies=policies,
        nodes=nodes,
        warnings=warnings,
    )


def _decode(root: Field, m: Manifest) -> Decoded:
    name_f = root.get("metadata").get("name")
    name_errors = dns_label_errors if m.kind in ("Namespace", "Lab") else dns_subdomain_errors
    for msg in name_errors(m.name):
        name_f.report(f"Invalid value: {m.name!r}: {msg}")
    if m.namespace is not None:
        for msg in dns_label_errors(m.namespace):
            root.report(f"Invalid value: {m.namespace!r}: {msg}", "metadata.namespace")
    namespace = m.namespace or ""
    if m.kind == "Namespace":
        return decode_namespace(root, m.name)
    if m.kind == "Node":
        return decode_node(root, m.name)
    if m.kind == "Lab":
        return decode_lab(root, m.name)
    if m.kind == "Pod":
        return decode_pod(root, namespace, m.name)
    if m.kind == "NetworkPolicy":
        return decode_network_policy(root, namespace, m.name)
    return decode_workload(root, m.kind, namespace, m.name)


def _manifest(source: str, body: Any) -> Manifest:
    root = Field(body)
    kind = root.get("kind").string()
    meta = root.get("metadata")
    name = meta.get("name").string()
    namespace = None if kind in CLUSTER_SCOPED else meta.get("namespace").string("default")
    return Manifest(source, kind, namespace, name, root.mapping())


def _documents(paths: Sequence[str | Path], problems: list[Problem]) -> Iterator[tuple[str, Any]]:
    for path in paths:
        for file in _files(Path(path), problems):
            source = str(file)
            try:
                text = sys.stdin.read() if source == "-" else file.read_text()
                if file.suffix == ".json":
                    yield source, json.loads(text)
                else:
                    yield from ((source, d) for d in yaml.load_all(text, Loader=FastSafeLoader)
                                if d is not None)
            except (OSError, UnicodeDecodeError) as err:
                problems.append(Problem(source, "", "", f"cannot read: {err}"))
            except (yaml.YAMLError, json.JSONDecodeError) as err:
                problems.append(Problem(source, "", "", f"cannot parse: {_one_line(err)}"))


def _files(path: Path, problems: list[Problem]) -> list[Path]:
    if str(path) == "-":
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    if not path.exists():
        problems.append(Problem(str(path), "", "", "no such file or directory"))
        return []
    return [path]


def _flatten(body: Any) -> Iterator[Any]:
    """Objects of a document: the items of a `List` (or `PodList`...), else the document."""
    if isinstance(body, dict) and str(body.get("kind", "")).endswith("List") and "items" in body:
        for item in body.get("items") or []:
            yield from _flatten(item)
    else:
        yield body


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
