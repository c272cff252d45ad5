"""The benchmark's generated clusters are valid input of the requested size."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from podnet.model import Direction, load_cluster

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_generate", BENCH / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


def test_generated_cluster_loads_with_requested_counts(tmp_path: Path) -> None:
    generate = load_generator()
    generate.write(generate.generate(pods=230, policies=45, seed=7), tmp_path)
    cluster = load_cluster([tmp_path])
    assert len(cluster.pods) == 230
    assert len(cluster.policies) == 45
    assert len({ip for pod in cluster.pods for ip in pod.ips}) == 230
    assert all(pod.ports and {"app", "tier", "version"} <= pod.labels.keys()
               for pod in cluster.pods)
    assert {ns.labels["team"] for ns in cluster.namespaces.values()}
    assert any(Direction.EGRESS in p.policy_types for p in cluster.policies)
    assert any(port.end_port for p in cluster.policies for r in p.ingress for port in r.ports)
    assert any(peer.ip_block and peer.ip_block.except_
               for p in cluster.policies for r in p.egress for peer in r.peers)


def test_same_seed_same_cluster_other_seed_other_cluster() -> None:
    generate = load_generator()
    first = generate.generate(pods=60, policies=12, seed=3)
    assert first == generate.generate(pods=60, policies=12, seed=3)
    assert first != generate.generate(pods=60, policies=12, seed=4)
