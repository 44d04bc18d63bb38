"""imp's ``http.jsonencode`` / ``http.jsondecode`` rules, as pure functions over Python values.

Squirrel values arrive as Python ones (a table as a mapping, an array as a sequence, a blob as
``bytes``); the engines convert before and after. The rules kept from imp:

- encodable: null, bool, integer, float, string, array, table (nested); a table key must be a
  string (imp's JSON only has string keys: other keys are an error naming the key);
- a blob (``bytes``) is not encodable (imp: base64-encode it first) and neither is a function,
  class or instance: a ``TypeError`` naming the value's type and where it sits (``$.a[2]``);
- floats print as Squirrel prints them (``%g``, six significant digits: 32-bit floats, so
  ``20.1`` and not ``20.100000381469727``); non-finite floats are not JSON: an error;
- the default output puts a space after ``:`` and ``,`` and inside the brackets
  (``{ "a": 1, "b": [ 1, 2 ] }``); ``{compact = true}`` leaves all whitespace out;
- ``jsondecode`` gives tables, arrays, strings, integers (a number without a fraction or exponent
  that fits in 32 bits), floats (anything else), bools and null; bad JSON raises a
  ``ValueError`` naming the line and column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

INT_MIN, INT_MAX = -(2 ** 31), 2 ** 31 - 1


def format_float(value: float) -> str:
    """A float as Squirrel's ``tostring()`` prints it (``%g``)."""
    return f"{value:g}"


def _encode(value: Any, compact: bool, path: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"jsonencode: {path} is {value!r}, which JSON cannot represent")
        out.append(format_float(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"jsonencode: {path} is a blob (base64-encode it first)")
    elif isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        out.append("{" if compact else "{ ")
        first = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"jsonencode: {path} has a key of type {type(key).__name__} "
                                f"({key!r}); JSON keys are strings")
            if not first:
                out.append("," if compact else ", ")
            first = False
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":" if compact else ": ")
            _encode(item, compact, f"{path}.{key}", out)
        out.append("}" if compact else " }")
    elif isinstance(value, Sequence):
        if not value:
            out.append("[]")
            return
        out.append("[" if compact else "[ ")
        for index, item in enumerate(value):
            if index:
                out.append("," if compact else ", ")
            _encode(item, compact, f"{path}[{index}]", out)
        out.append("]" if compact else " ]")
    else:
        kind = getattr(value, "kind", None)  # a Squirrel value with no JSON form
        kind = f"a {kind}" if isinstance(kind, str) else \
            _FOREIGN_NAMES.get(type(value).__name__, type(value).__name__)
        raise TypeError(f"jsonencode: {path} is {kind}, which is not encodable (null, bool, "
                        "integer, float, string, array, table)")


# what the embedded VM's values are called in Squirrel (a blob is an instance there)
_FOREIGN_NAMES = {"SQInstance": "an instance (or blob)", "SQClosure": "a function",
                  "SQNativeClosure": "a function", "SQClass": "a class"}


class _NotPlain(Exception):
    """`_encode_plain` met something only `_encode` handles (or reports with its path)."""


_quote = json.encoder.encode_basestring  # C; what json.dumps(s, ensure_ascii=False) writes


def _encode_plain(value: Any, compact: bool, out: list[str]) -> None:
    """`_encode` for plain Python values (dicts, lists, tuples - subclasses too, such as the
    translated code's tables and arrays - exact str, int, float, bool, None), with
    no path kept: the send path of a translated agent encodes a small table or two per
    message, and the general walk (ABC checks, a path string per item) was 6 us of it."""
    kind = type(value)
    if kind is str:
        out.append(_quote(value))
    elif kind is int:
        out.append(int.__repr__(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        comma = "," if compact else ", "
        out.append("{" if compact else "{ ")
        first = True
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            if first:
                first = False
            else:
                out.append(comma)
            out.append(_quote(key))
            out.append(":" if compact else ": ")
            _encode_plain(item, compact, out)
        out.append("}" if compact else " }")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        out.append("[" if compact else "[ ")
        for index, item in enumerate(value):
            if index:
                out.append("," if compact else ", ")
            _encode_plain(item, compact, out)
        out.append("]" if compact else " ]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is float and math.isfinite(value):
        out.append(format_float(value))
    else:
        raise _NotPlain


def jsonencode(value: Any, settings: Mapping[str, Any] | None = None) -> str:
    """``http.jsonencode(value[, {compact = bool}])``."""
    compact = False
    if settings is not None:
        if not isinstance(settings, Mapping):
            raise TypeError(f"jsonencode: settings must be a table, got {type(settings).__name__}")
        compact = bool(settings.get("compact", False))
    out: list[str] = []
    try:
        _encode_plain(value, compact, out)
    except (_NotPlain, RecursionError):
        out = []  # other mappings and sequences, or an error to report with its path
        _encode(value, compact, "$", out)
    return "".join(out)


def _decode_int(text: str) -> int | float:
    number = int(text)
    if INT_MIN <= number <= INT_MAX:
        return number
    return float(number)  # imp's integers are 32-bit: a bigger one becomes a float


def jsondecode(text: str) -> Any:
    """``http.jsondecode(text)``: tables are dicts, arrays lists (the engines convert them)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8")
    if not isinstance(text, str):
        raise TypeError(f"jsondecode: expected a string, got {type(text).__name__}")
    try:
        return json.loads(text, parse_int=_decode_int, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"jsondecode: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)
