"""The Squirrel 3 lexer: source text to tokens (with positions) and comments, a pure function.

It follows the reference lexer (sqlexer.cpp, Squirrel 3.0.5) where behaviour is observable:

- ``//`` and ``#`` comment to the end of the line, ``/* */`` does not nest; a line break inside a
  block comment does *not* end a statement (the reference lexer does not report it either).
- ``"..."`` strings take the escapes ``\\t \\a \\b \\n \\r \\v \\f \\0 \\\\ \\" \\'`` and ``\\xH..``
  (up to 4 hex digits, the character is the low byte); a raw line break inside one is an error.
- ``@"..."`` verbatim strings span lines, take no escapes and write ``"`` as ``""``.
- ``'a'`` is the integer code of one character (escapes allowed).
- Integers: decimal, ``0x`` hex (at most 8 digits; ``0x`` alone is 0), ``0`` + octal digits. Their
  value is what the VM stores: wrapped to a signed 32-bit integer (``0xFFFFFFFF`` is -1).
- Floats: ``1.5``, ``3.``, ``1e3``, ``2.5E-4``; like the reference lexer, digits, dots and
  exponents run on (``1.5.x`` is the float ``1.5.`` and the name ``x``, an error to the parser).
- ``</`` and ``/>`` are always the attribute brackets, exactly as in the reference lexer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bridge.squirrel.errors import SquirrelSyntaxError
from bridge.squirrel.tokens import (
    EOF,
    FLOAT,
    IDENT,
    INT,
    KEYWORDS,
    OPERATORS,
    STRING,
    Comment,
    Token,
)

_OPERATOR_PATTERN = "|".join(re.escape(op) for op in OPERATORS)
_MASTER = re.compile(
    r"""
     (?P<ws>[ \t\f\v]+)
    |(?P<nl>\r\n|\n|\r)
    |(?P<line_comment>//[^\r\n]*)
    |(?P<hash_comment>\#[^\r\n]*)
    |(?P<block_comment>/\*.*?\*/)
    |(?P<verbatim>@"(?:[^"]|"")*")
    |(?P<string>"(?:[^"\\\r\n]|\\[^\r\n])*")
    |(?P<char>'(?:[^'\\\r\n]|\\[^\r\n])*')
    |(?P<hex>0[xX][0-9a-fA-F]*)
    |(?P<octal>0[0-7]+)
    |(?P<number>[0-9](?:[0-9.]|[eE][+-]?(?=[0-9]))*)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<bad>/\*|@"|\.\.(?!\.))
    |(?P<op>""" + _OPERATOR_PATTERN + r""")
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"t": "\t", "a": "\a", "b": "\b", "n": "\n", "r": "\r", "v": "\v", "f": "\f",
            "0": "\0", "\\": "\\", '"': '"', "'": "'"}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,4}|.)", re.DOTALL)
_REQUIRE = re.compile(r"#require\b")
# What strtod() takes from the front of a number's text (the VM reads `1.5.` whole, then
# converts the longest valid prefix: 1.5)
_FLOAT_PREFIX = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")


def wrap32(value: int) -> int:
    """``value`` as a signed 32-bit integer (two's complement wrap), as imp's VM stores it."""
    value &= 0xFFFFFFFF
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


@dataclass(slots=True)
class Lexed:
    """The tokens (ending with one ``EOF``) and the comments of a source file."""

    tokens: list[Token]
    comments: list[Comment]


class _Lexer:
    def __init__(self, source: str, file: str) -> None:
        self.source = source
        self.file = file
        self.line = 1
        self.line_start = 0  # offset of the current line's first character

    def error(self, pos: int, message: str) -> SquirrelSyntaxError:
        return SquirrelSyntaxError(self.file, self.line, pos - self.line_start + 1, message)

    def advance_lines(self, text: str, start: int) -> None:
        """Account for the line breaks inside a multi-line token starting at ``start``."""
        breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
        if breaks:
            self.line += breaks
            last = max(text.rfind("\n"), text.rfind("\r"))
            self.line_start = start + last + 1

    def decode(self, body: str, pos: int) -> str:
        def replace(match: re.Match[str]) -> str:
            escape = match.group(1)
            if escape[0] == "x" and len(escape) > 1:
                return chr(int(escape[1:], 16) & 0xFF)
            if escape in _ESCAPES:
                return _ESCAPES[escape]
            if escape == "x":
                raise self.error(pos + match.start(), "hexadecimal number expected")
            raise self.error(pos + match.start(), f"unrecognised escape char '\\{escape}'")

        return _ESCAPE.sub(replace, body) if "\\" in body else body

    def run(self) -> Lexed:
        source = self.source
        tokens: list[Token] = []
        comments: list[Comment] = []
        append = tokens.append
        newline = False
        last_token_line = 0
        pos = 1 if source.startswith("\ufeff") else 0  # a UTF-8 byte order mark
        self.line_start = pos
        end = len(source)
        match_at = _MASTER.match
        while pos < end:
            match = match_at(source, pos)
            if match is None:
                raise self.unlexable(pos)
            kind = match.lastgroup
            text = match.group()
            column = pos - self.line_start + 1
            if kind == "ws":
                pass
            elif kind == "bad":
                raise self.unlexable(pos)
            elif kind == "nl":
                newline = True
                self.line += 1
                self.line_start = match.end()
            elif kind == "ident":
                append(Token(text if text in KEYWORDS else IDENT, text, self.line, column,
                             newline, text))
                newline = False
                last_token_line = self.line
            elif kind == "op":
                append(Token(text, None, self.line, column, newline, text))
                newline = False
                last_token_line = self.line
            elif kind in ("line_comment", "hash_comment", "block_comment"):
                own_line = last_token_line != self.line
                start_line = self.line
                if kind == "block_comment":
                    style, body = "/*", text[2:-2]
                    self.advance_lines(text, pos)
                elif kind == "line_comment":
                    style, body = "//", text[2:]
                elif _REQUIRE.match(text):
                    style, body = "#require", text[len("#require"):].strip()
                else:
                    style, body = "#", text[1:]
                comments.append(Comment(style, body, start_line, column, self.line, own_line))
            else:
                token = self.literal(kind, match, pos, column, newline)
                append(token)
                newline = False
                last_token_line = self.line
                if kind == "verbatim":
                    self.advance_lines(text, pos)
            pos = match.end()
        tokens.append(Token(EOF, None, self.line, end - self.line_start + 1, newline, ""))
        return Lexed(tokens, comments)

    def literal(self, kind: str | None, match: re.Match[str], pos: int, column: int,
                newline: bool) -> Token:
        text = match.group()
        line = self.line
        after = match.end()
        if kind == "string":
            return Token(STRING, self.decode(text[1:-1], pos + 1), line, column, newline, text)
        if kind == "verbatim":
            return Token(STRING, text[2:-1].replace('""', '"'), line, column, newline, text)
        if kind == "char":
            value = self.decode(text[1:-1], pos + 1)
            if not value:
                raise self.error(pos, "empty constant")
            if len(value) > 1:
                raise self.error(pos, "constant too long")
            return Token(INT, ord(value), line, column, newline, text)
        if kind == "hex":
            digits = text[2:]
            if len(digits) > 8:
                raise self.error(pos, "too many digits for an Hex number")
            return Token(INT, wrap32(int(digits, 16)) if digits else 0, line, column, newline,
                         text)
        if kind == "octal":
            if after < len(self.source) and self.source[after].isdigit():
                raise self.error(pos, "invalid octal number")
            return Token(INT, wrap32(int(text, 8)), line, column, newline, text)
        # decimal integer or float, read as the reference lexer does: digits, dots and
        # exponents in any order ("1.5." is one token), valued by its longest float prefix
        if after < len(self.source) and self.source[after] in "eE":
            raise self.error(after, "exponent expected")
        if "." in text or "e" in text or "E" in text:
            prefix = _FLOAT_PREFIX.match(text)
            assert prefix is not None  # the token starts with a digit
            return Token(FLOAT, float(prefix.group()), line, column, newline, text)
        return Token(INT, wrap32(int(text)), line, column, newline, text)

    def unlexable(self, pos: int) -> SquirrelSyntaxError:
        source = self.source
        rest = source[pos:pos + 2]
        if rest == "/*":
            return self.error(pos, "missing '*/' in comment")
        if rest == '@"':
            return self.error(pos, "unfinished verbatim string")
        if rest[:1] in ('"', "'"):
            stop = source.find("\n", pos)
            closing = source.find(rest[0], pos + 1)
            if stop != -1 and (closing == -1 or closing > stop):
                return self.error(pos, "newline in a constant")
            return self.error(pos, "unfinished string")
        if rest == "..":
            return self.error(pos, "invalid token '..'")
        return self.error(pos, f"unexpected character {source[pos]!r}")


def lex(source: str, file: str = "<string>") -> Lexed:
    """Tokens and comments of ``source``; SquirrelSyntaxError (file:line:column) when it cannot."""
    return _Lexer(source, file).run()


def tokenize(source: str, file: str = "<string>") -> list[Token]:
    """The tokens of ``source`` only (ending with ``EOF``)."""
    return _Lexer(source, file).run().tokens


__all__ = ["Lexed", "lex", "tokenize", "wrap32"]
