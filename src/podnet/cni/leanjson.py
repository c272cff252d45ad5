"""JSON for the plugin's hot path without importing `json` (with `re` and `enum`, it doubles
the plugin's start-up): the C scanner and string encoder that `json` itself is built on.

`loads` decodes valid documents with the C scanner and hands anything it does not accept to
`json.loads`, whose verdict and error message are then the answer. `dumps` writes the flat
objects the plugin prints itself (errors, VERSION): strings, integers, lists of strings.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # another Python implementation: the full module does it all
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"


class _ScannerContext:
    """The settings `json.JSONDecoder` passes its C scanner, with the defaults of `loads`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None


_scan = _json.make_scanner(_ScannerContext()) if _json is not None else None  # type: ignore[arg-type]


def loads(text: str) -> object:
    """Decode one JSON document; ValueError (json.JSONDecodeError) if it is not one."""
    body = text.strip(_WHITESPACE)
    if _scan is not None:
        try:
            value, end = _scan(body, 0)
        except Exception:  # the C scanner's errors are raw: let json explain them below
            pass
        else:
            if end == len(body):
                return value
    import json  # only for documents the fast path refused

    return json.loads(text)


def _encode(value: object) -> str:
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value) if _json is not None else _slow(value)
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_encode(str(k))}: {_encode(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"leanjson cannot encode {type(value).__name__}")


def _slow(value: str) -> str:
    import json

    return json.dumps(value)


def dumps(value: object) -> str:
    """Encode strings, integers, booleans, None, lists and dicts of them, as `json.dumps`."""
    return _encode(value)
