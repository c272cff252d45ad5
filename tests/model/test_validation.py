"""Every validation rule the API server applies to what podnet reads, with its field path.

Each manifest breaks one rule; loading it must raise ManifestError (nothing half-loaded) and
name the field exactly as `kubectl apply` would (ValidateNetworkPolicy, ValidateLabelSelector,
validateContainerPorts in kubernetes/kubernetes).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from podnet.model import ManifestError, Problem, load_cluster

POLICY = "kind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec:\n"


def pod(spec: str, meta: str = "") -> str:
    return f"kind: Pod\nmetadata: {{name: p, namespace: x{meta}}}\nspec: {spec}\n"


def problems_of(tmp_path: Path, text: str) -> list[Problem]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as err:
        load_cluster([path])
    for problem in err.value.problems:
        assert str(problem).startswith(f"{path}: ")
    return err.value.problems


# (case, manifest, field path, words of the message)
RULES = [
    # ports
    ("protocol not TCP/UDP/SCTP", POLICY + "  ingress: [{ports: [{protocol: ICMP}]}]",
     "spec.ingress[0].ports[0].protocol", 'Unsupported value: "ICMP"'),
    ("protocol is case-sensitive", POLICY + "  egress: [{ports: [{protocol: udp, port: 53}]}]",
     "spec.egress[0].ports[0].protocol", 'Unsupported value: "udp"'),
    ("port 0", POLICY + "  ingress: [{ports: [{port: 0}]}]",
     "spec.ingress[0].ports[0].port", "Invalid value: 0: must be between 1 and 65535"),
    ("port 65536", POLICY + "  egress: [{ports: [{port: 65536}]}]",
     "spec.egress[0].ports[0].port", "Invalid value: 65536: must be between 1 and 65535"),
    ("port name over 15 characters", POLICY + "  ingress: [{ports: [{port: abcdefghijklmnop}]}]",
     "spec.ingress[0].ports[0].port", "no more than 15 characters"),
    ("port name with capitals", POLICY + "  ingress: [{ports: [{port: Http}]}]",
     "spec.ingress[0].ports[0].port", "alpha-numeric characters (a-z, 0-9), and hyphens"),
    ("port name without a letter", POLICY + "  ingress: [{ports: [{port: '8080'}]}]",
     "spec.ingress[0].ports[0].port", "at least one letter"),
    ("port name with --", POLICY + "  ingress: [{ports: [{port: a--b}]}]",
     "spec.ingress[0].ports[0].port", "consecutive hyphens"),
    ("port name starting with -", POLICY + "  ingress: [{ports: [{port: -web}]}]",
     "spec.ingress[0].ports[0].port", "begin or end with a hyphen"),
    ("port name ending with -", POLICY + "  ingress: [{ports: [{port: web-}]}]",
     "spec.ingress[0].ports[0].port", "begin or end with a hyphen"),
    ("endPort with a named port", POLICY + "  ingress: [{ports: [{port: http, endPort: 90}]}]",
     "spec.ingress[0].ports[0].endPort", "may not be specified when `port` is non-numeric"),
    ("endPort without port", POLICY + "  ingress: [{ports: [{endPort: 90}]}]",
     "spec.ingress[0].ports[0].endPort", "may not be specified when `port` is not specified"),
    ("endPort out of range", POLICY + "  ingress: [{ports: [{port: 80, endPort: 70000}]}]",
     "spec.ingress[0].ports[0].endPort", "Invalid value: 70000: must be between 1 and 65535"),
    # peers
    ("a peer with no field", POLICY + "  ingress: [{from: [{podSelector: {}}, {}]}]",
     "spec.ingress[0].from[1]", "Required value: must specify a peer"),
    ("ipBlock beside a selector",
     POLICY + "  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, namespaceSelector: {}}]}]",
     "spec.egress[0].to[0]", "Forbidden: may not specify both ipBlock and another peer"),
    ("empty cidr", POLICY + "  ingress: [{from: [{ipBlock: {cidr: ''}}]}]",
     "spec.ingress[0].from[0].ipBlock.cidr", "Required value"),
    ("missing cidr", POLICY + "  egress: [{to: [{ipBlock: {except: [10.1.0.0/16]}}]}]",
     "spec.egress[0].to[0].ipBlock.cidr", "Required value"),
    ("cidr without a prefix length", POLICY + "  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0}}]}]",
     "spec.ingress[0].from[0].ipBlock.cidr", "Invalid value: '10.0.0.0'"),
    ("cidr prefix too long", POLICY + "  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]",
     "spec.ingress[0].from[0].ipBlock.cidr", "Invalid value: '10.0.0.0/33'"),
    ("except outside cidr", POLICY + "  ingress: [{from: [{podSelector: {}}, {ipBlock: "
     "{cidr: 10.0.0.0/8, except: [10.1.0.0/16, 11.0.0.0/16]}}]}]",
     "spec.ingress[0].from[1].ipBlock.except[1]",
     "Invalid value: '11.0.0.0/16': must be a strict subset of `cidr`"),
    ("except equal to cidr",
     POLICY + "  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}}]}]",
     "spec.ingress[0].from[0].ipBlock.except[0]", "must be a strict subset of `cidr`"),
    ("except of another family",
     POLICY + "  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: ['fd00::/64']}}]}]",
     "spec.ingress[0].from[0].ipBlock.except[0]", "must be a strict subset of `cidr`"),
    ("except not a cidr",
     POLICY + "  egress: [{to: [{ipBlock: {cidr: 'fd00::/48', except: [nonsense]}}]}]",
     "spec.egress[0].to[0].ipBlock.except[0]", "Invalid value: 'nonsense'"),
    # policyTypes
    ("three policyTypes", POLICY + "  policyTypes: [Ingress, Egress, Ingress]",
     "spec.policyTypes", "may not specify more than two policyTypes"),
    ("a policyType that is not Ingress or Egress", POLICY + "  policyTypes: [Ingress, ingress]",
     "spec.policyTypes[1]", 'Unsupported value: "ingress"'),
    # label selectors
    ("In without values", POLICY + "  podSelector: {matchExpressions: [{key: a, operator: In}]}",
     "spec.podSelector.matchExpressions[0].values",
     "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ("NotIn with empty values", POLICY + "  ingress: [{from: [{namespaceSelector: "
     "{matchExpressions: [{key: a, operator: NotIn, values: []}]}}]}]",
     "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values", "Required value"),
    ("Exists with values",
     POLICY + "  podSelector: {matchExpressions: [{key: a, operator: Exists, values: [b]}]}",
     "spec.podSelector.matchExpressions[0].values",
     "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
    ("DoesNotExist with values", POLICY + "  egress: [{to: [{podSelector: {matchExpressions: "
     "[{key: a, operator: DoesNotExist, values: [b]}]}}]}]",
     "spec.egress[0].to[0].podSelector.matchExpressions[0].values", "Forbidden"),
    ("an unknown operator",
     POLICY + "  podSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}",
     "spec.podSelector.matchExpressions[0].operator", '"Equals"'),
    ("an invalid expression key",
     POLICY + "  podSelector: {matchExpressions: [{key: 'a b', operator: Exists}]}",
     "spec.podSelector.matchExpressions[0].key", "Invalid value: 'a b': name part"),
    ("an invalid expression value",
     POLICY + "  podSelector: {matchExpressions: [{key: a, operator: In, values: ['-x']}]}",
     "spec.podSelector.matchExpressions[0].values[0]", "Invalid value: '-x'"),
    # names
    ("a policy name that is not a DNS subdomain",
     "kind: NetworkPolicy\nmetadata: {name: Allow_Web, namespace: x}\nspec: {}",
     "metadata.name", "Invalid value: 'Allow_Web': a lowercase RFC 1123 subdomain"),
    ("a namespace that is not a DNS label",
     "kind: NetworkPolicy\nmetadata: {name: p, namespace: team.a}\nspec: {}",
     "metadata.namespace", "Invalid value: 'team.a': a lowercase RFC 1123 label"),
    ("a Namespace object named as a subdomain", "kind: Namespace\nmetadata: {name: team.a}",
     "metadata.name", "a lowercase RFC 1123 label"),
    ("a pod name starting with -", "kind: Pod\nmetadata: {name: -web, namespace: x}\nspec: {}",
     "metadata.name", "a lowercase RFC 1123 subdomain"),
    # pods
    ("containerPort 0", pod("{containers: [{name: c, ports: [{containerPort: 0}]}]}"),
     "spec.containers[0].ports[0].containerPort", "Invalid value: 0: must be between 1 and"),
    ("containerPort 70000", pod("{containers: [{name: c}, {name: d, ports: "
                                "[{containerPort: 80}, {containerPort: 70000}]}]}"),
     "spec.containers[1].ports[1].containerPort", "Invalid value: 70000"),
    ("containerPort missing", pod("{containers: [{name: c, ports: [{name: http}]}]}"),
     "spec.containers[0].ports[0].containerPort", ""),
    ("container port name with _",
     pod("{containers: [{name: c, ports: [{containerPort: 80, name: serve_80}]}]}"),
     "spec.containers[0].ports[0].name", "Invalid value: 'serve_80'"),
    ("container port protocol in lower case",
     pod("{containers: [{name: c, ports: [{containerPort: 80, protocol: tcp}]}]}"),
     "spec.containers[0].ports[0].protocol", 'Unsupported value: "tcp"'),
    ("a pod IP that is not an address",
     pod("{containers: [{name: c}]}\nstatus: {podIP: 10.0.0.300}"),
     "status.podIP", "Invalid value: '10.0.0.300'"),
]


@pytest.mark.parametrize(("manifest", "path", "message"), [r[1:] for r in RULES],
                         ids=[r[0] for r in RULES])
def test_invalid_manifest_is_rejected_at_its_field(
    tmp_path: Path, manifest: str, path: str, message: str
) -> None:
    problems = problems_of(tmp_path, manifest)
    assert path in [p.path for p in problems], "\n".join(map(str, problems))
    assert any(p.path == path and message in p.message for p in problems), (
        "\n".join(map(str, problems)))


# The API server reports label problems at the map, not at a key it may not be able to print
# (ValidateLabels: field.Invalid(fldPath, k, msg) with fldPath = metadata.labels or
# <selector>.matchLabels).
LABEL_RULES = [
    ("an empty label key", "kind: Namespace\nmetadata: {name: a, labels: {'': x}}",
     "metadata.labels", "name part must be non-empty"),
    ("a label key with two slashes", pod("{containers: [{name: c}]}", ", labels: {'a/b/c': x}"),
     "metadata.labels", "Invalid value: 'a/b/c'"),
    ("a label value with a space", pod("{containers: [{name: c}]}", ", labels: {app: 'a b'}"),
     "metadata.labels", "Invalid value: 'a b'"),
    ("a matchLabels key with a capital prefix",
     POLICY + "  podSelector: {matchLabels: {'Example.com/app': x}}",
     "spec.podSelector.matchLabels", "Invalid value: 'Example.com/app': prefix part"),
    ("a matchLabels value of 64 characters",
     POLICY + f"  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: {'a' * 64}}}}}}}]}}]",
     "spec.ingress[0].from[0].podSelector.matchLabels", "must be no more than 63 characters"),
]


@pytest.mark.parametrize(("manifest", "path", "message"), [r[1:] for r in LABEL_RULES],
                         ids=[r[0] for r in LABEL_RULES])
def test_invalid_label_is_rejected_at_its_map(
    tmp_path: Path, manifest: str, path: str, message: str
) -> None:
    problems = problems_of(tmp_path, manifest)
    assert any(p.path == path and message in p.message for p in problems), (
        "\n".join(map(str, problems)))


def test_end_port_smaller_than_port_names_the_end_port(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, POLICY + "  ingress: [{ports: [{port: 80, endPort: 70}]}]")
    assert problem.path == "spec.ingress[0].ports[0].endPort"
    assert problem.message == "Invalid value: 70: must be greater than or equal to `port`"


def test_duplicate_port_name_in_a_container_is_rejected(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, pod(
        "{containers: [{name: c, ports: [{containerPort: 80, name: http}, "
        "{containerPort: 81, name: http}]}]}"))
    assert problem.path == "spec.containers[0].ports[1].name"
    assert problem.message == 'Duplicate value: "http"'


def test_a_label_value_must_be_a_string(tmp_path: Path) -> None:
    """YAML reads `tier: 1` as a number; the API server refuses it, so does podnet."""
    (problem,) = problems_of(tmp_path, pod("{containers: [{name: c}]}", ", labels: {tier: 1}"))
    assert problem.path.startswith("metadata.labels")
    assert "must be strings" in problem.message


def test_every_problem_is_reported_and_nothing_is_loaded(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "\n---\n".join([
        pod("{containers: [{name: c, ports: [{containerPort: 80, name: http}]}]}"),
        POLICY + "  ingress: [{from: [{}], ports: [{port: 0}, {protocol: ICMP}]}]",
    ]))
    assert [(p.obj, p.path) for p in problems] == [
        ("NetworkPolicy x/p", "spec.ingress[0].from[0]"),
        ("NetworkPolicy x/p", "spec.ingress[0].ports[0].port"),
        ("NetworkPolicy x/p", "spec.ingress[0].ports[1].protocol"),
    ]
