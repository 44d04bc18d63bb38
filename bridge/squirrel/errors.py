"""Errors about Squirrel source: each names the ``.nut`` file, line and column it is about.

Their text always starts with ``file:line:column:`` (or ``file:line:`` when no column applies) so
editors and CI logs can jump to the spot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bridge.errors import BridgeError


def where(file: str, line: int, column: int | None = None) -> str:
    """``file:line:column`` (``file:line`` without a column)."""
    return f"{file}:{line}" if column is None else f"{file}:{line}:{column}"


class SquirrelError(BridgeError):
    """Base class: something in a Squirrel source file, with its position."""

    def __init__(self, file: str, line: int, column: int | None, message: str) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{where(file, line, column)}: {message}")


class SquirrelSyntaxError(SquirrelError):
    """Not valid Squirrel 3 (lexer or parser); ``construct`` names what was being read."""

    def __init__(self, file: str, line: int, column: int, message: str,
                 construct: str | None = None) -> None:
        self.construct = construct
        text = f"{message} (in {construct})" if construct else message
        super().__init__(file, line, column, text)


class UnsupportedConstructError(SquirrelError):
    """Valid Squirrel the bridge cannot translate or provide (e.g. generators): never silently."""

    def __init__(self, file: str, line: int, column: int, construct: str, detail: str = "") -> None:
        self.construct = construct
        text = f"{construct} is not supported" + (f": {detail}" if detail else "")
        super().__init__(file, line, column, text)


class RequireError(SquirrelError):
    """A ``#require`` directive that is malformed, cannot be found, or forms a cycle."""

    def __init__(self, file: str, line: int, message: str,
                 searched: Sequence[Path] = ()) -> None:
        self.searched = list(searched)
        super().__init__(file, line, None, message)


__all__ = [
    "RequireError",
    "SquirrelError",
    "SquirrelSyntaxError",
    "UnsupportedConstructError",
    "where",
]
