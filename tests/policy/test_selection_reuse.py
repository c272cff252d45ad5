"""An agent keeps the selectors it evaluated while only policies change: an engine given an
earlier cluster's `PodSelection` answers exactly as a fresh one, and takes it only when the
pods and namespaces are the same."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_vs_oracle import clusters

from podnet.model import Cluster, Protocol
from podnet.policy import Engine, Probe

PROBES = [Probe(80), Probe(81, Protocol.UDP), Probe(82, Protocol.SCTP)]


def answers(engine: Engine) -> list[dict[str, dict[str, bool]]]:
    return [m.allowed for m in engine.matrix(PROBES)]


@settings(max_examples=100, deadline=None)
@given(clusters(), st.data())
def test_a_reused_selection_answers_as_a_fresh_one(cluster: Cluster, data: st.DataObject) -> None:
    earlier = Engine(cluster).resolution.selection
    kept = data.draw(st.lists(st.sampled_from(cluster.policies), unique_by=lambda p: p.key)
                     if cluster.policies else st.just([]))
    changed = dataclasses.replace(cluster, policies=tuple(kept))
    reused = Engine(changed, earlier)
    assert reused.resolution.selection is earlier
    assert answers(reused) == answers(Engine(changed))


@given(clusters(), clusters())
def test_a_selection_of_other_pods_is_not_reused(first: Cluster, second: Cluster) -> None:
    earlier = Engine(first).resolution.selection
    engine = Engine(second, earlier)
    same = tuple(first.pods) == tuple(second.pods) and first.namespaces == second.namespaces
    assert (engine.resolution.selection is earlier) == same
    assert answers(engine) == answers(Engine(second))
