"""`podnet apply|get|delete|label` and `podnet ipam show`, against a real store file."""

import json
from pathlib import Path

import pytest
import yaml

from podnet import ipam
from podnet.agent.liveness import NodeLeaseKeeper
from podnet.agent.metrics import Metrics
from podnet.cli.main import main
from podnet.store import EventType, Key, Watch, open_store

SHOP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}}
"""


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Name: url. Scope: function. A fresh store, also set as $PODNET_STORE."""
    store_url = f"sqlite://{tmp_path}/state.db"
    monkeypatch.setenv("PODNET_STORE", store_url)
    return store_url


def manifest(tmp_path: Path, text: str, name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_creates_then_reports_unchanged(url: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, SHOP)
    assert run(capsys, "apply", "-f", path)[1].splitlines() == [
        "namespace/shop created", "pod/web created", "pod/db created", "networkpolicy/deny created"]
    assert run(capsys, "apply", "-f", path)[1].count("unchanged") == 4
    code, out, _ = run(capsys, "get", "pods", "-n", "shop")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["NAME", "db", "web"]


def test_labels_change_in_place(url: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "apply", "-f", manifest(tmp_path, SHOP))
    with open_store(url) as store:
        before = store.get(Key("Pod", "shop", "web"))
        since = store.revision()
        relabeled = SHOP.replace("labels: {app: web}", "labels: {app: web, tier: front}")
        assert "pod/web configured" in run(capsys, "apply", "-f", manifest(tmp_path, relabeled))[1]
        after = store.get(Key("Pod", "shop", "web"))
        assert after.created == before.created and after.labels == {"app": "web", "tier": "front"}
        events = store.events(Watch(since))
        assert [(e.type, e.resource.name) for e in events] == [(EventType.MODIFIED, "web")]


def test_bad_object_is_rejected_with_its_field_path_and_nothing_is_written(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = SHOP + """---
apiVersion: v1
kind: Pod
metadata: {name: bad, namespace: shop}
spec: {containers: [{name: c, ports: [{containerPort: 70000}]}]}
"""
    path = manifest(tmp_path, bad)
    code, _, err = run(capsys, "apply", "-f", path)
    assert code == 1
    assert f"{path}: Pod shop/bad: spec.containers[0].ports[0].containerPort: Invalid value" in err
    with open_store(url) as store:
        assert store.revision() == 0


def test_get_json_is_a_list_and_pods_carry_their_network(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "apply", "-f", manifest(tmp_path, SHOP))
    with open_store(url) as store:  # what the agent records when it wires the pod
        store.create(Key("PodEndpoint", "", "c1:eth0"), {"spec": {
            "node": "node-a", "containerID": "c1", "ifname": "eth0", "ip": "10.244.0.5",
            "pod": {"namespace": "shop", "name": "web"}}})
    doc = json.loads(run(capsys, "get", "pods", "-A", "-o", "json")[1])
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1"
    by_name = {item["metadata"]["name"]: item for item in doc["items"]}
    assert by_name["web"]["status"]["podIP"] == "10.244.0.5"
    assert by_name["web"]["spec"]["nodeName"] == "node-a"
    assert "status" not in by_name["db"]
    assert by_name["web"]["metadata"]["resourceVersion"].isdigit()
    one = yaml.safe_load(run(capsys, "get", "pod", "web", "-n", "shop", "-o", "yaml")[1])
    assert one["kind"] == "Pod" and one["status"]["podIP"] == "10.244.0.5"
    table = run(capsys, "get", "pods", "-n", "shop", "-o", "wide")[1]
    assert "10.244.0.5" in table and "node-a" in table and "app=web" in table


def test_get_by_selector_and_namespace_labels(url: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "apply", "-f", manifest(tmp_path, SHOP))
    doc = json.loads(run(capsys, "get", "po", "-n", "shop", "-l", "app!=web", "-o", "json")[1])
    assert [i["metadata"]["name"] for i in doc["items"]] == ["db"]
    ns = json.loads(run(capsys, "get", "ns", "shop", "-o", "json")[1])
    assert ns["metadata"]["labels"] == {"team": "a", "kubernetes.io/metadata.name": "shop"}


def test_get_errors(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "get", "pods", "ghost", "-n", "shop")
    assert code == 1 and "Pod shop/ghost not found" in err
    code, _, err = run(capsys, "get", "gadgets")
    assert code == 1 and 'unknown resource type "gadgets"' in err


def test_label_sets_removes_and_refuses_to_overwrite(url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "apply", "-f", manifest(tmp_path, SHOP))
    assert run(capsys, "label", "pod", "web", "-n", "shop", "tier=front", "app-")[1] == (
        "pod/web labeled\n")
    code, _, err = run(capsys, "label", "pod", "web", "-n", "shop", "tier=back")
    assert code == 1 and "'tier' already has a value (front)" in err
    run(capsys, "label", "pod", "web", "-n", "shop", "tier=back", "--overwrite")
    with open_store(url) as store:
        assert store.get(Key("Pod", "shop", "web")).labels == {"tier": "back"}
    code, _, err = run(capsys, "label", "ns", "shop", "bad key=x")
    assert code == 1 and "bad key=x" in err


def test_delete_from_files_and_by_name(url: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, SHOP)
    run(capsys, "apply", "-f", path)
    assert run(capsys, "delete", "pod", "db", "-n", "shop")[1] == "pod/db deleted\n"
    code, out, err = run(capsys, "delete", "-f", path)
    assert code == 1 and 'pods "db" not found' in err
    assert "networkpolicy/deny deleted" in out
    with open_store(url) as store:
        assert store.list("Pod").items == () and store.list("Namespace").items == ()
    assert run(capsys, "delete", "-f", path, "--ignore-not-found")[0] == 0


def test_ipam_show_and_deleting_a_node_frees_its_subnet(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(url) as store:
        a = ipam.register_node(store, "node-a")
        ipam.register_node(store, "node-b")
        ipam.pod_allocator(store, a).allocate(ipam.Attachment("c1"), pod="shop/web")
    doc = json.loads(run(capsys, "ipam", "show", "-o", "json")[1])
    assert doc["cluster"] == {"clusterCIDR": "10.244.0.0/16", "nodeSubnetPrefix": 24}
    assert [(n["node"], n["subnet"], n["used"], n["free"]) for n in doc["nodes"]] == [
        ("node-a", "10.244.0.0/24", 1, 253), ("node-b", "10.244.1.0/24", 0, 254)]
    assert doc["nodes"][0]["allocations"] == [
        {"pod": "shop/web", "containerID": "c1", "ifname": "eth0", "ip": "10.244.0.1"}]
    table = run(capsys, "ipam", "show", "--node", "node-a")[1]
    assert "shop/web" in table and "10.244.0.1" in table and "node-b" not in table
    code, _, err = run(capsys, "ipam", "show", "--node", "node-x")
    assert code == 1 and "node node-x has no subnet" in err
    assert run(capsys, "delete", "node", "node-a")[1] == "node/node-a deleted\n"
    doc = json.loads(run(capsys, "ipam", "show", "-o", "json")[1])
    assert [n["node"] for n in doc["nodes"]] == ["node-b"]


def test_nodes_are_listed_with_their_subnet(url: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A node registered by its agent only (a lease) is a node too; a Node object gets its CIDR.

    node-b's agent holds its node lease (renewed once here): Ready; node-a has none: NotReady.
    """
    run(capsys, "apply", "-f", manifest(tmp_path, """
kind: Node
metadata: {name: node-a, labels: {zone: z1}}
"""))
    with open_store(url) as store:
        ipam.register_node(store, "node-a")
        ipam.register_node(store, "node-b", attrs={"publicIP": "192.0.2.12"})
        NodeLeaseKeeper(store, "node-b", duration=60, interval=20,
                        metrics=Metrics()).renew()
    table = run(capsys, "get", "nodes")[1].splitlines()
    rows = [line.split() for line in table]
    assert rows == [
        ["NAME", "STATUS", "RENEWED", "POD-CIDR", "INTERNAL-IP"],
        ["node-a", "NotReady", "<none>", "10.244.0.0/24", "<none>"],
        ["node-b", "Ready", rows[2][2], "10.244.1.0/24", "192.0.2.12"]]
    assert rows[2][2] in ("0s", "1s", "2s")  # renewed just now
    one = json.loads(run(capsys, "get", "node", "node-a", "-o", "json")[1])
    assert one["spec"]["podCIDR"] == "10.244.0.0/24" and one["metadata"]["labels"] == {"zone": "z1"}
    assert [c["status"] for c in one["status"]["conditions"]] == ["Unknown"]
    (ready,) = json.loads(run(capsys, "get", "node", "node-b", "-o", "json")[1])["status"][
        "conditions"]
    assert ready["type"] == "Ready" and ready["status"] == "True" and ready["lastHeartbeatTime"]
    leases = json.loads(run(capsys, "get", "leases", "-n", "podnet-node-lease", "-o", "json")[1])
    assert [lease["spec"]["holderIdentity"] for lease in leases["items"]] == ["node-b"]
    table = run(capsys, "get", "leases", "-n", "podnet-node-lease")[1].splitlines()
    assert [line.split()[:3] for line in table] == [["NAME", "HOLDER", "DURATION"],
                                                     ["node-b", "node-b", "60s"]]
    assert run(capsys, "delete", "node", "node-b")[1] == "node/node-b deleted\n"
    leases = json.loads(run(capsys, "get", "leases", "-A", "-o", "json")[1])
    assert leases["items"] == []
    doc = json.loads(run(capsys, "get", "nodes", "-l", "zone=z1", "-o", "json")[1])
    assert [n["metadata"]["name"] for n in doc["items"]] == ["node-a"]
    assert run(capsys, "get", "node", "node-z")[0] == 1


def test_which_store(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--store, then --lab, then $PODNET_STORE (set here by the fixture)."""
    other = f"sqlite://{tmp_path}/other.db"
    run(capsys, "apply", "-f", manifest(tmp_path, SHOP), "--store", other)
    assert "web" in run(capsys, "get", "pods", "-n", "shop", "--store", other)[1]
    assert "web" not in run(capsys, "get", "pods", "-n", "shop")[1]
    code, _, err = run(capsys, "get", "pods", "--lab", "pn-t-no-such-lab")
    assert code == 1 and "no lab 'pn-t-no-such-lab' is running" in err


def test_usage_errors_exit_2(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "delete")[0] == 2
    assert run(capsys, "delete", "pods")[0] == 2
    assert run(capsys, "label", "pod", "web", "justakey")[0] == 2
