"""Squirrel's ``regexp`` class: its syntax (sqstdrex) compiled to Python's ``re``.

Squirrel's classes differ from Python's: ``\\a`` letters, ``\\l``/``\\u`` lower/upper case,
``\\x`` hex digits, ``\\p`` punctuation, ``\\c`` control characters; ``match`` is a whole-string
match; ``search``/``capture`` give ``{begin, end}`` tables (``end`` exclusive) or null.
"""

from __future__ import annotations

import re
import string

from bridge.squirrel.runtime.values import Array, SquirrelError, Table

_CLASSES = {
    "a": "A-Za-z", "A": "^A-Za-z",
    "l": "a-z", "L": "^a-z",
    "u": "A-Z", "U": "^A-Z",
    "x": "0-9A-Fa-f", "X": "^0-9A-Fa-f",
    "p": re.escape(string.punctuation), "P": "^" + re.escape(string.punctuation),
    "c": "\\x00-\\x1f\\x7f", "C": "^\\x00-\\x1f\\x7f",
}
_SIMPLE = {"d", "D", "w", "W", "s", "S", "b", "B"}
_ESCAPES = {"n": "\\n", "t": "\\t", "r": "\\r", "f": "\\f", "v": "\\v"}


def to_python(pattern: str) -> str:
    """The Python ``re`` pattern for a Squirrel regexp pattern."""
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            i += 2
            if nxt in _CLASSES:
                body = _CLASSES[nxt]
                if in_class:
                    if body.startswith("^"):
                        raise SquirrelError(f"regexp: negated class \\{nxt} inside [...]")
                    out.append(body)
                else:
                    out.append("[" + body + "]")
            elif nxt in _SIMPLE:
                out.append("\\" + nxt)
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                out.append(re.escape(nxt))
            continue
        if ch == "[":
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        elif ch == "(" and pattern.startswith("(?:", i):
            out.append("(?:")
            i += 3
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class regexp:
    """``regexp(pattern)``."""

    def __init__(self, pattern: str) -> None:
        try:
            self._re = re.compile(to_python(pattern))
        except re.error as exc:
            raise SquirrelError(f"invalid regexp {pattern!r}: {exc}") from None
        self.pattern = pattern

    def match(self, text: str) -> bool:
        return self._re.fullmatch(text) is not None

    def search(self, text: str, start: int = 0) -> Table | None:
        found = self._re.search(text, start)
        return None if found is None else Table({"begin": found.start(), "end": found.end()})

    def capture(self, text: str, start: int = 0) -> Array | None:
        found = self._re.search(text, start)
        if found is None:
            return None
        groups = Array([Table({"begin": found.start(), "end": found.end()})])
        for n in range(1, self._re.groups + 1):
            groups.append(Table({"begin": found.start(n), "end": found.end(n)}))
        return groups

    def subexpcount(self) -> int:
        return self._re.groups + 1

    def _typeof(self) -> str:
        return "instance"


__all__ = ["regexp", "to_python"]
