"""Expected and observed reachability between pods, as the Kubernetes e2e suite states it.

Modelled on test/e2e/network/netpol/reachability.go: a test starts from "everything is
allowed", then says what its policies block (`expect_all_ingress(x/a, False)`), records what
probes (or the engine) observed, and compares. Loopback is ignored by default, as upstream
does: whether a pod may always reach itself is not defined by NetworkPolicy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from podnet.lab.truthtable import TruthTable


class PodString(str):
    """A pod named `namespace/name`, as "x/a"."""

    __slots__ = ()

    def __new__(cls, value: str) -> PodString:
        namespace, slash, name = value.partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise ValueError(f"expected namespace/pod, found {value!r}")
        return super().__new__(cls, value)

    @classmethod
    def of(cls, namespace: str, name: str) -> PodString:
        return cls(f"{namespace}/{name}")

    @property
    def namespace(self) -> str:
        return self.partition("/")[0]

    @property
    def pod_name(self) -> str:
        return self.partition("/")[2]


@dataclass(frozen=True)
class Peer:
    """Pods by namespace and/or name; an empty field matches anything."""

    namespace: str = ""
    pod: str = ""

    def matches(self, pod: str) -> bool:
        p = PodString(pod)
        return (not self.namespace or self.namespace == p.namespace) and (
            not self.pod or self.pod == p.pod_name
        )


@dataclass(frozen=True)
class Summary:
    """How many pairs agree and disagree; `comparison` is True where they agree."""

    correct: int
    wrong: int
    ignored: int
    comparison: TruthTable

    @property
    def ok(self) -> bool:
        return self.wrong == 0


class IncompleteObservation(ValueError):
    """A summary asked for before every pair was observed."""


class Reachability:
    """Expected (default: all allowed) and Observed (default: unknown) tables over some pods."""

    def __init__(self, pods: Iterable[str], default: bool = True) -> None:
        self.pods: tuple[PodString, ...] = tuple(PodString(p) for p in pods)
        self.expected = TruthTable(self.pods, default=default)
        self.observed = TruthTable(self.pods)

    def expect(self, from_: str, to: str, connected: bool) -> None:
        self.expected.set(from_, to, connected)

    def expect_peer(self, from_: Peer, to: Peer, connected: bool) -> None:
        """Every pair whose source matches `from_` and destination matches `to`."""
        for src in self.pods:
            if from_.matches(src):
                for dst in self.pods:
                    if to.matches(dst):
                        self.expected.set(src, dst, connected)

    def expect_all_ingress(self, pod: str, connected: bool) -> None:
        """Everything into `pod` (a column)."""
        self.expected.set_all_to(pod, connected)

    def expect_all_egress(self, pod: str, connected: bool) -> None:
        """Everything out of `pod` (a row)."""
        self.expected.set_all_from(pod, connected)

    def allow_loopback(self) -> None:
        """Expect each pod to reach itself; call it last, loopback follows no policy."""
        for pod in self.pods:
            self.expected.set(pod, pod, True)

    def observe(self, from_: str, to: str, connected: bool) -> None:
        self.observed.set(from_, to, connected)

    def summary(self, ignore_loopback: bool = True) -> Summary:
        comparison = self.expected.compare(self.observed)
        if not comparison.is_complete():
            raise IncompleteObservation(
                "observations not complete:\n" + self.observed.pretty("  ")
            )
        correct = wrong = ignored = 0
        for from_, to, agree in comparison.cells():
            if ignore_loopback and from_ == to:
                ignored += 1
            elif agree:
                correct += 1
            else:
                wrong += 1
        return Summary(correct, wrong, ignored, comparison)

    def report(self, ignore_loopback: bool = True) -> str:
        """The three tables, as upstream prints them when a case fails."""
        summary = self.summary(ignore_loopback)
        lines = [f"reachability: correct {summary.correct}, incorrect {summary.wrong}"
                 + (f", ignored {summary.ignored} (loopback)" if summary.ignored else "")]
        for title, table in (("expected", self.expected), ("observed", self.observed),
                             ("comparison", summary.comparison)):
            lines += ["", f"{title}:", table.pretty("  ")]
        return "\n".join(lines)
