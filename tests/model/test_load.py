"""Loading manifests as kubectl would: lists, dumps, controllers, defaulting."""

from pathlib import Path

import pytest

from podnet.model import NAMESPACE_NAME_LABEL, Direction, ManifestError, Protocol, load_cluster


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_list_dump_and_controllers(tmp_path: Path) -> None:
    write(tmp_path, "dump.yaml", """
apiVersion: v1
kind: List
items:
- kind: Pod
  metadata: {name: a, namespace: x, labels: {pod: a}}
  spec: {containers: [{name: c, ports: [{name: serve-80-tcp, containerPort: 80}]}]}
  status: {podIP: 10.244.1.2}
""")
    write(tmp_path, "apps.yaml", """
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: w}]}
---
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  replicas: 2
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: d}]}}
""")
    cluster = load_cluster([tmp_path])
    names = sorted(p.key for p in cluster.pods)
    assert names[:2] == ["shop/db-0", "shop/db-1"]
    assert sum(n.startswith("shop/web-") for n in names) == 3
    a = cluster.pod("x/a")
    assert str(a.ips[0]) == "10.244.1.2"
    assert a.named_port("serve-80-tcp", Protocol.TCP) == 80
    assert a.named_port("serve-80-tcp", Protocol.UDP) is None
    assert cluster.namespaces["shop"].labels[NAMESPACE_NAME_LABEL] == "shop"


def test_policy_types_default_from_egress(tmp_path: Path) -> None:
    write(tmp_path, "p.json", """{"kind": "NetworkPolicy",
      "metadata": {"name": "p", "namespace": "x"},
      "spec": {"podSelector": {}, "egress": [{}], "ingress": [{"ports": [{}]}]}}""")
    (policy,) = load_cluster([tmp_path]).policies
    assert policy.policy_types == (Direction.INGRESS, Direction.EGRESS)
    assert policy.ingress[0].ports[0].protocol is Protocol.TCP


def test_errors_name_file_object_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", """
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]
""")
    with pytest.raises(ManifestError) as err:
        load_cluster([path])
    assert str(err.value) == (
        f"{path}: NetworkPolicy x/deny: spec.ingress[0].from[0].ipBlock.except[0]: "
        "Invalid value: '11.0.0.0/16': must be a strict subset of `cidr`"
    )
