"""Label selectors: decoding `matchLabels`/`matchExpressions` and kubectl's `-l` syntax."""

from __future__ import annotations

import re

from podnet.errors import PodnetError
from podnet.model.fields import Field
from podnet.model.names import label_key_errors, label_value_errors
from podnet.model.objects import LabelSelector, Operator, Requirement


def decode_selector(f: Field) -> LabelSelector:
    """A metav1.LabelSelector, validated as ValidateLabelSelector does."""
    match_labels = tuple(sorted(f.get("matchLabels").labels().items()))
    expressions = []
    for e in f.get("matchExpressions").items():
        key_f = e.get("key")
        key = key_f.string()
        for msg in label_key_errors(key):
            key_f.report(f"Invalid value: {key!r}: {msg}")
        op_f = e.get("operator")
        op_name = op_f.string()
        try:
            op = Operator(op_name)
        except ValueError:
            op_f.report(f'Unsupported value: "{op_name}": supported values: '
                        '"In", "NotIn", "Exists", "DoesNotExist"')
            continue
        values_f = e.get("values")
        value_fields = list(values_f.items())
        values = tuple(v.string() for v in value_fields)
        if op in (Operator.IN, Operator.NOT_IN) and not values:
            values_f.report("Required value: must be specified when `operator` is 'In' or 'NotIn'")
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
            values_f.report("Forbidden: may not be specified when `operator` is 'Exists' or "
                            "'DoesNotExist'")
        for v_f, v in zip(value_fields, values, strict=True):
            for msg in label_value_errors(v):
                v_f.report(f"Invalid value: {v!r}: {msg}")
        expressions.append(Requirement(key, op, values))
    return LabelSelector(match_labels, tuple(expressions))


class SelectorSyntaxError(PodnetError, ValueError):
    """A `-l` selector string that does not parse."""


_TERM = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[^\s!=,()]+)"
    r"|(?P<key>[^\s!=,()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


def parse_selector(text: str) -> LabelSelector:
    """kubectl's selector syntax: `a=b,c!=d,e in (x,y),f notin (z),g,!h`."""
    terms = _split_terms(text)
    requirements = []
    for term in terms:
        m = _TERM.match(term)
        if not m:
            raise SelectorSyntaxError(f"invalid label selector {text!r}: cannot parse {term!r}")
        if m["not"]:
            requirements.append(Requirement(m["nkey"], Operator.DOES_NOT_EXIST))
        elif m["op"]:
            op = Operator.NOT_IN if m["op"] == "!=" else Operator.IN
            requirements.append(Requirement(m["key"], op, (m["value"],)))
        elif m["setop"]:
            values = tuple(v.strip() for v in m["values"].split(",") if v.strip())
            op = Operator.IN if m["setop"] == "in" else Operator.NOT_IN
            requirements.append(Requirement(m["key"], op, values))
        else:
            requirements.append(Requirement(m["key"], Operator.EXISTS))
    return LabelSelector((), tuple(requirements))


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip() or terms:
        terms.append(current)
    return [t for t in terms if t.strip()]
