"""The one definition of NetworkPolicy semantics: verdicts with reasons, matrices, connectivity."""

from podnet.policy.connectivity import Connection, Connectivity, Group, Probe, ProbeMatrix
from podnet.policy.engine import Engine, UnknownEndpoint
from podnet.policy.portset import PortSet
from podnet.policy.resolve import Resolution, ResolvedRule, RuleRef
from podnet.policy.verdict import DirectionVerdict, Endpoint, Verdict

__all__ = [
    "Connection",
    "Connectivity",
    "DirectionVerdict",
    "Endpoint",
    "Engine",
    "Group",
    "PortSet",
    "Probe",
    "ProbeMatrix",
    "Resolution",
    "ResolvedRule",
    "RuleRef",
    "UnknownEndpoint",
    "Verdict",
]
