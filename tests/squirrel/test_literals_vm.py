"""Literal values against the real VM: what the lexer/parser reads is what Squirrel 3.0.5
stores (integers wrapped to 32 bits; floats compared after the VM's 32-bit rounding, the AST
keeping the literal's exact value)."""

from __future__ import annotations

import struct

import pytest

from bridge.squirrel import ast
from bridge.squirrel.parser import parse_expression

squirrel = pytest.importorskip("squirrel")

# (A NUL inside a string is left out: the binding hands strings back cut at the first NUL.)
LITERALS = [
    "0", "1", "42", "2147483647", "2147483648", "4294967295", "4294967296", "9999999999999",
    "0x0", "0x7fffffff", "0x80000000", "0xFFFFFFFF", "0xdeadBEEF", "0x", "07", "010", "0777",
    "08", "09", "'a'", "'\\n'", "'\\x41'", "'\\x4142'", "'\\''", "'\\\\'", "'\\0'",
    "-1", "-2147483648", "-0x10", "-'a'",
    "1.5", "3.", "0.1", "1e3", "2.5E-4", "1e+2", "1.2.3", "1e3.5", "-1.5", "123456789.0",
    '"plain"', '""', '"a\\tb\\nc"', '"\\"q\\""', '"\\x41\\x4142"', '"\\a\\b\\v\\f\\r"',
    '@"verbatim \\n"', '@"a""b"', '@"two\nlines"',
]


def f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


@pytest.mark.parametrize("literal", LITERALS)
def test_literal_value_matches_the_vm(literal: str) -> None:
    expected = squirrel.SQVM().execute("return " + literal)
    node = parse_expression(literal, "lit.nut")
    if isinstance(node, ast.Float):
        assert isinstance(expected, float) and f32(node.value) == expected
    elif isinstance(node, ast.Integer):
        assert type(expected) is int and node.value == expected
    else:
        assert isinstance(node, ast.String) and node.value == expected
