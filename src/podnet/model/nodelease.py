"""A node's liveness: the `Lease` its agent renews, and whether that makes the node Ready.

As Kubernetes' kube-node-lease: each agent holds a `coordination.k8s.io/v1` Lease named after
its node in the `podnet-node-lease` namespace and renews it (`spec.renewTime`) a few times per
`leaseDurationSeconds`. A node is Ready while its lease was renewed less than
`leaseDurationSeconds` ago. The agent creates the object under a store lease of the same TTL,
so the store deletes it once renewals stop; readers still judge by `renewTime`, because the
SQLite store ends expired leases only at its next write.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

KIND = "Lease"
NAMESPACE = "podnet-node-lease"
API_VERSION = "coordination.k8s.io/v1"
DEFAULT_DURATION = 10  # seconds; renewed every third of it (kubelet: 40 s, every quarter)


@dataclass(frozen=True)
class NodeLease:
    """The liveness object of one node: who holds it, for how long, when it was last renewed."""

    node: str
    duration: int  # leaseDurationSeconds
    acquire_time: datetime.datetime
    renew_time: datetime.datetime

    def renewed(self, now: datetime.datetime) -> NodeLease:
        return replace(self, renew_time=now)

    def body(self) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": self.node, "namespace": NAMESPACE},
                "spec": {"holderIdentity": self.node, "leaseDurationSeconds": self.duration,
                         "acquireTime": micro_time(self.acquire_time),
                         "renewTime": micro_time(self.renew_time)}}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> NodeLease:
        spec = body["spec"]
        return cls(str(spec["holderIdentity"]), int(spec["leaseDurationSeconds"]),
                   parse_time(spec["acquireTime"]), parse_time(spec["renewTime"]))


@dataclass(frozen=True)
class Readiness:
    """What a node's lease says about it, as the `Ready` condition of its Node status."""

    ready: bool
    reason: str
    message: str
    last_renewal: datetime.datetime | None
    since_renewal: float | None  # seconds from the last renewal to the time judged at

    @property
    def status(self) -> str:
        return status_word(self.ready)

    def condition(self) -> dict[str, Any]:
        """A Kubernetes NodeCondition: status Unknown, as for a kubelet that stopped posting."""
        condition = {"type": "Ready", "status": "True" if self.ready else "Unknown",
                     "reason": self.reason, "message": self.message}
        if self.last_renewal is not None:
            condition["lastHeartbeatTime"] = micro_time(self.last_renewal)
        return condition


def status_word(ready: bool) -> str:
    """As kubectl's STATUS column shows a node's Ready condition."""
    return "Ready" if ready else "NotReady"


def readiness(lease: NodeLease | None, now: datetime.datetime) -> Readiness:
    """Ready while the lease was renewed within its duration; else why not."""
    if lease is None:
        return Readiness(False, "NodeLeaseMissing", "no agent holds this node's lease (not "
                         "started, stopped cleanly, or its lease expired)", None, None)
    age = (now - lease.renew_time).total_seconds()
    if age <= lease.duration:
        return Readiness(True, "AgentRenewingLease", "the podnet agent renews its node lease",
                         lease.renew_time, age)
    return Readiness(False, "NodeStatusUnknown", f"the podnet agent stopped renewing its node "
                     f"lease ({lease.duration} s)", lease.renew_time, age)


def micro_time(when: datetime.datetime) -> str:
    """Kubernetes' MicroTime: RFC 3339 in UTC with microseconds."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(datetime.UTC)
