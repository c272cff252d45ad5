"""The agent's Prometheus metrics: what it did (CNI, IPAM, nftables, policy verdicts), served.

Every agent counts from its start whether or not it serves: updating a counter costs about a
microsecond, against milliseconds for the CNI request or the table swap it counts
(bench/metrics.py), so there is no "off" switch to keep in step with the instrumentation.
`--metrics-address` only decides whether the HTTP endpoint runs. The metrics live on a
registry of their own, one per agent, so that tests can run several agents' parts in one
process; docs/metrics.md lists each metric. The IPAM gauges are read from the store when
scraped, so they are right even for addresses another process released (`podnet ipam`).
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from podnet import ipam
from podnet.store import StoreError

if TYPE_CHECKING:  # the flow log counts with these metrics
    from podnet.agent.flows import Decision

log = logging.getLogger(__name__)

Json = dict[str, Any]
# CNI requests take 1 ms (STATUS) to 100 ms (ADD under load); table swaps 5 ms to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DIRECTIONS = ("ingress", "egress")
RENEWAL_RESULTS = ("ok", "failed")


def table_size(document: Json) -> tuple[int, int]:
    """The rules, and the elements of the named sets and verdict maps, of an nftables document
    (a rendered table or `nft -j list table`)."""
    rules = elements = 0
    for obj in document["nftables"]:
        if "rule" in obj:
            rules += 1
        for kind in ("set", "map"):
            if kind in obj:
                elements += len(obj[kind].get("elem", ()))
    return rules, elements


def verdict_labels(decision: Decision) -> tuple[str, str, str]:
    """(verdict, direction, policy) of a logged decision: the allowing policy, or for a default
    deny every policy that isolates the pod, joined by "," (one series per such set, a handful
    per node); anti-spoofing drops have no direction and no policy."""
    return decision.verdict, decision.direction, ",".join(decision.policies)


class _IpamUsage(Collector):
    """Used and free pod addresses of the node's subnet, read from the store at each scrape."""

    def __init__(self, allocator: ipam.IPAllocator) -> None:
        self.allocator = allocator

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["subnet"]
        subnet = [str(self.allocator.range.subnet)]
        try:
            used = len(self.allocator.reservations())
        except StoreError as err:  # the scrape goes on without them: a gap, not a false zero
            log.warning("metrics: cannot read the node's reservations: %s", err)
            return
        free = len(self.allocator.range) - used
        for name, value, what in (("used", used, "allocated to pods"),
                                  ("free", free, "free for pods")):
            family = GaugeMetricFamily(f"podnet_ipam_addresses_{name}",
                                       f"Pod addresses of the node's subnet {what}",
                                       labels=labels)
            family.add_metric(subnet, value)
            yield family


class Metrics:
    """One agent's metrics, on their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # the agent's CPU seconds, memory, open files
        self.cni_requests = Counter(
            "podnet_cni_requests_total", "CNI requests served, by command and result "
            "(ok, or the CNI error's name)", ["command", "result"], registry=r)
        self.cni_duration = Histogram(
            "podnet_cni_request_duration_seconds", "Time to serve a CNI request, by command and "
            "result", ["command", "result"], buckets=LATENCY_BUCKETS, registry=r)
        self.allocations = Counter(
            "podnet_ipam_allocations_total", "Pod addresses handed out by CNI ADD", registry=r)
        self.releases = Counter(
            "podnet_ipam_releases_total", "Pod addresses released, by reason: del (CNI DEL), "
            "gc (CNI GC), rollback (a failed ADD)", ["reason"], registry=r)
        self.apply_duration = Histogram(
            "podnet_dataplane_apply_duration_seconds", "Time to program the node's nftables "
            "table (one transaction: the difference from the last table, or the whole table)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.apply_failures = Counter(
            "podnet_dataplane_apply_failures_total", "Table changes the kernel refused",
            registry=r)
        self.rules = Gauge(
            "podnet_dataplane_rules", "Rules in the node's applied nftables table", registry=r)
        self.set_elements = Gauge(
            "podnet_dataplane_set_elements", "Elements of the named sets and verdict maps in "
            "the node's applied nftables table", registry=r)
        self.policies = Gauge(
            "podnet_policies", "NetworkPolicies in the cluster, as the agent's copy of the "
            "store has them", registry=r)
        self.node_policies = Gauge(
            "podnet_policy_node_policies", "NetworkPolicies that select at least one pod on "
            "this node (compiled into its table)", registry=r)
        self.endpoints = Gauge(
            "podnet_policy_endpoints", "Pods wired on this node that the cluster knows",
            registry=r)
        self.selected = Gauge(
            "podnet_policy_selected_endpoints", "Pods on this node that a policy isolates, by "
            "direction", ["direction"], registry=r)
        self.verdicts = Counter(
            "podnet_policy_verdicts_total", "New connections (their first packet; a dropped "
            "packet sent again counts again) allowed or denied by policy on this node, by "
            "direction and deciding policy; only with the flow log",
            ["verdict", "direction", "policy"], registry=r)
        self.flow_log_overruns = Counter(
            "podnet_flow_log_overruns_total", "Times the kernel reported dropping flow log "
            "messages (NFLOG) the agent read too slowly", registry=r)
        self.flow_log_lost = Counter(
            "podnet_flow_log_lost_total", "Policy decisions the kernel dropped from the flow "
            "log because the agent read too slowly: not in the log nor in the verdicts",
            registry=r)
        self.lease_renewals = Counter(
            "podnet_node_lease_renewals_total", "Renewals of the node's liveness Lease, by "
            "result: ok, or failed (the store did not answer or refused; tried again at the "
            "next interval)", ["result"], registry=r)
        self.lease_last_renewal = Gauge(
            "podnet_node_lease_last_renewal_timestamp_seconds", "When the agent last renewed "
            "its node's Lease (spec.renewTime), in seconds since the epoch; 0 before the first "
            "renewal", registry=r)
        for direction in DIRECTIONS:  # present from the start, as zeros
            self.selected.labels(direction)
        for result in RENEWAL_RESULTS:
            self.lease_renewals.labels(result)

    def watch_ipam(self, allocator: ipam.IPAllocator) -> None:
        self.registry.register(_IpamUsage(allocator))

    def cni_request(self, command: str, result: str, seconds: float) -> None:
        self.cni_requests.labels(command, result).inc()
        self.cni_duration.labels(command, result).observe(seconds)

    def released(self, reason: str, addresses: int) -> None:
        self.releases.labels(reason).inc(addresses)

    @contextmanager
    def applying(self, document: Json) -> Iterator[None]:
        """Around programming `document` into the kernel: its time, or a failure."""
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.apply_failures.inc()
            raise
        self.apply_duration.observe(time.perf_counter() - started)
        rules, elements = table_size(document)
        self.rules.set(rules)
        self.set_elements.set(elements)

    def policy_state(self, endpoints: int, selected: dict[str, int],
                     node_policies: int) -> None:
        self.endpoints.set(endpoints)
        self.node_policies.set(node_policies)
        for direction in DIRECTIONS:
            self.selected.labels(direction).set(selected.get(direction, 0))

    def lease_renewed(self, when: datetime.datetime | None) -> None:
        """A renewal of the node lease, done at `when`, or failed (None)."""
        if when is None:
            self.lease_renewals.labels("failed").inc()
            return
        self.lease_renewals.labels("ok").inc()
        self.lease_last_renewal.set(when.timestamp())

    def decided(self, decisions: Iterable[Decision]) -> None:
        for decision in decisions:
            self.verdicts.labels(*verdict_labels(decision)).inc()

    def text(self) -> str:
        """The exposition, as a scrape returns it."""
        return prometheus_client.generate_latest(self.registry).decode()
