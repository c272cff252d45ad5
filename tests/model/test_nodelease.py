"""Readiness from a node's Lease: Ready within its duration, Unknown after, or without one."""

import datetime

import pytest

from podnet.model.nodelease import NodeLease, readiness

RENEWED = datetime.datetime(2026, 11, 26, 12, 0, 0, 250000, tzinfo=datetime.UTC)
LEASE = NodeLease("node-1", 10, RENEWED - datetime.timedelta(minutes=5), RENEWED)


def test_the_lease_object_round_trips_as_a_kubernetes_lease() -> None:
    body = LEASE.body()
    assert body["apiVersion"] == "coordination.k8s.io/v1"
    assert body["metadata"] == {"name": "node-1", "namespace": "podnet-node-lease"}
    assert body["spec"]["renewTime"] == "2026-11-26T12:00:00.250000Z"
    assert NodeLease.from_body(body) == LEASE


@pytest.mark.parametrize(("seconds", "status", "reason"), [
    (0, "True", "AgentRenewingLease"),
    (10, "True", "AgentRenewingLease"),
    (10.5, "Unknown", "NodeStatusUnknown"),
], ids=["just renewed", "at its duration", "past its duration"])
def test_a_node_is_ready_while_its_lease_is_renewed_within_its_duration(
        seconds: float, status: str, reason: str) -> None:
    now = RENEWED + datetime.timedelta(seconds=seconds)
    judged = readiness(LEASE, now)
    assert judged.since_renewal == seconds
    assert judged.status == ("Ready" if status == "True" else "NotReady")
    condition = judged.condition()
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Ready", status, reason)
    assert condition["lastHeartbeatTime"] == "2026-11-26T12:00:00.250000Z"


def test_a_node_without_a_lease_is_not_ready_and_has_no_heartbeat() -> None:
    judged = readiness(None, RENEWED)
    assert (judged.status, judged.since_renewal) == ("NotReady", None)
    condition = judged.condition()
    assert condition["status"] == "Unknown" and condition["reason"] == "NodeLeaseMissing"
    assert "lastHeartbeatTime" not in condition
