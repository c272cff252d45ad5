"""`podnet policy ...` and `podnet validate` as a user runs them: output shapes, exit codes."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from podnet.cli.main import main

DEMO = Path(__file__).parents[2] / "examples" / "demo"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def demo_pods(capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, out, _ = run(capsys, "policy", "matrix", "-f", str(DEMO), "-o", "json")
    assert code == 0
    pods: list[str] = json.loads(out)["pods"]
    return pods


def pod(pods: list[str], prefix: str) -> str:
    return next(p for p in pods if p.startswith(prefix))


def test_matrix_json_has_one_result_per_probe_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "matrix", "-f", str(DEMO), "--port", "5432,53",
                       "--protocol", "UDP,TCP", "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert [(r["port"], r["protocol"]) for r in doc["results"]] == [
        (5432, "UDP"), (5432, "TCP"), (53, "UDP"), (53, "TCP")]
    cart = pod(doc["pods"], "shop/cart-")
    tcp5432 = doc["results"][1]
    assert tcp5432["allowed"][cart]["data/postgres-0"] is True
    assert tcp5432["allowed"]["monitoring/prometheus"]["data/postgres-0"] is False
    # prometheus is not isolated for egress; postgres' ingress is what denies it
    assert tcp5432["egress"]["monitoring/prometheus"]["data/postgres-0"] is True
    assert tcp5432["ingress"]["monitoring/prometheus"]["data/postgres-0"] is False


def test_matrix_table_is_a_truth_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "matrix", "-f", str(DEMO), "--port", "5432")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("TCP/5432")
    postgres_row = next(line for line in lines if line.startswith("data/postgres-0"))
    assert postgres_row.split()[1:] == ["X"] * 7 + ["."]


def test_explain_names_policies_and_rules(capsys: pytest.CaptureFixture[str]) -> None:
    pods = demo_pods(capsys)
    frontend, cart = pod(pods, "web/frontend-"), pod(pods, "shop/cart-")
    code, out, _ = run(capsys, "policy", "explain", "-f", str(DEMO), "--from", frontend,
                       "--to", cart, "--port", "8000", "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["allowed"] is True
    assert doc["egress"]["allowedBy"] == [{"policy": "web/frontend", "rule": 0}]
    assert doc["ingress"]["allowedBy"] == [{"policy": "shop/api", "rule": 0}]
    code, out, _ = run(capsys, "policy", "explain", "-f", str(DEMO), "--from", frontend,
                       "--to", "data/postgres-0", "--port", "5432")
    assert code == 0
    assert ": DENIED" in out.splitlines()[0]
    assert "isolated for ingress by data/default-deny" in out


def test_explain_to_an_external_address(capsys: pytest.CaptureFixture[str]) -> None:
    pods = demo_pods(capsys)
    catalog = pod(pods, "shop/catalog-")
    verdicts = {}
    for address in ("203.0.113.10", "203.0.113.66"):
        code, out, _ = run(capsys, "policy", "explain", "-f", str(DEMO), "--from", catalog,
                           "--to", address, "--port", "443", "-o", "json")
        assert code == 0
        verdicts[address] = json.loads(out)["allowed"]
    assert verdicts == {"203.0.113.10": True, "203.0.113.66": False}


def test_connectivity_formats(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "connectivity", "-f", str(DEMO), "-o", "json")
    assert code == 0
    rows = {(c["from"]["description"], c["to"]["description"]): c["allowed"]
            for c in json.loads(out)["connections"]}
    assert rows[("shop/[app=catalog]", "203.0.113.0/24 except 203.0.113.66/32")] == {
        "TCP": ["443"]}
    assert rows[("monitoring/*", "data/*")] == {"TCP": ["9187"]}
    code, out, _ = run(capsys, "policy", "connectivity", "-f", str(DEMO), "-o", "csv")
    assert out.splitlines()[0] == "from,to,allowed"
    assert "web/*,shop/*,TCP 8000" in out.splitlines()


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz (dot) is not installed")
def test_connectivity_dot_renders_with_graphviz(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "connectivity", "-f", str(DEMO), "-o", "dot")
    assert code == 0
    svg = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, text=True,
                         check=True).stdout
    assert "namespace shop" in svg and "TCP 443" in svg


def test_bad_input_is_one_line_per_problem_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: NetworkPolicy\nmetadata: {name: p, namespace: x}\n"
                   "spec: {ingress: [{ports: [{port: 0}, {port: x--y}]}]}\n")
    code, out, err = run(capsys, "validate", "-f", str(bad))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"{bad}: NetworkPolicy x/p: spec.ingress[0].ports[0].port: Invalid value: 0: "
        "must be between 1 and 65535, inclusive",
        f"{bad}: NetworkPolicy x/p: spec.ingress[0].ports[1].port: Invalid value: 'x--y': "
        "must not contain consecutive hyphens",
    ]


def test_unknown_endpoint_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "policy", "explain", "-f", str(DEMO), "--from", "web/nope",
                       "--to", "data/postgres-0")
    assert code == 1
    assert "'web/nope' is neither a pod" in err
    with pytest.raises(SystemExit) as exit_:
        main(["policy", "matrix", "-f", str(DEMO), "--port", "99999"])
    assert exit_.value.code == 2


def test_unknown_kinds_are_skipped_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "svc.yaml").write_text("kind: Service\nmetadata: {name: s, namespace: x}\n")
    code, out, _ = run(capsys, "validate", "-f", str(tmp_path))
    assert code == 0
    assert "0 pods" in out
    assert "Service x/s: skipped, podnet does not use this kind" in caplog.text
