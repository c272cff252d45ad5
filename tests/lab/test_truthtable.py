"""The lab's vocabulary: truth tables, reachability expectations and the e2e topology."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from podnet.lab import (
    IncompleteObservation,
    Model,
    Peer,
    PodString,
    Reachability,
    TruthTable,
    UnknownKey,
)
from podnet.model import NAMESPACE_NAME_LABEL, Protocol, load_cluster

PODS = ["x/a", "x/b", "y/a"]


def test_set_get_and_unknown_keys_fail_at_once() -> None:
    table = TruthTable(PODS, default=True)
    table.set("x/a", "y/a", False)
    assert table.get("x/a", "y/a") is False
    assert table.get("y/a", "x/a") is True
    for bad in (lambda: table.get("x/c", "x/a"), lambda: table.get("x/a", "x/c"),
                lambda: table.set("z/a", "x/a", True), lambda: table.set_all_to("x/c", True),
                lambda: table.set_all_from("x/c", True)):
        with pytest.raises(UnknownKey):
            bad()


def test_unset_cells_are_unknown_until_set() -> None:
    table = TruthTable(PODS)
    assert not table.is_complete()
    with pytest.raises(LookupError, match="no value"):
        table.get("x/a", "x/b")
    for pod in PODS:
        table.set_all_from(pod, True)
    assert table.is_complete()


def test_rows_are_sources_and_columns_destinations() -> None:
    table = TruthTable(PODS, default=True)
    table.set_all_to("x/a", False)  # nothing reaches x/a
    table.set_all_from("y/a", False)  # y/a reaches nothing
    table.set("y/a", "x/b", True)
    assert table.pretty() == (
        "-    x/a  x/b  y/a\n"
        "x/a  X    .    .\n"
        "x/b  X    .    .\n"
        "y/a  X    .    X"
    )


def test_compare_marks_disagreements_and_keeps_unknowns() -> None:
    expected = TruthTable(PODS, default=True)
    observed = TruthTable(PODS, default=True)
    observed.set("x/b", "x/a", False)
    partial = TruthTable(PODS)
    partial.set("x/a", "x/a", True)
    comparison = expected.compare(observed)
    assert comparison.get("x/b", "x/a") is False
    assert sum(not v for _, _, v in comparison.cells()) == 1
    assert expected.compare(partial).pretty().splitlines()[1] == "x/a  .    ?    ?"
    with pytest.raises(ValueError, match="different keys"):
        expected.compare(TruthTable(["x/a"], default=True))


def test_pod_strings_and_peers() -> None:
    pod = PodString("x/a")
    assert (pod.namespace, pod.pod_name) == ("x", "a")
    assert PodString.of("y", "b") == "y/b"
    for bad in ("x", "x/", "/a", "x/a/b"):
        with pytest.raises(ValueError, match="namespace/pod"):
            PodString(bad)
    assert Peer().matches("z/c")
    assert Peer(namespace="x").matches("x/b") and not Peer(namespace="x").matches("y/b")
    assert Peer(pod="b").matches("y/b") and not Peer(namespace="x", pod="b").matches("y/b")


def test_reachability_expectations_as_upstream_states_them() -> None:
    r = Reachability(["x/a", "x/b", "y/a", "y/b"])
    r.expect_peer(Peer(), Peer(namespace="x"), False)  # default-deny-ingress in x
    r.expect("x/b", "x/a", True)
    r.expect_all_egress("y/b", False)
    assert r.expected.pretty() == (
        "-    x/a  x/b  y/a  y/b\n"
        "x/a  X    X    .    .\n"
        "x/b  .    X    .    .\n"
        "y/a  X    X    .    .\n"
        "y/b  X    X    X    X"
    )
    r.allow_loopback()
    assert all(r.expected.get(p, p) for p in r.pods)
    r.expect_all_ingress("y/a", True)
    assert r.expected.get("y/b", "y/a") is True


def test_summary_ignores_loopback_and_reports_three_tables() -> None:
    r = Reachability(PODS)
    r.expect_all_ingress("x/a", False)
    with pytest.raises(IncompleteObservation):
        r.summary()
    for src in PODS:
        for dst in PODS:
            r.observe(src, dst, dst != "x/a" or src in ("x/a", "x/b"))  # x/b gets in
    summary = r.summary()
    assert (summary.correct, summary.wrong, summary.ignored) == (5, 1, 3)
    assert not summary.ok
    assert r.summary(ignore_loopback=False).wrong == 2
    report = r.report()
    assert report.startswith("reachability: correct 5, incorrect 1, ignored 3 (loopback)")
    assert [line for line in report.splitlines() if line.endswith(":")] == [
        "expected:", "observed:", "comparison:"]


def test_model_lays_out_upstream_pods() -> None:
    model = Model.from_pod_strings("x/a", "x/b", "y/a", ports=[80, 81],
                                   protocols=[Protocol.TCP, Protocol.UDP])
    assert model.pod_strings() == ("x/a", "x/b", "y/a")
    assert [n.name for n in model.namespaces] == ["x", "y", "z"]
    cluster = model.cluster()
    a = cluster.pod("x/a")
    assert a.labels == {"pod": "a"}
    assert a.named_port("serve-81-udp", Protocol.UDP) == 81
    assert a.named_port("serve-81-sctp", Protocol.SCTP) is None
    assert len({p.ips for p in cluster.pods}) == 3
    assert cluster.namespaces["z"].labels == {"ns": "z", NAMESPACE_NAME_LABEL: "z"}
    with pytest.raises(ValueError, match="repeated"):
        Model.from_pod_strings("x/a", "x/a")


def test_model_label_updates_make_a_new_model() -> None:
    model = Model.from_pod_strings("x/a", "y/a")
    updated = model.with_pod_labels("x/a", {"target": "isolated"}).with_namespace_labels(
        "y", {"ns2": "updated"})
    assert model.pod("x/a").labels == {"pod": "a"}
    cluster = updated.cluster()
    assert cluster.pod("x/a").labels == {"pod": "a", "target": "isolated"}
    assert cluster.namespaces["y"].labels["ns2"] == "updated"
    with pytest.raises(KeyError):
        model.with_pod_labels("x/b", {})


def test_model_manifests_load_as_files(tmp_path: Path) -> None:
    """What the lab would write (and kubectl would apply) loads into the same cluster."""
    model = Model.grid(namespaces=["x", "y"], pod_names=["a", "b"], nodes=["node-1", "node-2"])
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump_all(model.manifests()))
    loaded = load_cluster([path])
    assert loaded == model.cluster()
    assert [n.name for n in loaded.nodes] == ["node-1", "node-2"]
    x_b = loaded.pod("x/b")
    assert x_b.node_name == "node-2"
    assert x_b.ips == (ipaddress.IPv4Address("10.244.1.2"),)
    assert x_b.ips[0] in loaded.nodes[1].pod_cidrs[0]
    containers = {c["name"] for c in model.pod("y/a").manifest()["spec"]["containers"]}
    assert containers == {f"cont-{port}-{proto}" for port in (80, 81)
                          for proto in ("tcp", "udp", "sctp")}
