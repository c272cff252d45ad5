"""A cursor over decoded YAML/JSON that knows its field path, so every error can name it.

Type mismatches raise `FieldError` at once (the object cannot be read further); validation
findings are collected with `report`, so one pass lists all of an object's problems.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from podnet.model.errors import FieldError
from podnet.model.names import label_key_errors, label_value_errors


class Field:
    """The value at `path` inside one object, plus the object's list of findings."""

    def __init__(self, value: Any, path: str = "", findings: list[FieldError] | None = None):
        self.value = value
        self.path = path
        self.findings: list[FieldError] = [] if findings is None else findings

    def _at(self, value: Any, path: str) -> Field:
        return Field(value, path, self.findings)

    def report(self, message: str, child: str | None = None) -> None:
        """Record a validation finding at this field (or one of its children)."""
        path = self.path if child is None else self._child_path(child)
        self.findings.append(FieldError(path, message))

    def fail(self, message: str) -> FieldError:
        return FieldError(self.path, message)

    def _child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    @property
    def present(self) -> bool:
        return self.value is not None

    def get(self, key: str) -> Field:
        """The child `key`; absent and null both give a field whose `present` is False."""
        return self._at(self.mapping().get(key), self._child_path(key))

    def mapping(self) -> dict[str, Any]:
        if self.value is None:
            return {}
        if not isinstance(self.value, dict):
            raise self.fail(f"must be an object, not {_kind_of(self.value)}")
        return self.value

    def items(self) -> Iterator[Field]:
        """The entries of a list (none if absent)."""
        if self.value is None:
            return
        if not isinstance(self.value, list):
            raise self.fail(f"must be a list, not {_kind_of(self.value)}")
        for i, item in enumerate(self.value):
            yield self._at(item, f"{self.path}[{i}]")

    def string(self, default: str | None = None) -> str:
        if self.value is None:
            if default is None:
                raise self.fail("Required value")
            return default
        if not isinstance(self.value, str):
            raise self.fail(f"must be a string, not {_kind_of(self.value)}")
        return self.value

    def optional_string(self) -> str | None:
        return None if self.value is None else self.string()

    def integer(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"must be an integer, not {_kind_of(self.value)}")
        return self.value

    def boolean(self, default: bool = False) -> bool:
        if self.value is None:
            return default
        if not isinstance(self.value, bool):
            raise self.fail(f"must be a boolean, not {_kind_of(self.value)}")
        return self.value

    def int_or_string(self) -> int | str:
        if isinstance(self.value, str):
            return self.value
        return self.integer()

    def labels(self) -> dict[str, str]:
        """A map of label keys to values, each checked as the API server checks labels."""
        result: dict[str, str] = {}
        # The API server names the map, not the key, in label errors (ValidateLabels).
        for key, value in self.mapping().items():
            if not isinstance(value, str):
                # YAML reads `tier: 1` and `on: yes` as number and boolean; labels are strings.
                raise self.fail(f"label values must be strings, not {_kind_of(value)} "
                                f"(quote the value of {key!r})")
            for msg in label_key_errors(str(key)):
                self.report(f"Invalid value: {key!r}: {msg}")
            for msg in label_value_errors(value):
                self.report(f"Invalid value: {value!r}: {msg}")
            result[str(key)] = value
        return result


def _kind_of(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), "a value")
