"""A faster YAML loader with PyYAML's exact results: libyaml parses, we build the objects.

PyYAML's C loader still resolves every scalar's tag and constructs every object in Python,
which is most of the time spent loading a 5,000-pod dump. Two shortcuts, both exact: the tag
of an implicit plain scalar depends only on its text, so resolutions are cached; and the
common tags (str, int in plain decimal, bool, null, map, seq) are built directly, anything
else (floats, timestamps, merge keys, other int forms) by PyYAML's own constructor.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BOOLS = yaml.constructor.SafeConstructor.bool_values
STR, INT, BOOL, NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "bool", "null"))
MAP, SEQ, MERGE = (f"tag:yaml.org,2002:{t}" for t in ("map", "seq", "merge"))


class FastSafeLoader(_Base):  # type: ignore[misc]
    """yaml.CSafeLoader with cached tag resolution and direct construction."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._resolved: dict[tuple[str, bool], str] = {}  # one loader per file

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not ScalarNode or not implicit[0]:
            resolved: str = super().resolve(kind, value, implicit)
            return resolved
        key = (value, implicit[1])
        cached = self._resolved.get(key)
        if cached is None:
            cached = self._resolved[key] = super().resolve(kind, value, implicit)
        return cached

    def construct_document(self, node: Node) -> Any:
        memo: dict[int, Any] = {}  # anchors: one object per node, as PyYAML gives
        return self._build(node, memo)

    def _build(self, node: Node, memo: dict[int, Any]) -> Any:
        if id(node) in memo:
            return memo[id(node)]
        tag, value = node.tag, node.value
        if tag == STR:
            return value
        if tag == INT and value.isdigit() and (value == "0" or value[0] != "0"):
            return int(value)
        if tag == BOOL:
            return _BOOLS[value.lower()]
        if tag == NULL:
            return None
        if tag == MAP and isinstance(node, MappingNode) and all(k.tag != MERGE for k, _ in value):
            mapping: dict[Any, Any] = {}
            memo[id(node)] = mapping
            for k, v in value:
                mapping[self._build(k, memo)] = self._build(v, memo)
            return mapping
        if tag == SEQ:
            sequence: list[Any] = []
            memo[id(node)] = sequence
            sequence.extend(self._build(v, memo) for v in value)
            return sequence
        built = self.construct_object(node, deep=True)
        memo[id(node)] = built
        return built
