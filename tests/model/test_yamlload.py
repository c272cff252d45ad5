"""The fast loader gives exactly what PyYAML's safe loader gives."""

from pathlib import Path

import pytest
import yaml

from podnet.model.yamlload import FastSafeLoader

EXAMPLES = Path(__file__).parents[2] / "examples"

TRICKY = """
ints: [0, 7, 010, 0o17, 0x1F, 1_000, -3, +4, 190:20:30, 0b101]
bools: [yes, No, on, OFF, true, False, y, n]
nulls: [~, null, Null, '', "null"]
floats: [1.5, .inf, -.Inf, .nan, 1e3, 6.8523015e+5]
strings: ['yes', "80", 80a, 2001-12-14, !!str 12]
when: 2001-12-14t21:59:43.10-05:00
base: &base {a: 1, b: [x, y]}
merged: {<<: *base, b: z}
alias: *base
binary: !!binary aGVsbG8=
set: !!set {a, b}
ordered: !!omap [{a: 1}, {b: 2}]
---
- just: a second document
"""


def safe(text: str) -> list[object]:
    return list(yaml.load_all(text, Loader=yaml.SafeLoader))


FILES = sorted(EXAMPLES.rglob("*.yaml"))


@pytest.mark.parametrize("text", [TRICKY, *(p.read_text() for p in FILES)],
                         ids=["tricky", *(p.name for p in FILES)])
def test_same_objects_as_pyyaml(text: str) -> None:
    fast = list(yaml.load_all(text, Loader=FastSafeLoader))
    assert repr(fast) == repr(safe(text))  # repr: nan != nan, and types must match too


def test_anchors_give_one_shared_object() -> None:
    (doc,) = yaml.load_all("a: &x [1]\nb: *x\n", Loader=FastSafeLoader)
    assert doc["a"] is doc["b"]
