"""The lab's vocabulary: topologies of pods, truth tables, expected and observed reachability.

Pure: these describe scenarios and compare outcomes; the parts of the lab that create
namespaces and send packets build on them.
"""

from podnet.lab.reachability import IncompleteObservation, Peer, PodString, Reachability, Summary
from podnet.lab.topology import (
    NAMESPACES,
    PORTS,
    PROTOCOLS,
    Container,
    Model,
    ModelNamespace,
    ModelPod,
)
from podnet.lab.truthtable import TruthTable, UnknownKey

__all__ = [
    "NAMESPACES",
    "PORTS",
    "PROTOCOLS",
    "Container",
    "IncompleteObservation",
    "Model",
    "ModelNamespace",
    "ModelPod",
    "Peer",
    "PodString",
    "Reachability",
    "Summary",
    "TruthTable",
    "UnknownKey",
]
