"""The lexer: table-driven cases for every token class, positions, comments and errors."""

from __future__ import annotations

import pytest

from bridge.squirrel.errors import SquirrelSyntaxError
from bridge.squirrel.lexer import lex, tokenize, wrap32
from bridge.squirrel.tokens import EOF, FLOAT, IDENT, INT, KEYWORDS, OPERATORS, STRING


def kinds_values(source: str) -> list[tuple[str, object]]:
    return [(t.kind, t.value) for t in tokenize(source, "t.nut")[:-1]]


LITERALS = [
    ("42", [(INT, 42)]),
    ("0", [(INT, 0)]),
    ("0x1F", [(INT, 31)]),
    ("0XfF", [(INT, 255)]),
    ("0x", [(INT, 0)]),
    ("0xFFFFFFFF", [(INT, -1)]),
    ("0x80000000", [(INT, -2147483648)]),
    ("010", [(INT, 8)]),
    ("08", [(INT, 8)]),
    ("2147483648", [(INT, -2147483648)]),
    ("4294967296", [(INT, 0)]),
    ("1.5", [(FLOAT, 1.5)]),
    ("3.", [(FLOAT, 3.0)]),
    ("1e3", [(FLOAT, 1000.0)]),
    ("2.5E-4", [(FLOAT, 2.5e-4)]),
    ("1e+2", [(FLOAT, 100.0)]),
    ("'a'", [(INT, 97)]),
    (r"'\n'", [(INT, 10)]),
    (r"'\''", [(INT, 39)]),
    (r"'\x41'", [(INT, 65)]),
    ('"plain"', [(STRING, "plain")]),
    ('""', [(STRING, "")]),
    (r'"a\tb\nc\\d\"e\'f\0"', [(STRING, "a\tb\nc\\d\"e'f\0")]),
    (r'"\a\b\v\f\r"', [(STRING, "\a\b\v\f\r")]),
    (r'"\x41\x4142"', [(STRING, "AB")]),
    ('@"verbatim \\n ""quoted"""', [(STRING, 'verbatim \\n "quoted"')]),
    ('@"two\nlines"', [(STRING, "two\nlines")]),
    ("name _x x1 __LINE__", [(IDENT, "name"), (IDENT, "_x"), (IDENT, "x1"), (IDENT, "__LINE__")]),
    ("1.5.x", [(FLOAT, 1.5), (IDENT, "x")]),  # the reference lexer reads "1.5." whole
    ("1.2.3", [(FLOAT, 1.2)]),
    ("1e3.5", [(FLOAT, 1000.0)]),
    ("a.b", [(IDENT, "a"), (".", None), (IDENT, "b")]),
]


@pytest.mark.parametrize(("source", "expected"), LITERALS)
def test_literals(source: str, expected: list[tuple[str, object]]) -> None:
    assert kinds_values(source) == expected


@pytest.mark.parametrize("word", sorted(KEYWORDS))
def test_keywords(word: str) -> None:
    assert kinds_values(word) == [(word, word)]


@pytest.mark.parametrize("op", OPERATORS)
def test_every_operator_alone(op: str) -> None:
    assert [t.kind for t in tokenize(op)[:-1]] == [op]


OPERATOR_RUNS = [
    ("a<=>b", ["IDENT", "<=>", "IDENT"]),
    ("a<=b", ["IDENT", "<=", "IDENT"]),
    ("a>>>=b", ["IDENT", ">>>", "=", "IDENT"]),
    ("a>>b", ["IDENT", ">>", "IDENT"]),
    ("x<-1", ["IDENT", "<-", "INT"]),
    ("x < -1", ["IDENT", "<", "-", "INT"]),
    ("::a", ["::", "IDENT"]),
    ("a?b:c", ["IDENT", "?", "IDENT", ":", "IDENT"]),
    ("i++ + ++j", ["IDENT", "++", "+", "++", "IDENT"]),
    ("i---j", ["IDENT", "--", "-", "IDENT"]),
    ("@(a) a", ["@", "(", "IDENT", ")", "IDENT"]),
    ("function(...)", ["function", "(", "...", ")"]),
    ("</ a = 1 />", ["</", "IDENT", "=", "INT", "/>"]),
    ("a/=2", ["IDENT", "/=", "INT"]),
    ("!a != b", ["!", "IDENT", "!=", "IDENT"]),
    ("a&&b||c&d|e^~f", ["IDENT", "&&", "IDENT", "||", "IDENT", "&", "IDENT", "|", "IDENT", "^",
                         "~", "IDENT"]),
]


@pytest.mark.parametrize(("source", "expected"), OPERATOR_RUNS)
def test_operator_runs(source: str, expected: list[str]) -> None:
    assert [t.kind for t in tokenize(source)[:-1]] == expected


def test_positions_and_newlines() -> None:
    tokens = tokenize("local a = 1\n  b <- 2 /* x\n y */ c\r\nd", "p.nut")
    table = [(t.kind, t.line, t.column, t.newline_before) for t in tokens]
    assert table == [
        ("local", 1, 1, False), (IDENT, 1, 7, False), ("=", 1, 9, False), (INT, 1, 11, False),
        (IDENT, 2, 3, True), ("<-", 2, 5, False), (INT, 2, 8, False),
        (IDENT, 3, 7, False),  # a line break inside /* */ does not end a statement
        (IDENT, 4, 1, True), (EOF, 4, 2, False),
    ]


def test_verbatim_string_advances_lines() -> None:
    tokens = tokenize('x = @"a\nb\nc" y')
    assert (tokens[-2].kind, tokens[-2].line, tokens[-2].column) == (IDENT, 3, 4)


COMMENTS = [
    ("// one\nx", [("//", " one", 1, 1, True)]),
    ("x # hash", [("#", " hash", 1, 3, False)]),
    ('#require "A.nut:1.0.0"\n', [("#require", '"A.nut:1.0.0"', 1, 1, True)]),
    ("/* a\nb */ x", [("/*", " a\nb ", 1, 1, True)]),
    ("x /* ** / */", [("/*", " ** / ", 1, 3, False)]),
]


@pytest.mark.parametrize(("source", "expected"), COMMENTS)
def test_comments(source: str, expected: list[tuple[str, str, int, int, bool]]) -> None:
    comments = lex(source).comments
    assert [(c.style, c.text, c.line, c.column, c.own_line) for c in comments] == expected


def test_comment_text_is_not_tokens() -> None:
    assert kinds_values("a // b c\n/* d */ # e\n") == [(IDENT, "a")]


ERRORS = [
    ('"abc', 1, 1, "unfinished string"),
    ('x = "ab\nc"', 1, 5, "newline in a constant"),
    (r'"\q"', 1, 2, "unrecognised escape char"),
    (r'"\x"', 1, 2, "hexadecimal number expected"),
    ("a /* never closed", 1, 3, "missing '*/' in comment"),
    ('@"open', 1, 1, "unfinished verbatim string"),
    ("''", 1, 1, "empty constant"),
    ("'ab'", 1, 1, "constant too long"),
    ("0x123456789", 1, 1, "too many digits"),
    ("018", 1, 1, "invalid octal number"),
    ("1e", 1, 2, "exponent expected"),
    ("a..b", 1, 2, "invalid token '..'"),
    ("\n  a $ b", 2, 5, "unexpected character '$'"),
]


@pytest.mark.parametrize(("source", "line", "column", "needle"), ERRORS)
def test_errors(source: str, line: int, column: int, needle: str) -> None:
    with pytest.raises(SquirrelSyntaxError) as info:
        tokenize(source, "bad.nut")
    assert str(info.value).startswith(f"bad.nut:{line}:{column}: ")
    assert needle in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0), (2**31 - 1, 2**31 - 1), (2**31, -(2**31)), (2**32 - 1, -1), (2**32, 0), (-1, -1),
    (-(2**31) - 1, 2**31 - 1),
])
def test_wrap32(value: int, expected: int) -> None:
    assert wrap32(value) == expected


def test_byte_order_mark_is_skipped() -> None:
    tokens = tokenize("\ufefflocal a", "bom.nut")
    assert [(t.kind, t.line, t.column) for t in tokens[:2]] == [("local", 1, 1), (IDENT, 1, 7)]
