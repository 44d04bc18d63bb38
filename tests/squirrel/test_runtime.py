"""The runtime's Squirrel semantics, table-driven (each row checked against the real VM when the
corpus was recorded; here they pin the rules without it)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bridge.squirrel import runtime as sq

NAN = float("nan")

CASES: list[tuple[str, Any, tuple[Any, ...], Any]] = [
    # integers: 32-bit, wrapping, C division
    ("add wraps", sq.add, (2**31 - 1, 1), -2**31),
    ("sub wraps", sq.sub, (-2**31, 1), 2**31 - 1),
    ("mul wraps", sq.mul, (65536, 65536), 0),
    ("div truncates", sq.div, (-7, 2), -3),
    ("mod keeps the dividend's sign", sq.mod, (-7, 3), -1),
    ("mod by a negative", sq.mod, (7, -3), 1),
    ("shl counts modulo 32", sq.shl, (1, 33), 2),
    ("shr is arithmetic", sq.shr, (-8, 1), -4),
    ("ushr is logical", sq.ushr, (-8, 1), 2147483644),
    ("inc wraps", sq.inc, (2**31 - 1,), -2**31),
    ("neg of INT_MIN", sq.neg, (-2**31,), -2**31),
    # floats: 32-bit
    ("1/3 as float32", sq.div, (1.0, 3), 0.3333333432674408),
    ("0.1 + 0.2 as float32", sq.add, (sq.f32(0.1), sq.f32(0.2)), 0.30000001192092896),
    ("an int mixed with a float is rounded first", sq.mod, (16777217, 1.5), 1.0),
    ("float division by zero", sq.div, (1.0, 0), math.inf),
    # concatenation and text
    ("string + int", sq.add, ("a", 1), "a1"),
    ("int + string", sq.add, (1, "a"), "1a"),
    ("string + float", sq.add, ("f", sq.f32(0.1)), "f0.1"),
    ("string + bool", sq.add, ("", True), "true"),
    ("string + null", sq.add, ("n", None), "n(null : 0x(nil))"),
    ("chain", sq.add, (1, 2, "x", 3), "3x3"),
    ("big float text", sq.tostring, (1e20,), "1e+20"),
    ("float text", sq.tostring, (1234567.0,), "1.23457e+06"),
    # truth, equality, ordering
    ("0 is false", sq.truth, (0,), False),
    ("0.0 is false", sq.truth, (0.0,), False),
    ("empty string is true", sq.truth, ("",), True),
    ("empty table is true", sq.truth, (sq.Table(),), True),
    ("0 == false is false", sq.eq, (0, False), False),
    ("1 == 1.0", sq.eq, (1, 1.0), True),
    ("tables by identity", sq.eq, (sq.Table(), sq.Table()), False),
    ("null below numbers", sq.lt, (None, -5), True),
    ("strings: strcmp difference", sq.cmp, ("", "i"), -105),
    ("ints: -1/0/1", sq.cmp, (10, 3), 1),
    # typeof
    ("typeof integer", sq.typeof, (1,), "integer"),
    ("typeof float", sq.typeof, (1.0,), "float"),
    ("typeof table", sq.typeof, ({},), "table"),
    ("typeof array", sq.typeof, ([],), "array"),
    ("typeof blob", sq.typeof, (b"x",), "blob"),
    ("typeof null", sq.typeof, (None,), "null"),
    # string methods
    ("tointeger of a prefix", sq.tointeger, ("12abc",), 12),
    ("tointeger through strtod", sq.tointeger, ("1e3",), 1000),
    ("tointeger wraps", sq.tointeger, ("9999999999",), 1410065407),
    ("tofloat", sq.tofloat, ("2.5e1x",), 25.0),
    ("slice negative", sq.slice_, ("abcdef", 1, -1), "bcde"),
    ("find missing is null", sq.find, ("abc", "z"), None),
    ("string index is a char code", sq.index, ("ab", 1), 98),
    ("format", sq.format, ("%5.2f|%-4d|%04d|%x", 3.14159, 7, 42, 255), " 3.14|7   |0042|ff"),
    ("format %d of a float", sq.format, ("%d", 3.7), "3"),
    ("split drops empty pieces", sq.split, ("a,b,,c", ","), ["a", "b", "c"]),
    ("strip", sq.strip, (" \t x \n",), "x"),
]


@pytest.mark.parametrize(("fn", "args", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_runtime_rule(fn: Any, args: tuple[Any, ...], expected: Any) -> None:
    result = fn(*args)
    if isinstance(expected, list):
        assert list(result) == expected
    else:
        assert result == expected and type(result) is type(expected)


ERRORS: list[tuple[str, Any, tuple[Any, ...], str]] = [
    ("integer division by zero", sq.div, (1, 0), "division by zero"),
    ("arith on null", sq.add, (1, None), "arith op + on between 'integer' and 'null'"),
    ("compare string and int", sq.lt, (1, "a"), "comparison between '1' and 'a'"),
    ("negate a string", sq.neg, ("a",), "attempt to negate a string"),
    ("bitwise on a float", sq.bitand, (1, 1.5), "bitwise op between 'integer' and 'float'"),
    ("missing slot", sq.index, (sq.Table(), "x"), "the index 'x' does not exist"),
    ("array out of range", sq.index, (sq.Array([1]), 5), "the index '5' does not exist"),
    ("= on a missing slot", sq.set_index, (sq.Table(), "x", 1), "the index 'x' does not exist"),
    ("slice out of range", sq.slice_, ("", 0, 1), "slice out of range"),
    ("slice wrong indexes", sq.slice_, ("abc", 2, 1), "wrong indexes"),
    ("tointeger of text", sq.tointeger, ("abc",), "cannot convert the string"),
    ("format %s of an int", sq.format, ("%s", 5), "string expected for the specified format"),
]


@pytest.mark.parametrize(("fn", "args", "message"), [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_runtime_error(fn: Any, args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(sq.SquirrelError) as info:
        fn(*args)
    assert str(info.value) == message
    assert sq.caught(info.value) == message


def test_class_slots_follow_squirrel() -> None:
    class Counter(sq.Instance):
        _sq_members = ("n", "LIMIT")
        _sq_statics = ("LIMIT",)
        n = 0
        LIMIT = 3

    with pytest.raises(sq.SquirrelError, match="trying to set 'class'"):
        Counter.n = 1
    sq.newslot(Counter, "extra", 1)
    c = Counter()
    c.n = 2
    with pytest.raises(sq.SquirrelError, match="the index 'LIMIT' does not exist"):
        c.LIMIT = 4
    with pytest.raises(sq.SquirrelError, match="already been instantiated"):
        sq.newslot(Counter, "late", 1)
    assert (c.n, Counter.n, c.extra) == (2, 0, 1)


def test_nan_text_keeps_the_sign_the_vm_prints() -> None:
    assert sq.tostring(sq.mod(0.0, 0)) == "-nan"
    assert math.isnan(sq.div(0.0, 0))
    _ = NAN
