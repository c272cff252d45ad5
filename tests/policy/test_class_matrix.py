"""`Engine.class_matrix`: the matrix of pods, one entry per pair of pod classes. On every
upstream e2e case and on generated clusters, each pod pair's verdict is its classes' entry."""

from __future__ import annotations

import pytest
import test_upstream_e2e as upstream
from hypothesis import HealthCheck, given, settings
from test_engine_vs_oracle import clusters

from podnet.lab import Reachability
from podnet.model import Cluster, Protocol
from podnet.policy import Engine, Probe

PROBES = [Probe(80), Probe(81, Protocol.UDP), Probe(53, Protocol.SCTP)]


def assert_pods_agree_with_classes(cluster: Cluster) -> None:
    engine = Engine(cluster)
    res = engine.resolution
    keys = [p.key for p in cluster.pods]
    for probe, matrix in zip(PROBES, engine.matrix(PROBES), strict=True):
        by_class = engine.class_matrix(probe)
        assert by_class.shape == (res.class_count(), res.class_count())
        for i, src in enumerate(keys):
            for j, dst in enumerate(keys):
                if i != j:
                    assert matrix.allowed[src][dst] == by_class[res.class_of[i], res.class_of[j]]


@pytest.mark.parametrize("case", upstream.CASES, ids=lambda c: c.name)
def test_class_matrix_agrees_with_the_pod_matrix_on_upstream_cases(case: upstream.Case) -> None:
    def judge(cluster: Cluster, r: Reachability, port: int, protocol: Protocol) -> None:
        upstream.observe_engine_matrix(cluster, r, port, protocol)
        assert_pods_agree_with_classes(cluster)

    case.play(upstream.Scenario(judge))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_class_matrix_agrees_with_the_pod_matrix_on_generated_clusters(cluster: Cluster) -> None:
    assert_pods_agree_with_classes(cluster)
