"""`podnet lab verify`: a probe the engine allows that met silence is asked once more before it
counts, so that a lost probe is not a mismatch while a drop still is.

A 2-node lab without policies: x/a (node-1) reaches y/b (node-2). A table of the test's own in
node-2 drops x/a's first SYN to y/b only (an nft quota of one SYN), as a queue overflowing on a
loaded machine would lose it; then every such SYN.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel import (
    LAB_TEST,
    lab_manifest,
    lab_name,
    namespace_manifests,
    pod_manifest,
    podnet,
    running_lab,
)

from podnet.lab.pods import running_pods
from podnet.lab.state import LabPaths

pytestmark = LAB_TEST


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPaths]:
    name = lab_name("ver")
    manifests = [lab_manifest(name, ("node-1", "node-2")), *namespace_manifests("xy"),
                 pod_manifest("x/a", "node-1"), pod_manifest("y/b", "node-2")]
    with running_lab(name, manifests, tmp_path_factory.mktemp("verify")) as paths:
        yield paths


def drop_syns(lab: LabPaths, tmp_path: Path, match: str) -> None:
    """Replace the test's table in node-2 with one dropping x/a's SYNs to y/b that `match`."""
    pods = {p.key: p for p in running_pods(lab)}
    rules = tmp_path / "drop.nft"
    rules.write_text(
        "table ip pntest {}\ndelete table ip pntest\n"
        "table ip pntest {\n  chain forward {\n    type filter hook forward priority -10\n"
        f"    ip saddr {pods['x/a'].ip} ip daddr {pods['y/b'].ip} tcp dport 80 "
        f"tcp flags & (syn | ack) == syn {match} drop\n  }}\n}}\n")
    subprocess.run(["nsenter", f"--net={lab.netns_path(lab.node('node-2'))}", "nft", "-f",
                    str(rules)], check=True)


def verify(lab: LabPaths) -> tuple[int, dict[str, object]]:
    # 0.5 s: shorter than TCP's first SYN retransmission (1 s), so a dropped SYN fails a probe.
    done = podnet("lab", "verify", "--lab", lab.name, "--port", "80", "--timeout", "0.5",
                  "-o", "json", check=False)
    (result,) = json.loads(done.stdout)["results"]
    return done.returncode, result


def test_a_lost_probe_is_asked_again_and_agrees(lab: LabPaths, tmp_path: Path) -> None:
    code, result = verify(lab)
    assert (code, result["mismatches"]) == (0, [])  # no policy: every pod reaches every pod
    # `quota until 100 bytes`: the first SYN (60 bytes) is under it, the second is not.
    drop_syns(lab, tmp_path, "quota until 100 bytes")
    code, result = verify(lab)
    assert (code, result["mismatches"], result["retried"]) == (0, [], 1)
    assert result["retriedFor"] == {"timed out connecting (0.5s)": 1}
    assert result["observed"]["x/a"]["y/b"] is True


def test_a_probe_dropped_every_time_is_a_mismatch(lab: LabPaths, tmp_path: Path) -> None:
    drop_syns(lab, tmp_path, "")
    code, result = verify(lab)
    assert (code, result["mismatches"], result["retried"]) == (
        1, [{"from": "x/a", "to": "y/b"}], 1)
    text = podnet("lab", "verify", "--lab", lab.name, "--port", "80", check=False).stdout
    assert ("(1 allowed probes met silence and were asked again: 1 timed out connecting (1s))"
            in text)
    assert "MISMATCH x/a -> y/b: engine says allowed, kernel dropped it" in text
