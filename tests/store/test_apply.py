"""apply_manifests: what `podnet apply` and the lab write, validated first, all or nothing."""

from pathlib import Path
from typing import Any

import pytest

from podnet.model import Manifest, ManifestError, read_manifests
from podnet.store import Key, Store, modify
from podnet.store.apply import apply_manifests

DUMP = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: web, namespace: shop, resourceVersion: "981", uid: 1b2c, labels: {app: web}}
  spec: {containers: [{name: c}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: api, namespace: shop}
  spec: {replicas: 2, template: {metadata: {labels: {app: api}}, spec: {containers: [{name: a}]}}}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: shop}
"""


def manifests(tmp_path: Path, text: str) -> list[Manifest]:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return read_manifests([path])


def test_dump_is_stored_without_server_fields(store: Store, tmp_path: Path) -> None:
    applied = apply_manifests(store, manifests(tmp_path, DUMP))
    assert [str(a) for a in applied] == ["pod/web created", "deployment/api created"]
    meta = store.get(Key("Pod", "shop", "web")).body["metadata"]
    assert "resourceVersion" not in meta and "uid" not in meta
    assert store.get(Key("Deployment", "shop", "api")).body["spec"]["replicas"] == 2


def test_reapply_keeps_what_the_network_set(store: Store, tmp_path: Path) -> None:
    apply_manifests(store, manifests(tmp_path, DUMP))

    def wired(body: dict[str, Any]) -> None:
        body["spec"]["nodeName"] = "node-a"
        body["status"] = {"podIP": "10.244.0.7"}

    modify(store, Key("Pod", "shop", "web"), wired)
    again = apply_manifests(store, manifests(tmp_path, DUMP.replace("app: web}", "app: web2}")))
    assert [a.action for a in again] == ["configured", "unchanged"]
    body = store.get(Key("Pod", "shop", "web")).body
    assert body["metadata"]["labels"] == {"app": "web2"}
    assert (body["spec"]["nodeName"], body["status"]["podIP"]) == ("node-a", "10.244.0.7")


def test_one_bad_object_writes_nothing(store: Store, tmp_path: Path) -> None:
    bad = DUMP + """- kind: NetworkPolicy
  metadata: {name: x, namespace: shop}
  spec: {podSelector: {}, policyTypes: [Sideways]}
"""
    before = store.revision()
    with pytest.raises(ManifestError, match=r"NetworkPolicy shop/x: spec.policyTypes\[0\]"):
        apply_manifests(store, manifests(tmp_path, bad))
    assert store.revision() == before


def test_an_object_twice_is_an_error(store: Store, tmp_path: Path) -> None:
    twice = DUMP + """- kind: Pod
  metadata: {name: web, namespace: shop}
  spec: {containers: [{name: c}]}
"""
    with pytest.raises(ManifestError, match="defined again"):
        apply_manifests(store, manifests(tmp_path, twice))
