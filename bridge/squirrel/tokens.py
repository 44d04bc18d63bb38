"""Token kinds of Squirrel 3, as the reference lexer (sqlexer.cpp of 3.0.5) produces them.

A token's ``kind`` is the keyword or operator text itself (``"local"``, ``"<=>"``, ``"::"``) or one
of the class names ``IDENT``, ``INT``, ``FLOAT``, ``STRING``, ``EOF``.
"""

from __future__ import annotations

from dataclasses import dataclass

IDENT = "IDENT"
INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"
EOF = "EOF"

KEYWORDS: frozenset[str] = frozenset({
    "base", "break", "case", "catch", "class", "clone", "continue", "const", "default", "delete",
    "do",
    "else", "enum", "extends", "for", "foreach", "function", "if", "in", "local", "null",
    "resume", "return", "switch", "this", "throw", "try", "typeof", "while", "yield",
    "constructor", "instanceof", "true", "false", "static",
})

# Longest first: the lexer tries them in this order at each position.
OPERATORS: tuple[str, ...] = (
    "<=>", ">>>", "...",
    "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "+=", "-=", "*=", "/=", "%=", "++", "--",
    "<-", "::", "</", "/>",
    "+", "-", "*", "/", "%", "=", "<", ">", "!", "~", "&", "|", "^", "?", ":", ".", ",", ";",
    "(", ")", "[", "]", "{", "}", "@",
)


@dataclass(slots=True, frozen=True)
class Token:
    """One token. ``value``: the int/float of a number, the decoded text of a string or the name of
    an identifier (None otherwise); ``newline_before``: a line break separates it from the previous
    token, which ends a statement in Squirrel when no ``;`` does."""

    kind: str
    value: object
    line: int
    column: int
    newline_before: bool = False
    text: str = ""

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind == EOF:
            return "end of file"
        if self.kind in (IDENT, INT, FLOAT):
            return f"{self.kind.lower()} {self.text!r}" if self.kind != IDENT else repr(self.text)
        if self.kind == STRING:
            return "string literal"
        return repr(self.kind)


@dataclass(slots=True, frozen=True)
class Comment:
    """A comment kept for the translator. ``style``: ``//``, ``/*``, ``#`` or ``#require`` (imp's
    directive, a comment to the VM). ``text`` excludes the markers; ``end_line`` is the last line
    it covers. ``own_line``: nothing but blanks precede it on its line."""

    style: str
    text: str
    line: int
    column: int
    end_line: int
    own_line: bool


__all__ = ["EOF", "FLOAT", "IDENT", "INT", "KEYWORDS", "OPERATORS", "STRING", "Comment", "Token"]
