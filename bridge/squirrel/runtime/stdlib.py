"""Squirrel's global built-ins: ``format``, ``split``, ``strip``, ``array``, ``math``, ``time``,
``date``, ``clock``, ``print``, ``assert``, ``getroottable``; regexp and blob live in their own
modules."""

from __future__ import annotations

import math as _math
import random
import re
import sys
import time as _time
from typing import Any

from bridge.squirrel.runtime.ops import f32, i32, print_text, typeof
from bridge.squirrel.runtime.values import Array, SquirrelError, Table

_SPEC = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d+|\*))?([diouxXeEfgGcs%])")


def format(fmt: str, *args: Any) -> str:
    """C ``printf`` formatting as Squirrel's ``format`` does it (``%s`` needs a string, ``%d``
    an integer or float)."""
    if type(fmt) is not str:
        raise SquirrelError("string expected for the format")
    out: list[str] = []
    pos = 0
    arg = 0
    for spec in _SPEC.finditer(fmt):
        out.append(fmt[pos:spec.start()])
        pos = spec.end()
        flags, width, precision, conv = spec.groups()
        if conv == "%":
            out.append("%")
            continue
        if arg >= len(args):
            raise SquirrelError("not enough parameters for the given format string")
        value = args[arg]
        arg += 1
        kind = type(value)
        if conv == "s":
            if kind is not str:
                raise SquirrelError("string expected for the specified format")
        elif conv in "dioxXuc":
            if kind is float:
                value = int(value)
            elif kind is not int:
                raise SquirrelError("integer expected for the specified format")
            if conv == "u":
                conv, value = "d", value & 0xFFFFFFFF
            elif conv in "xXo" and value < 0:
                value &= 0xFFFFFFFF
            elif conv == "c":
                value = chr(value & 0xFF)
                conv = "s"
        else:
            if kind is int:
                value = float(value)
            elif kind is not float:
                raise SquirrelError("float expected for the specified format")
        text = "%" + flags + (width or "") + ("." + precision if precision is not None else "")
        out.append((text + conv) % value)
    out.append(fmt[pos:])
    return "".join(out)


def split(text: str, separators: str) -> Array:
    """``split(str, separators)``: cut at any of the separator characters; empty pieces are
    dropped (as Squirrel 3.0's stdlib does)."""
    if type(text) is not str or type(separators) is not str:
        raise SquirrelError("split: string expected")
    if not separators:
        return Array([text]) if text else Array()
    pattern = "[" + re.escape(separators) + "]"
    return Array(piece for piece in re.split(pattern, text) if piece)


_BLANKS = " \t\n\r\f\v"


def strip(text: str) -> str:
    return text.strip(_BLANKS)


def lstrip(text: str) -> str:
    return text.lstrip(_BLANKS)


def rstrip(text: str) -> str:
    return text.rstrip(_BLANKS)


def array(size: int, fill: Any = None) -> Array:
    """``array(size[, fill])``."""
    if type(size) is not int or size < 0:
        raise SquirrelError("array: size must be a non-negative integer")
    return Array([fill] * size)


def time() -> int:
    """Seconds since the epoch (an integer)."""
    return int(_time.time())


def clock() -> float:
    """Processor time in seconds (a float)."""
    return f32(_time.process_time())


def date(when: int | None = None, kind: str = "l") -> Table:
    """``date([time[, 'l'|'u']])``: the broken-down time (month from 0, wday 0 = Sunday)."""
    stamp = _time.time() if when is None else when
    parts = _time.gmtime(stamp) if kind == "u" else _time.localtime(stamp)
    return Table({"sec": parts.tm_sec, "min": parts.tm_min, "hour": parts.tm_hour,
                  "day": parts.tm_mday, "month": parts.tm_mon - 1, "year": parts.tm_year,
                  "wday": (parts.tm_wday + 1) % 7, "yday": parts.tm_yday - 1,
                  "usec": int((stamp % 1) * 1_000_000) if when is None else 0})


def print(value: Any = None) -> None:
    """Squirrel's ``print``: the value's text on stdout (null as "null")."""
    sys.stdout.write(print_text(value) + "\n")


def assert_(condition: Any, message: Any = None) -> None:
    """Squirrel's ``assert(cond)``."""
    from bridge.squirrel.runtime.ops import truth
    if not truth(condition):
        raise SquirrelError("assertion failed" if message is None else message)


def _num(name: str, value: Any) -> float:
    if type(value) not in (int, float):
        raise SquirrelError(f"math.{name}: a number expected, got {typeof(value)}")
    return float(value)


def _float_fn(name: str, fn: Any) -> Any:
    def apply(*values: Any) -> float:
        try:
            return f32(fn(*(_num(name, v) for v in values)))
        except (ValueError, OverflowError):
            return _math.nan
    apply.__name__ = name
    return apply


class _Math:
    """imp's ``math`` table (Squirrel's math library): float functions round to 32 bits."""

    PI = f32(_math.pi)
    RAND_MAX = 0x7FFFFFFF

    sqrt = staticmethod(_float_fn("sqrt", _math.sqrt))
    sin = staticmethod(_float_fn("sin", _math.sin))
    cos = staticmethod(_float_fn("cos", _math.cos))
    tan = staticmethod(_float_fn("tan", _math.tan))
    asin = staticmethod(_float_fn("asin", _math.asin))
    acos = staticmethod(_float_fn("acos", _math.acos))
    atan = staticmethod(_float_fn("atan", _math.atan))
    atan2 = staticmethod(_float_fn("atan2", _math.atan2))
    exp = staticmethod(_float_fn("exp", _math.exp))
    log = staticmethod(_float_fn("log", _math.log))
    log10 = staticmethod(_float_fn("log10", _math.log10))
    pow = staticmethod(_float_fn("pow", _math.pow))
    fabs = staticmethod(_float_fn("fabs", _math.fabs))
    floor = staticmethod(_float_fn("floor", _math.floor))
    ceil = staticmethod(_float_fn("ceil", _math.ceil))

    @staticmethod
    def abs(value: Any) -> Any:
        if type(value) is int:
            return i32(-value) if value < 0 else value
        return abs(_num("abs", value))

    @staticmethod
    def rand() -> int:
        return random.randint(0, 0x7FFFFFFF)

    @staticmethod
    def srand(seed: int) -> None:
        random.seed(seed)

    @staticmethod
    def max(a: Any, b: Any) -> Any:
        from bridge.squirrel.runtime.ops import lt
        return b if lt(a, b) else a

    @staticmethod
    def min(a: Any, b: Any) -> Any:
        from bridge.squirrel.runtime.ops import gt
        return b if gt(a, b) else a


math = _Math()

__all__ = ["array", "assert_", "clock", "date", "format", "lstrip", "math", "print", "rstrip",
           "split", "strip", "time"]
