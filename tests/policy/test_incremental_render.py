"""An agent renders again on every change, keeping its pod selection and policy chains from the
last render (`ChainCache`): whatever the sequence of changes, each table it renders so is the
table a render from scratch gives."""

from __future__ import annotations

import dataclasses
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_engine_vs_oracle import clusters
from test_upstream_e2e import CASES, Scenario, observe_engine_matrix

from podnet.lab import Reachability
from podnet.model import Cluster, Protocol
from podnet.policy import Engine
from podnet.policy.nftables import ChainCache, NodePod, render
from podnet.policy.selection import PodSelection


class Agent:
    """What the agent keeps between renders for one node: the selection and the chains."""

    def __init__(self, node: int, log_group: int | None = None) -> None:
        self.node = node  # the node holds the pods at even (0) or odd (1) places
        self.log_group = log_group
        self.selection: PodSelection | None = None
        self.chains = ChainCache()
        self.reused = 0  # renders that had chains of the last one to reuse

    def render_and_compare(self, cluster: Cluster) -> None:
        local = [NodePod(p.key, f"pnv{i}", p.ips) for i, p in enumerate(cluster.pods)
                 if i % 2 == self.node and not p.host_network]
        previous = self.selection
        res = Engine(cluster, previous).resolution
        self.selection = res.selection
        self.reused += res.selection is previous and bool(self.chains.chains)
        incremental = render(res, local, log_group=self.log_group, cache=self.chains)
        assert incremental == render(Engine(cluster).resolution, local, log_group=self.log_group)


@st.composite
def steps(draw: st.DrawFn) -> list[Cluster]:
    """A cluster, then changes: policies dropped, kept, renamed onto each other's names, and
    now and then a pod's address changed (other pods: nothing compiled before holds)."""
    cluster = draw(clusters())
    out = [cluster]
    for _ in range(draw(st.integers(1, 6))):
        # Shuffled, some dropped, and named by their place: a name's content changes.
        kept = draw(st.permutations(cluster.policies))[:draw(st.integers(0, 5))]
        step = dataclasses.replace(cluster, policies=tuple(
            dataclasses.replace(p, name=f"p{i}") for i, p in enumerate(kept)))
        if draw(st.booleans()):  # the last pod (never in the host network) readdressed
            moved = dataclasses.replace(step.pods[-1], ips=(ipaddress.IPv4Address("10.244.3.3"),))
            step = dataclasses.replace(step, pods=(*step.pods[:-1], moved))
        out.append(step)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps(), st.sampled_from([None, 7]))
def test_a_sequence_of_changes_renders_as_from_scratch(clusters: list[Cluster],
                                                       log_group: int | None) -> None:
    agents = [Agent(0, log_group), Agent(1, log_group)]
    for cluster in clusters:
        for agent in agents:
            agent.render_and_compare(cluster)


def test_the_upstream_cases_played_in_a_row_render_as_from_scratch() -> None:
    """The 48 cases one after the other, each validation a change (policies created, updated,
    deleted, labels changed), with the same two agents throughout."""
    agents = [Agent(0, 3), Agent(1, 3)]

    def observe(cluster: Cluster, r: Reachability, port: int, protocol: Protocol) -> None:
        for agent in agents:
            agent.render_and_compare(cluster)
        observe_engine_matrix(cluster, r, port, protocol)

    for upstream in CASES:
        upstream.play(Scenario(observe))
    assert all(agent.reused for agent in agents)  # the cache was used, not only emptied
