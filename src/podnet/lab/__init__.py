"""The lab: an emulated cluster in network namespaces, and the vocabulary it is judged in.

What this package exports is pure: topologies of pods (`Model`), truth tables, expected and
observed reachability. The modules that create namespaces and send packets (`cluster`,
`underlay`, `kubelet`, `probeserver`, `prober`, `verify`) build on them and are imported
by name where they are used.
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
