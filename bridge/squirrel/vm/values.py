"""Values across the VM boundary, as pure functions.

The binding (``squirrel-lang-sq305``) converts only scalars faithfully: a Python ``bool``
reaches Squirrel as an integer, an ``int`` past 32 bits as 0, ``bytes`` stop at the first NUL,
and a ``dict`` / ``list`` becomes opaque userdata. So values going *into* the VM travel as the
marker strings the prelude understands (see `bridge.squirrel.vm.prelude`): tables, arrays and
bools as a Squirrel literal to evaluate, bytes as hex for a blob. Values coming *out* are
`SQTable` / `SQArray` proxies, turned into dicts and lists here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import squirrel

ERROR_MARK = "\x01E"
BLOB_MARK = "\x01B"
LITERAL_MARK = "\x01S"

_SQTable = squirrel.SQTable
_SQArray = squirrel.SQArray


def wrap32(value: int) -> int:
    """A Python int as the VM's signed 32-bit integer (two's complement wrap, as imp did)."""
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value & 0x80000000 else value


def _string_literal(text: str | bytes | bytearray) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    out = ['"']
    for byte in data:
        if byte == 0x22:
            out.append('\\"')
        elif byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F or (byte >= 0x80 and isinstance(text, str)):
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:04x}")  # the lexer reads up to four hex digits
    out.append('"')
    joined = "".join(out)
    if isinstance(text, str):
        # UTF-8 bytes above 0x7F were appended one by one as latin-1 characters: restore them
        return joined.encode("latin-1").decode("utf-8")
    return joined


def literal(value: Any) -> str:
    """*value* as Squirrel source that evaluates to it (dict: table, list: array, bytes: a
    string of those bytes)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        number = wrap32(value)
        return "(-2147483647-1)" if number == -(2 ** 31) else str(number)
    if isinstance(value, float):
        if value != value:
            return "(0.0/0.0)"
        if value in (float("inf"), float("-inf")):
            return "(1e38*1e38)" if value > 0 else "(-1e38*1e38)"
        text = repr(value)
        return text if any(c in text for c in ".e") else text + ".0"
    if isinstance(value, str | bytes | bytearray):
        return _string_literal(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"[{literal(str(k))}]={literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(literal(v) for v in value) + "]"
    raise TypeError(f"cannot hand a {type(value).__name__} to Squirrel code")


def to_squirrel(value: Any) -> Any:
    """A native's result as the VM should get it (marker strings where the binding is lossy)."""
    kind = type(value)
    if value is None or kind is float:
        return value
    if kind is str:
        return LITERAL_MARK + literal(value) if value.startswith("\x01") else value
    if kind is bool:
        return LITERAL_MARK + ("true" if value else "false")
    if kind is int:
        return wrap32(value)
    if kind is bytes or kind is bytearray:
        return BLOB_MARK + bytes(value).hex()
    if isinstance(value, Mapping | list | tuple):
        return LITERAL_MARK + literal(value)
    return value  # a handle: opaque userdata to Squirrel, only passed back to natives


TABLE_MARK, ARRAY_MARK, ESCAPED_MARK, FOREIGN_MARK = "\x01T", "\x01A", "\x01S", "\x01X"


class Foreign:
    """A Squirrel value with no Python counterpart (a function, class, instance ...), by its
    ``typeof`` name, so codecs can name it in their errors."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<squirrel {self.kind}>"


def from_tokens(tokens: Sequence[Any], start: int = 0) -> tuple[Any, int]:
    """Rebuild a value the prelude's ``__flat`` spread over call arguments; (value, next)."""
    token = tokens[start]
    if type(token) is not str or not token.startswith("\x01"):
        return token, start + 1
    mark = token[:2]
    if mark == TABLE_MARK:
        table: dict[Any, Any] = {}
        position = start + 2
        for _ in range(tokens[start + 1]):
            key, position = from_tokens(tokens, position)
            table[key], position = from_tokens(tokens, position)
        return table, position
    if mark == ARRAY_MARK:
        items = []
        position = start + 2
        for _ in range(tokens[start + 1]):
            item, position = from_tokens(tokens, position)
            items.append(item)
        return items, position
    if mark == BLOB_MARK:
        return bytes.fromhex(token[2:]), start + 1
    if mark == ESCAPED_MARK:
        return token[2:], start + 1
    if mark == FOREIGN_MARK:
        return Foreign(token[2:]), start + 1
    return token, start + 1


def to_python(value: Any) -> Any:
    """A value from the VM as plain Python: tables to dicts, arrays to lists, a blob marker to
    bytes."""
    kind = type(value)
    if kind is str:
        return bytes.fromhex(value[2:]) if value.startswith(BLOB_MARK) else value
    if kind is _SQTable:
        # (a VM table proxy: it iterates only through keys())
        return {key: to_python(value[key]) for key in value.keys()}  # noqa: SIM118
    if kind is _SQArray:
        return [to_python(item) for item in value]
    return value
