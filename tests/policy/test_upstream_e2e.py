"""The 48 cases of the Kubernetes NetworkPolicy e2e suite, played against the engine and the oracle.

Each case is upstream's `ginkgo.It` of test/e2e/network/netpol/network_policy.go, step by step:
the same minimal topology, the same policies (built as upstream's policies.go builds them, then
defaulted and validated by podnet.model as the API server would), the same updates, and the
same expected Reachability at every validation, so the final state is checked too. Observed
tables come from the engine's matrix, connectivity or verdicts, or from the oracle; the diagonal
(loopback) is ignored, as upstream ignores it. A mismatch prints the three truth tables.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import oracle
import pytest

from podnet.lab import Model, Peer, Reachability
from podnet.model import NAMESPACE_NAME_LABEL, Cluster, Protocol
from podnet.policy import Engine, Probe

TCP, UDP, SCTP = Protocol.TCP, Protocol.UDP, Protocol.SCTP
NS = NAMESPACE_NAME_LABEL
Obj = dict[str, Any]
SetFunc = Callable[[Obj], None]

# --- policy builders, in the style of upstream's policies.go -----------------------------


def gen_policy(name: str, pod_selector: Obj, *options: SetFunc) -> Obj:
    """GenNetworkPolicyWithNameAndPodSelector."""
    policy: Obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": name}, "spec": {"podSelector": pod_selector}}
    for option in options:
        option(policy)
    return policy


def gen_policy_match_label(name: str, labels: dict[str, str], *options: SetFunc) -> Obj:
    """GenNetworkPolicyWithNameAndPodMatchLabel."""
    return gen_policy(name, {"matchLabels": labels}, *options)


def ingress_rules(*rules: Obj) -> SetFunc:
    """SetSpecIngressRules: the first call adds Ingress to policyTypes."""
    return functools.partial(_add_rules, "ingress", "Ingress", rules)


def egress_rules(*rules: Obj) -> SetFunc:
    """SetSpecEgressRules: the first call adds Egress to policyTypes."""
    return functools.partial(_add_rules, "egress", "Egress", rules)


def _add_rules(key: str, policy_type: str, rules: Sequence[Obj], policy: Obj) -> None:
    spec = policy["spec"]
    if key not in spec:
        spec[key] = []
        spec.setdefault("policyTypes", []).append(policy_type)
    spec[key] += rules


def policy_types(*types: str) -> SetFunc:
    def set_types(policy: Obj) -> None:
        policy["spec"]["policyTypes"] = list(types)
    return set_types


def rule(*peers: Obj, ports: Sequence[Obj] = (), peers_key: str = "from") -> Obj:
    """An ingress rule (`from`), or an egress rule with peers_key="to"."""
    result: Obj = {}
    if peers:
        result[peers_key] = list(peers)
    if ports:
        result["ports"] = list(ports)
    return result


def egress_rule(*peers: Obj, ports: Sequence[Obj] = ()) -> Obj:
    return rule(*peers, ports=ports, peers_key="to")


def peer(pods: Obj | None = None, namespaces: Obj | None = None) -> Obj:
    result: Obj = {}
    if pods is not None:
        result["podSelector"] = pods
    if namespaces is not None:
        result["namespaceSelector"] = namespaces
    return result


def ip_block(cidr: str, *excepts: str) -> Obj:
    block: Obj = {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return {"ipBlock": block}


def labels(**values: str) -> Obj:
    return {"matchLabels": values}


def ns_named(name: str) -> Obj:
    return {"matchLabels": {NS: name}}


def expression(key: str, operator: str, *values: str) -> Obj:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


def port(number_or_name: int | str, protocol: Protocol | None = None) -> Obj:
    result: Obj = {"port": number_or_name}
    if protocol is not None:
        result["protocol"] = str(protocol)
    return result


def large_cidr(ip: str) -> str:
    """makeLargeCIDRForIP: the /4 around an address."""
    return str(ipaddress.ip_network(f"{ip}/4", strict=False))


def host_cidr(ip: str) -> str:
    return f"{ip}/{ipaddress.ip_address(ip).max_prefixlen}"


# --- playing a case ----------------------------------------------------------------------

Observe = Callable[[Cluster, Reachability, int, Protocol], None]


class Scenario:
    """The state of a case being played (pods, labels, policies) and the judge that observes."""

    def __init__(self, observe: Observe) -> None:
        self._observe = observe
        self.model: Model | None = None
        self.policies: dict[tuple[str, str], Obj] = {}
        self.validations = 0

    def initialize(self, protocols: Sequence[Protocol], ports: Sequence[int], *pods: str) -> None:
        """initializeResources: only the protocols and ports the case serves."""
        self.model = Model.from_pod_strings(*pods, ports=ports, protocols=protocols)

    @property
    def _model(self) -> Model:
        assert self.model is not None, "initialize() first"
        return self.model

    def create(self, policy: Obj, namespace: str) -> None:
        key = (namespace, policy["metadata"]["name"])
        assert key not in self.policies, f"policy {key} already exists"
        self.policies[key] = {**policy, "metadata": {**policy["metadata"], "namespace": namespace}}

    def update(self, policy: Obj, namespace: str) -> None:
        key = (namespace, policy["metadata"]["name"])
        assert key in self.policies, f"no policy {key} to update"
        del self.policies[key]
        self.create(policy, namespace)

    def clean_policies(self) -> None:
        self.policies.clear()

    def add_pod_labels(self, pod: str, new: dict[str, str]) -> None:
        self.model = self._model.with_pod_labels(pod, new)

    def add_namespace_label(self, namespace: str, key: str, value: str) -> None:
        self.model = self._model.with_namespace_labels(namespace, {key: value})

    def pod_ip(self, pod: str) -> str:
        return str(self._model.pod(pod).ip)

    def reachability(self) -> Reachability:
        return self._model.reachability()

    def validate(self, port_number: int, protocol: Protocol, reachability: Reachability) -> None:
        """ValidateOrFail: observe every pair and compare, loopback ignored."""
        self.validations += 1
        cluster = self._model.cluster(self.policies.values())
        self._observe(cluster, reachability, port_number, protocol)
        summary = reachability.summary(ignore_loopback=True)
        if not summary.ok:
            policies = ", ".join(f"{ns}/{name}" for ns, name in self.policies)
            pytest.fail(f"validation {self.validations} ({protocol}/{port_number}, policies: "
                        f"{policies or 'none'}):\n{reachability.report()}", pytrace=False)


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    play: Callable[[Scenario], None]


CASES: list[Case] = []


def case(title: str, name: str | None = None) -> Callable[[Callable[[Scenario], None]], Any]:
    def register(play: Callable[[Scenario], None]) -> Callable[[Scenario], None]:
        CASES.append(Case(name or play.__name__.replace("_", "-"), title, play))
        return play
    return register


# --- the cases ---------------------------------------------------------------------------


@case("should support a 'default-deny-ingress' policy")
def default_deny_ingress(t: Scenario) -> None:
    # 2 pods in x show x-to-x is blocked, 2 in y that y-to-x is blocked and x-to-y is not.
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "y/b")
    t.create(gen_policy("deny-ingress", {}, ingress_rules()), "x")
    r = t.reachability()
    r.expect_peer(Peer(), Peer(namespace="x"), False)
    t.validate(80, TCP, r)


@case("should support a 'default-deny-all' policy")
def default_deny_all(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a")
    t.create(gen_policy("deny-all", {}, ingress_rules(), egress_rules()), "x")
    r = t.reachability()
    r.expect_peer(Peer(), Peer(namespace="x"), False)
    r.expect_peer(Peer(namespace="x"), Peer(), False)
    t.validate(80, TCP, r)


@case("should enforce policy to allow traffic from pods within server namespace based on "
      "PodSelector")
def pod_selector_same_namespace(t: Scenario) -> None:
    # x/b is the allowed peer, x/c a non-matching one, y/a must not match across namespaces.
    t.initialize([TCP], [80], "x/a", "x/b", "x/c", "y/a")
    t.create(gen_policy_match_label("x-a-allows-x-b", {"pod": "a"},
                                    ingress_rules(rule(peer(pods=labels(pod="b"))))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("x/b", "x/a", True)
    t.validate(80, TCP, r)


@case("should enforce policy to allow ingress traffic for a target")
def ingress_for_target(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a")
    t.create(gen_policy("deny-all", {}, ingress_rules()), "x")
    everyone = peer(pods={}, namespaces={})
    t.create(gen_policy_match_label("allow-all-to-a", {"pod": "a"},
                                    ingress_rules(rule(everyone))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", True)
    r.expect_all_ingress("x/b", False)
    t.validate(80, TCP, r)


@case("should enforce policy to allow ingress traffic from pods in all namespaces")
def ingress_from_all_namespaces(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "z/a")
    t.create(gen_policy_match_label("allow-from-another-ns", {"pod": "a"},
                                    ingress_rules(rule(peer(namespaces=labels())))), "x")
    t.validate(80, TCP, t.reachability())


@case("should enforce policy to allow traffic only from a different namespace, based on "
      "NamespaceSelector")
def namespace_selector(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "z/a")
    t.create(gen_policy_match_label("allow-client-a-via-ns-selector", {"pod": "a"},
                                    ingress_rules(rule(peer(namespaces=ns_named("y"))))), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(namespace="x", pod="a"), False)
    r.expect_peer(Peer(namespace="z"), Peer(namespace="x", pod="a"), False)
    t.validate(80, TCP, r)


@case("should enforce policy based on PodSelector with MatchExpressions")
def pod_selector_match_expressions(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a")
    allowed = peer(pods=expression("pod", "In", "b"))
    t.create(gen_policy_match_label("x-a-allows-x-b", {"pod": "a"},
                                    ingress_rules(rule(allowed))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("x/b", "x/a", True)
    t.validate(80, TCP, r)


@case("should enforce policy based on NamespaceSelector with MatchExpressions")
def namespace_selector_match_expressions(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "z/a")
    allowed = peer(namespaces=expression(NS, "In", "y"))
    t.create(gen_policy_match_label("allow-ns-y-match-selector", {"pod": "a"},
                                    ingress_rules(rule(allowed))), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(namespace="x", pod="a"), False)
    r.expect_peer(Peer(namespace="z"), Peer(namespace="x", pod="a"), False)
    t.validate(80, TCP, r)


@case("should enforce policy based on PodSelector or NamespaceSelector")
def pod_or_namespace_selector(t: Scenario) -> None:
    # x/b matches the pod selector, y/a the namespace selector, x/c neither.
    t.initialize([TCP], [80], "x/a", "x/b", "x/c", "y/a")
    other_namespaces = peer(namespaces=expression(NS, "NotIn", "x"))
    t.create(gen_policy_match_label(
        "allow-ns-y-match-selector", {"pod": "a"},
        ingress_rules(rule(other_namespaces, peer(pods=labels(pod="b"))))), "x")
    r = t.reachability()
    r.expect("x/a", "x/a", False)
    r.expect("x/c", "x/a", False)
    t.validate(80, TCP, r)


@case("should enforce policy based on PodSelector and NamespaceSelector")
def pod_and_namespace_selector(t: Scenario) -> None:
    # y/b and z/b match both selectors; x/b only the pod one, y/a only the namespace one.
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "y/b", "z/b")
    both = peer(pods=labels(pod="b"), namespaces=expression(NS, "NotIn", "x"))
    t.create(gen_policy_match_label("allow-ns-y-podselector-and-nsselector", {"pod": "a"},
                                    ingress_rules(rule(both))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("y/b", "x/a", True)
    r.expect("z/b", "x/a", True)
    t.validate(80, TCP, r)


@case("should enforce policy based on Multiple PodSelectors and NamespaceSelectors")
def multiple_pod_and_namespace_selectors(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "y/b", "y/c")
    both = peer(pods=expression("pod", "In", "b", "c"),
                namespaces=expression(NS, "NotIn", "x"))
    t.create(gen_policy_match_label("allow-ns-y-z-pod-b-c", {"pod": "a"},
                                    ingress_rules(rule(both))), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(namespace="x", pod="a"), False)
    r.expect("y/a", "x/a", False)
    t.validate(80, TCP, r)


@case("should enforce policy based on any PodSelectors")
def any_pod_selectors(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "x/c")
    t.create(gen_policy_match_label(
        "allow-ns-x-pod-b-c", {"pod": "a"},
        ingress_rules(rule(peer(pods=labels(pod="b")), peer(pods=labels(pod="c"))))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("x/b", "x/a", True)
    r.expect("x/c", "x/a", True)
    t.validate(80, TCP, r)


def _allow_only_y_a(t: Scenario, protocol: Protocol, port_number: int, *pods: str) -> None:
    t.initialize([protocol], [port_number], *pods)
    y_a = peer(pods=labels(pod="a"), namespaces=ns_named("y"))
    t.create(gen_policy_match_label("allow-ns-y-pod-a-via-namespace-pod-selector", {"pod": "a"},
                                    ingress_rules(rule(y_a))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    r.expect("y/a", "x/a", True)
    t.validate(port_number, protocol, r)


@case("should enforce policy to allow traffic only from a pod in a different namespace based "
      "on PodSelector and NamespaceSelector")
def pod_in_other_namespace(t: Scenario) -> None:
    _allow_only_y_a(t, TCP, 80, "x/a", "x/b", "y/a", "y/b", "z/a")


def _port_81_from_y(protocol: Protocol, name: str) -> Obj:
    return gen_policy_match_label(name, {"pod": "a"}, ingress_rules(
        rule(peer(namespaces=ns_named("y")), ports=[port(81, protocol)])))


def _expect_only_y_reaches_x_a(r: Reachability) -> None:
    r.expect_peer(Peer(namespace="x"), Peer(namespace="x", pod="a"), False)
    r.expect_peer(Peer(namespace="y"), Peer(namespace="x", pod="a"), True)
    r.expect_peer(Peer(namespace="z"), Peer(namespace="x", pod="a"), False)


@case("should enforce policy based on Ports")
def ports(t: Scenario) -> None:
    t.initialize([TCP], [81], "x/a", "x/b", "y/a", "y/b", "z/a")
    t.create(_port_81_from_y(TCP, "allow-client-a-via-ns-selector"), "x")
    r = t.reachability()
    _expect_only_y_reaches_x_a(r)
    t.validate(81, TCP, r)


@case("should enforce multiple, stacked policies with overlapping podSelectors")
def stacked_policies(t: Scenario) -> None:
    t.initialize([TCP], [80, 81], "x/a", "x/b", "y/a", "y/b", "z/a")
    t.create(_port_81_from_y(TCP, "allow-client-a-via-ns-selector"), "x")
    allow = t.reachability()
    _expect_only_y_reaches_x_a(allow)
    t.validate(81, TCP, allow)
    deny = t.reachability()
    deny.expect_all_ingress("x/a", False)
    t.validate(80, TCP, deny)
    t.create(gen_policy_match_label("allow-client-a-via-ns-selector-80", {"pod": "a"},
                                    ingress_rules(rule(peer(namespaces=ns_named("y")),
                                                       ports=[port(80, TCP)]))), "x")
    t.validate(80, TCP, allow)


@case("should support allow-all policy")
def allow_all(t: Scenario) -> None:
    t.initialize([TCP], [80, 81], "x/a", "x/b", "y/a")
    t.create(gen_policy_match_label("allow-all", {}, ingress_rules({})), "x")
    r = t.reachability()
    t.validate(80, TCP, r)
    t.validate(81, TCP, r)


@case("should allow ingress access on one named port")
def ingress_named_port(t: Scenario) -> None:
    t.initialize([TCP], [80, 81], "x/a", "x/b", "y/a")
    t.create(gen_policy_match_label("allow-all", {},
                                    ingress_rules(rule(ports=[port("serve-81-tcp")]))), "x")
    t.validate(81, TCP, t.reachability())
    r80 = t.reachability()
    r80.expect_peer(Peer(), Peer(namespace="x"), False)
    t.validate(80, TCP, r80)


@case("should allow ingress access from namespace on one named port")
def ingress_from_namespace_named_port(t: Scenario) -> None:
    t.initialize([TCP], [80, 81], "x/a", "x/b", "y/a", "z/a")
    t.create(gen_policy_match_label(
        "allow-client-a-via-ns-selector-80", {"pod": "a"},
        ingress_rules(rule(peer(namespaces=ns_named("y")), ports=[port("serve-80-tcp", TCP)]))),
        "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(namespace="x", pod="a"), False)
    r.expect_peer(Peer(namespace="z"), Peer(namespace="x", pod="a"), False)
    t.validate(80, TCP, r)
    r81 = t.reachability()
    r81.expect_all_ingress("x/a", False)
    t.validate(81, TCP, r81)


@case("should allow egress access on one named port")
def egress_named_port(t: Scenario) -> None:
    t.initialize([TCP], [80, 81], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-egress", {},
                                    egress_rules(egress_rule(ports=[port("serve-80-tcp")]))), "x")
    t.validate(80, TCP, t.reachability())
    r81 = t.reachability()
    r81.expect_peer(Peer(namespace="x"), Peer(), False)
    t.validate(81, TCP, r81)


@case("should enforce updated policy")
def updated_policy(t: Scenario) -> None:
    t.initialize([TCP], [81], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-all-mutate-to-deny-all", {}, ingress_rules({})), "x")
    t.validate(81, TCP, t.reachability())
    t.update(gen_policy_match_label("allow-all-mutate-to-deny-all", {}, ingress_rules()), "x")
    r = t.reachability()
    r.expect_peer(Peer(), Peer(namespace="x"), False)
    t.validate(81, TCP, r)


@case("should allow ingress access from updated namespace")
def ingress_from_updated_namespace(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-client-a-via-ns-selector", {"pod": "a"},
                                    ingress_rules(rule(peer(namespaces=labels(ns2="updated"))))),
             "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    t.validate(80, TCP, r)
    t.add_namespace_label("y", "ns2", "updated")
    with_label = t.reachability()
    with_label.expect_all_ingress("x/a", False)
    with_label.expect_peer(Peer(namespace="y"), Peer(), True)
    t.validate(80, TCP, with_label)


@case("should allow ingress access from updated pod")
def ingress_from_updated_pod(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b")
    match = {"pod": "b", "pod2": "updated"}
    t.create(gen_policy_match_label("allow-client-a-via-pod-selector", {"pod": "a"},
                                    ingress_rules(rule(peer(pods={"matchLabels": match})))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    t.validate(80, TCP, r)
    t.add_pod_labels("x/b", match)
    with_label = t.reachability()
    with_label.expect_all_ingress("x/a", False)
    with_label.expect("x/b", "x/a", True)
    t.validate(80, TCP, with_label)


@case("should deny ingress from pods on other namespaces")
def deny_ingress_from_other_namespaces(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "z/a")
    t.create(gen_policy("deny-empty-policy", {}, ingress_rules(rule(peer(pods=labels())))), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="y"), Peer(namespace="x"), False)
    r.expect_peer(Peer(namespace="z"), Peer(namespace="x"), False)
    t.validate(80, TCP, r)


@case("should deny ingress access to updated pod")
def deny_ingress_to_updated_pod(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "y/a")
    t.create(gen_policy("deny-ingress-via-label-selector", labels(target="isolated"),
                        ingress_rules()), "x")
    t.validate(80, TCP, t.reachability())
    t.add_pod_labels("x/a", {"target": "isolated"})
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    t.validate(80, TCP, r)


@case("should deny egress from pods based on PodSelector")
def deny_egress_by_pod_selector(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a")
    t.create(gen_policy("deny-egress-pod-a", labels(pod="a"), egress_rules()), "x")
    r = t.reachability()
    r.expect_all_egress("x/a", False)
    t.validate(80, TCP, r)


@case("should deny egress from all pods in a namespace")
def deny_egress_from_namespace(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a")
    t.create(gen_policy("deny-egress-ns-x", {}, egress_rules()), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(), False)
    t.validate(80, TCP, r)


@case("should work with Ingress, Egress specified together")
def ingress_and_egress_together(t: Scenario) -> None:
    t.initialize([TCP], [80, 81], "x/a", "x/b", "x/c", "y/a")
    t.create(gen_policy_match_label(
        "allow-client-a-via-pod-selector", {"pod": "a"},
        ingress_rules(rule(peer(pods=labels(pod="b")))),
        egress_rules(egress_rule(ports=[port(80)])),  # "don't use named ports"
        policy_types("Egress", "Ingress")), "x")
    r80 = t.reachability()
    r80.expect_all_ingress("x/a", False)
    r80.expect("x/b", "x/a", True)
    t.validate(80, TCP, r80)
    r81 = t.reachability()
    r81.expect_all_ingress("x/a", False)
    r81.expect_all_egress("x/a", False)
    r81.expect("x/b", "x/a", True)
    t.validate(81, TCP, r81)


@case("should support denying of egress traffic on the client side (even if the server "
      "explicitly allows this traffic)")
def deny_egress_on_client_side(t: Scenario) -> None:
    # x/a may send to y/a only; y/a and y/b both accept x/a.
    t.initialize([TCP], [80], "x/a", "y/a", "y/b")
    y_a = peer(pods=labels(pod="a"), namespaces=ns_named("y"))
    t.create(gen_policy_match_label("allow-to-ns-y-pod-a", {"pod": "a"},
                                    egress_rules(egress_rule(y_a))), "x")
    from_x_a = rule(peer(pods=labels(pod="a"), namespaces=ns_named("x")))
    t.create(gen_policy_match_label("allow-from-xa-on-ya-match-selector", {"pod": "a"},
                                    ingress_rules(from_x_a)), "y")
    t.create(gen_policy_match_label("allow-from-xa-on-yb-match-selector", {"pod": "b"},
                                    ingress_rules(from_x_a)), "y")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x", pod="a"), Peer(), False)
    r.expect_peer(Peer(), Peer(namespace="y", pod="a"), False)
    r.expect_peer(Peer(namespace="x", pod="a"), Peer(namespace="y", pod="a"), True)
    r.expect_peer(Peer(), Peer(namespace="y", pod="b"), False)
    t.validate(80, TCP, r)


@case("should enforce egress policy allowing traffic to a server in a different namespace "
      "based on PodSelector and NamespaceSelector")
def egress_to_other_namespace(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "y/a", "y/b")
    y_a = peer(pods=labels(pod="a"), namespaces=ns_named("y"))
    t.create(gen_policy_match_label("allow-to-ns-y-pod-a", {"pod": "a"},
                                    egress_rules(egress_rule(y_a))), "x")
    r = t.reachability()
    r.expect_all_egress("x/a", False)
    r.expect("x/a", "y/a", True)
    t.validate(80, TCP, r)


@case("should enforce ingress policy allowing any port traffic to a server on a specific "
      "protocol")
def ingress_any_port_by_protocol(t: Scenario) -> None:
    t.initialize([TCP, UDP], [80], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-ingress-by-proto", {"pod": "a"},
                                    ingress_rules(rule(ports=[{"protocol": "TCP"}]))), "x")
    t.validate(80, TCP, t.reachability())
    r_udp = t.reachability()
    r_udp.expect_peer(Peer(), Peer(namespace="x", pod="a"), False)
    t.validate(80, UDP, r_udp)


@case("should enforce multiple ingress policies with ingress allow-all policy taking "
      "precedence")
def ingress_allow_all_precedence(t: Scenario) -> None:
    t.initialize([TCP], [81], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-ingress-port-80", {},
                                    ingress_rules(rule(ports=[port(80)]))), "x")
    r = t.reachability()
    r.expect_peer(Peer(), Peer(namespace="x"), False)
    t.validate(81, TCP, r)
    t.create(gen_policy_match_label("allow-ingress", {}, ingress_rules({})), "x")
    t.validate(81, TCP, t.reachability())


@case("should enforce multiple egress policies with egress allow-all policy taking precedence")
def egress_allow_all_precedence(t: Scenario) -> None:
    t.initialize([TCP], [81], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-egress-port-80", {},
                                    egress_rules(egress_rule(ports=[port(80)]))), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(), False)
    t.validate(81, TCP, r)
    t.create(gen_policy_match_label("allow-egress", {}, egress_rules({})), "x")
    t.validate(81, TCP, t.reachability())


@case("should stop enforcing policies after they are deleted")
def stop_enforcing_after_delete(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "y/a")
    t.create(gen_policy("deny-all", {}, ingress_rules(), egress_rules()), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(), False)
    r.expect_peer(Peer(), Peer(namespace="x"), False)
    t.validate(80, TCP, r)
    t.clean_policies()
    t.validate(80, TCP, t.reachability())


@case("should allow egress access to server in CIDR block")
def egress_to_cidr(t: Scenario) -> None:
    # y/b's address makes the block, y/a is outside it, x/a is the restricted client.
    t.initialize([TCP], [80], "x/a", "y/a", "y/b")
    to_y_b = ip_block(host_cidr(t.pod_ip("y/b")))
    t.create(gen_policy_match_label("allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                                    egress_rules(egress_rule(to_y_b))), "x")
    r = t.reachability()
    r.expect_all_egress("x/a", False)
    r.expect("x/a", "y/b", True)
    t.validate(80, TCP, r)


def _allow_around_x_b(t: Scenario) -> None:
    """Egress from x/a to a large block around x/b's address, but not to x/b itself."""
    x_b = t.pod_ip("x/b")
    around = ip_block(large_cidr(x_b), host_cidr(x_b))
    t.create(gen_policy_match_label("allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                                    egress_rules(egress_rule(around))), "x")
    r = t.reachability()
    r.expect("x/a", "x/b", False)
    t.validate(80, TCP, r)


@case("should enforce except clause while egress access to server in CIDR block")
def egress_cidr_except(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "x/c")
    _allow_around_x_b(t)


@case("should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed")
def ip_in_cidr_and_except(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "x/c")
    _allow_around_x_b(t)
    to_x_b = ip_block(host_cidr(t.pod_ip("x/b")))
    t.update(gen_policy_match_label("allow-client-a-via-cidr-egress-rule", {"pod": "a"},
                                    egress_rules(egress_rule(to_x_b))), "x")
    r = t.reachability()
    r.expect_all_egress("x/a", False)
    r.expect("x/a", "x/b", True)
    t.validate(80, TCP, r)


@case("should enforce policies to check ingress and egress policies can be controlled "
      "independently based on PodSelector")
def ingress_and_egress_independent(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a")
    t.create(gen_policy("allow-egress-for-target", labels(pod="a"), egress_rules({})), "x")
    t.validate(80, TCP, t.reachability())
    t.create(gen_policy("deny-ingress-via-label-selector", labels(pod="a"), ingress_rules()), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    t.validate(80, TCP, r)


@case("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin "
      "doesn't support SCTP")
def sctp_is_not_tcp(t: Scenario) -> None:
    t.initialize([TCP], [81], "x/a", "y/a")
    t.create(gen_policy("deny-ingress", {}, ingress_rules()), "x")
    t.create(gen_policy_match_label("allow-only-sctp-ingress-on-port-81", {"pod": "a"},
                                    ingress_rules(rule(ports=[port(81, SCTP)]))), "x")
    r = t.reachability()
    r.expect_peer(Peer(), Peer(namespace="x"), False)
    t.validate(81, TCP, r)


@case("should properly isolate pods that are selected by a policy allowing SCTP, even if the "
      "plugin doesn't support SCTP")
def sctp_policy_isolates(t: Scenario) -> None:
    t.initialize([TCP], [81], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-only-sctp-ingress-on-port-80", {"pod": "a"},
                                    ingress_rules(rule(ports=[port(80, SCTP)]))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    t.validate(81, TCP, r)


@case("should not allow access by TCP when a policy specifies only UDP")
def udp_policy_isolates_tcp(t: Scenario) -> None:
    t.initialize([TCP], [81], "x/a", "y/a")
    t.create(gen_policy_match_label("allow-only-udp-ingress-on-port-81", {"pod": "a"},
                                    ingress_rules(rule(ports=[port(81, UDP)]))), "x")
    r = t.reachability()
    r.expect_all_ingress("x/a", False)
    t.validate(81, TCP, r)


@case("should enforce policy to allow traffic based on NamespaceSelector with MatchLabels "
      "using default ns label")
def default_namespace_label_match_labels(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "z/a")
    t.create(gen_policy_match_label("allow-client-a-via-ns-selector-for-immutable-ns-label",
                                    {"pod": "a"},
                                    ingress_rules(rule(peer(namespaces=ns_named("y"))))), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x"), Peer(namespace="x", pod="a"), False)
    r.expect_peer(Peer(namespace="z"), Peer(namespace="x", pod="a"), False)
    t.validate(80, TCP, r)


@case("should enforce policy based on NamespaceSelector with MatchExpressions using default "
      "ns label")
def default_namespace_label_match_expressions(t: Scenario) -> None:
    t.initialize([TCP], [80], "x/a", "x/b", "y/a", "z/a")
    not_y = peer(namespaces=expression(NS, "NotIn", "y"))
    t.create(gen_policy_match_label("allow-ns-y-match-selector-for-immutable-ns-label",
                                    {"pod": "a"}, egress_rules(egress_rule(not_y))), "x")
    r = t.reachability()
    r.expect_peer(Peer(namespace="x", pod="a"), Peer(namespace="y"), False)
    t.validate(80, TCP, r)


# The UDP and SCTP contexts repeat three cases on their protocol.


def _default_deny_ingress_on(protocol: Protocol, t: Scenario) -> None:
    t.initialize([protocol], [80], "x/a", "x/b", "y/a", "y/b")
    t.create(gen_policy("deny-all", {}, ingress_rules()), "x")
    r = t.reachability()
    r.expect_peer(Peer(), Peer(namespace="x"), False)
    t.validate(80, protocol, r)


def _ports_on(protocol: Protocol, t: Scenario) -> None:
    t.initialize([protocol], [81], "x/a", "x/b", "y/a", "z/a")
    t.create(_port_81_from_y(protocol, "allow-ingress-on-port-81-ns-x"), "x")
    r = t.reachability()
    _expect_only_y_reaches_x_a(r)
    t.validate(81, protocol, r)


def _pod_in_other_namespace_on(protocol: Protocol, t: Scenario) -> None:
    _allow_only_y_a(t, protocol, 80, "x/a", "x/b", "y/a")


for _protocol in (UDP, SCTP):
    _p = _protocol.lower()
    case("should support a 'default-deny-ingress' policy", f"{_p}-default-deny-ingress")(
        functools.partial(_default_deny_ingress_on, _protocol))
    case("should enforce policy based on Ports", f"{_p}-ports")(
        functools.partial(_ports_on, _protocol))
    case("should enforce policy to allow traffic only from a pod in a different namespace "
         "based on PodSelector and NamespaceSelector", f"{_p}-pod-in-other-namespace")(
        functools.partial(_pod_in_other_namespace_on, _protocol))


# --- the judges --------------------------------------------------------------------------


def observe_oracle(cluster: Cluster, r: Reachability, port_number: int, protocol: Protocol) -> None:
    for src in r.pods:
        for dst in r.pods:
            r.observe(src, dst, oracle.allowed(cluster, cluster.pod(src), cluster.pod(dst),
                                               port_number, protocol))


def observe_engine_matrix(
    cluster: Cluster, r: Reachability, port_number: int, protocol: Protocol
) -> None:
    (matrix,) = Engine(cluster).matrix([Probe(port_number, protocol)])
    for src in r.pods:
        for dst in r.pods:
            r.observe(src, dst, matrix.allowed[src][dst])


def observe_engine_connectivity(
    cluster: Cluster, r: Reachability, port_number: int, protocol: Protocol
) -> None:
    connectivity = Engine(cluster).connectivity()
    for src in r.pods:
        for dst in r.pods:
            r.observe(src, dst, connectivity.between(src, dst).allows(protocol, port_number))


def observe_engine_verdicts(
    cluster: Cluster, r: Reachability, port_number: int, protocol: Protocol
) -> None:
    engine = Engine(cluster)
    for src in r.pods:
        for dst in r.pods:
            verdict = engine.verdict(cluster.pod(src), cluster.pod(dst), port_number, protocol)
            r.observe(src, dst, verdict.allowed)


JUDGES = {"engine-matrix": observe_engine_matrix,
          "engine-connectivity": observe_engine_connectivity,
          "engine-verdict": observe_engine_verdicts,
          "oracle": observe_oracle}


def _params() -> list[Any]:
    return [pytest.param(upstream, judge, id=f"{upstream.name}:{name}")
            for upstream in CASES for name, judge in JUDGES.items()]


@pytest.mark.parametrize(("upstream", "judge"), _params())
def test_upstream_case(upstream: Case, judge: Observe) -> None:
    scenario = Scenario(judge)
    upstream.play(scenario)
    assert scenario.validations > 0


def test_all_48_upstream_cases_are_here() -> None:
    assert len(CASES) == 48
    assert len({c.name for c in CASES}) == 48
