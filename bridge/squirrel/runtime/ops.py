"""Squirrel operators on Python values: 32-bit integers, 32-bit floats, concatenation, truth.

imp's Squirrel (and the ``squirrel-lang-sq305`` build used as the test oracle) has 32-bit signed
integers that wrap, and 32-bit floats: every float result is rounded to single precision here.
Integer ``/`` and ``%`` truncate toward zero (C semantics); integer division by zero throws,
integer ``%`` by zero gives the dividend (what the VM does), float division by zero gives inf/nan.
Shift counts are taken modulo 32, as the VM's x86 build does.
"""

from __future__ import annotations

import ctypes
import math
import types
from typing import Any

from bridge.squirrel.runtime import values as _values
from bridge.squirrel.runtime.values import Array, Cell, Instance, RootTable, SquirrelError, Table

INT_MIN = -0x80000000
INT_MAX = 0x7FFFFFFF
_c_float = ctypes.c_float


def i32(value: int) -> int:
    """``value`` wrapped to a 32-bit signed integer."""
    if INT_MIN <= value <= INT_MAX:
        return value
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value & 0x80000000 else value


def f32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float (overflow gives +-inf)."""
    return _c_float(value).value


# -- types ------------------------------------------------------------------------------------
_FUNCTION_TYPES = (types.FunctionType, types.MethodType, types.BuiltinFunctionType,
                   types.BuiltinMethodType)


def typeof(value: Any) -> str:
    """Squirrel's ``typeof``: the type name (``_typeof`` metamethod for instances)."""
    kind = type(value)
    if kind is int:
        return "integer"
    if kind is str:
        return "string"
    if kind is float:
        return "float"
    if value is None:
        return "null"
    if kind is bool:
        return "bool"
    if isinstance(value, dict) or kind is RootTable:
        return "table"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Instance):
        custom = getattr(kind, "_typeof", None)
        return str(custom(value)) if custom is not None else "instance"
    if isinstance(value, type):
        return "class"
    if isinstance(value, (bytes, bytearray)) or getattr(kind, "_sq_blob", False):
        return "blob"
    if isinstance(value, _FUNCTION_TYPES) or callable(value):
        return "function"
    return "instance"  # an object of the bridge (connection, message ...), as imp's natives


def truth(value: Any) -> bool:
    """Squirrel truthiness: null, false, 0 and 0.0 are false; everything else (``""``, ``[]``,
    ``{}`` included) is true."""
    if value is None or value is False:
        return False
    kind = type(value)
    if kind is int or kind is float:
        return value != 0
    return True


# -- formatting -------------------------------------------------------------------------------
def format_float(value: float) -> str:
    """A float as Squirrel prints it (C ``%g``)."""
    if value != value:
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return "%g" % value  # noqa: UP031 - C's %g, which str.format spells differently


def tostring(value: Any) -> str:
    """The text Squirrel gives a value in ``+`` concatenation and ``.tostring()``."""
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        return str(value)
    if kind is float:
        return format_float(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "(null : 0x(nil))"  # what the VM's %p of NULL gives
    if isinstance(value, Instance):
        custom = getattr(kind, "_tostring", None)
        if custom is not None:
            return tostring(custom(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    blob_text = getattr(type(value), "_sq_tostring", None)
    if blob_text is not None:
        return str(blob_text(value))
    return f"({typeof(value)} : 0x{id(value):08x})"


# error messages (the index 'x' does not exist, a thrown table) use the full Squirrel text
_values.value_text = tostring


def print_text(value: Any) -> str:
    """What Squirrel's ``print`` / imp's ``server.log`` show for a value (null as "null")."""
    if value is None:
        return "null"
    return tostring(value)


# -- arithmetic -------------------------------------------------------------------------------
def _arith_error(op: str, a: Any, b: Any) -> SquirrelError:
    return SquirrelError(f"arith op {op} on between '{typeof(a)}' and '{typeof(b)}'")


def _numbers(op: str, a: Any, b: Any) -> tuple[Any, Any, bool]:
    """(a, b, is_float) for an arithmetic operator, or throw for non-numbers."""
    ka, kb = type(a), type(b)
    if ka is int and kb is int:
        return a, b, False
    if ka is float and kb is float:
        return a, b, True
    # an integer of at most 24 bits is exact as a 32-bit float: no rounding needed
    if ka is int and kb is float and -16777216 <= a <= 16777216:
        return float(a), b, True
    if ka is float and kb is int and -16777216 <= b <= 16777216:
        return a, float(b), True
    if (ka is int or ka is float) and (kb is int or kb is float):
        # the VM converts the integer to a (32-bit) float first
        return (_c_float(a).value if ka is int else a), (_c_float(b).value if kb is int else b), \
            True
    raise _arith_error(op, a, b)


def _meta_call(name: str, op: str, a: Any, b: Any) -> Any:
    """An instance's arithmetic metamethod ``name`` applied, or the VM's error without one."""
    method = getattr(type(a), name, None)
    if method is None:
        raise _arith_error(op, a, b)
    return method(a, b)


def _metamethod(name: str, a: Any, b: Any) -> Any:
    method = getattr(type(a), name, None) if isinstance(a, Instance) else None
    return method


def add(a: Any, b: Any, *more: Any) -> Any:
    """``a + b``: integer (wrapping), float, or string concatenation when either is a string.
    ``add(a, b, c)`` is ``(a + b) + c`` (how the translator writes a chain of ``+``)."""
    if more:
        result = add(a, b)
        for item in more:
            result = add(result, item)
        return result
    ka, kb = type(a), type(b)
    if ka is int and kb is int:
        r = a + b
        return r if INT_MIN <= r <= INT_MAX else i32(r)
    if ka is str:
        return a + (b if kb is str else tostring(b))
    if kb is str:
        return tostring(a) + b
    meta = _metamethod("_add", a, b)
    if meta is not None:
        return meta(a, b)
    x, y, is_float = _numbers("+", a, b)
    return _c_float(x + y).value if is_float else i32(x + y)


def sub(a: Any, b: Any) -> Any:
    """``a - b``."""
    if type(a) is int and type(b) is int:
        r = a - b
        return r if INT_MIN <= r <= INT_MAX else i32(r)
    meta = _metamethod("_sub", a, b)
    if meta is not None:
        return meta(a, b)
    x, y, is_float = _numbers("-", a, b)
    return _c_float(x - y).value if is_float else i32(x - y)


def mul(a: Any, b: Any) -> Any:
    """``a * b``."""
    if type(a) is int and type(b) is int:
        return i32(a * b)
    if isinstance(a, Instance):
        return _meta_call("_mul", "*", a, b)
    x, y, is_float = _numbers("*", a, b)
    return _c_float(x * y).value if is_float else i32(x * y)


def div(a: Any, b: Any) -> Any:
    """``a / b``: integers truncate toward zero, integer division by zero throws."""
    if isinstance(a, Instance):
        return _meta_call("_div", "/", a, b)
    x, y, is_float = _numbers("/", a, b)
    if is_float:
        if y == 0:
            if x == 0 or x != x:
                return -math.nan
            return math.copysign(math.inf, x) * math.copysign(1.0, y)
        return _c_float(x / y).value
    if y == 0:
        raise SquirrelError("division by zero")
    q = abs(x) // abs(y)
    return i32(q if (x < 0) == (y < 0) else -q)


def mod(a: Any, b: Any) -> Any:
    """``a % b``: the sign of the dividend (C ``%``/``fmod``); integer ``% 0`` gives ``a``."""
    if isinstance(a, Instance):
        return _meta_call("_modulo", "%", a, b)
    ka, kb = type(a), type(b)
    if not ((ka is int or ka is float) and (kb is int or kb is float)):
        return a  # what the VM does for % on anything but two numbers
    x, y, is_float = _numbers("%", a, b)
    if is_float:
        if y == 0 or x != x or y != y or math.isinf(x):
            return -math.nan  # what the VM's fmod gives (printed "-nan")
        return _c_float(math.fmod(x, y)).value
    if y == 0:
        return x
    r = abs(x) % abs(y)
    return -r if x < 0 else r


def neg(a: Any) -> Any:
    """Unary ``-a``."""
    kind = type(a)
    if kind is int:
        return i32(-a)
    if kind is float:
        return -a
    meta = getattr(type(a), "_unm", None) if isinstance(a, Instance) else None
    if meta is not None:
        return meta(a)
    raise SquirrelError(f"attempt to negate a {typeof(a)}")


def _ints(op: str, a: Any, b: Any) -> None:
    if type(a) is not int or type(b) is not int:
        raise SquirrelError(f"bitwise op between '{typeof(a)}' and '{typeof(b)}'")


def bitand(a: Any, b: Any) -> int:
    _ints("&", a, b)
    return a & b


def bitor(a: Any, b: Any) -> int:
    _ints("|", a, b)
    return a | b


def bitxor(a: Any, b: Any) -> int:
    _ints("^", a, b)
    return a ^ b


def bitnot(a: Any) -> int:
    if type(a) is not int:
        raise SquirrelError(f"attempt to perform a bitwise op on a {typeof(a)}")
    return ~a


def shl(a: Any, b: Any) -> int:
    """``a << b`` (count modulo 32, result wrapped)."""
    _ints("<<", a, b)
    return i32(a << (b & 31))


def shr(a: Any, b: Any) -> int:
    """``a >> b``: arithmetic shift."""
    _ints(">>", a, b)
    return a >> (b & 31)


def ushr(a: Any, b: Any) -> int:
    """``a >>> b``: logical shift of the 32-bit pattern."""
    _ints(">>>", a, b)
    return i32((a & 0xFFFFFFFF) >> (b & 31))


def inc(a: Any) -> Any:
    """``a + 1`` for ``++`` (numbers only, as Squirrel)."""
    if type(a) is int:
        return a + 1 if a != INT_MAX else INT_MIN
    if type(a) is float:
        return _c_float(a + 1).value
    return add(a, 1)  # the VM's ++ is + 1: "3s"++ is "3s1"


def dec(a: Any) -> Any:
    """``a - 1`` for ``--``."""
    if type(a) is int:
        return a - 1 if a != INT_MIN else INT_MAX
    if type(a) is float:
        return _c_float(a - 1).value
    return sub(a, 1)


# -- comparison -------------------------------------------------------------------------------
def eq(a: Any, b: Any) -> bool:
    """``a == b``: numbers by value (1 == 1.0), everything else by type then value/identity
    (so ``0 == false`` and ``1 == true`` are false, unlike Python)."""
    ka, kb = type(a), type(b)
    if ka is kb:
        if ka is dict or ka is list:
            return a is b
        return bool(a == b) if ka in (int, float, str, bool) else a is b or bool(a == b)
    if (ka is int or ka is float) and (kb is int or kb is float):
        x, y, _ = _numbers("==", a, b)
        return bool(x == y)
    return False


def ne(a: Any, b: Any) -> bool:
    """``a != b``."""
    return not eq(a, b)


def _compare_error(a: Any, b: Any) -> SquirrelError:
    def shown(v: Any) -> str:
        if type(v) is float:
            # the VM's error messages print floats with %.14g
            return format_float(v) if v != v else f"{v:.14g}"
        return tostring(v) if type(v) in (int, str) else typeof(v)
    return SquirrelError(f"comparison between '{shown(a)}' and '{shown(b)}'")


def _strcmp(a: str, b: str) -> int:
    """C ``strcmp`` as the VM's libc gives it: the difference of the first differing bytes
    (``<=>`` on strings returns it as is)."""
    if a == b:
        return 0
    x, y = a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape")
    for i in range(min(len(x), len(y))):
        if x[i] != y[i]:
            return x[i] - y[i]
    return (x[len(y)] if len(x) > len(y) else -y[len(x)])


def cmp(a: Any, b: Any) -> int:
    """``a <=> b``: -1, 0 or 1, as the VM orders values: numbers by value, strings by bytes,
    null below everything, bools as 0/1, instances by ``_cmp``; other mixed types throw."""
    ka, kb = type(a), type(b)
    if (ka is int or ka is float) and (kb is int or kb is float):
        x, y, _ = _numbers("<=>", a, b)
        return -1 if x < y else (1 if x > y else 0)
    if ka is kb:
        if ka is str:
            return _strcmp(a, b)
        if ka is bool:
            return -1 if a < b else (1 if a > b else 0)
        if a is b:
            return 0
        if isinstance(a, Instance):
            return a._sq_cmp(b)
        return -1 if id(a) < id(b) else 1  # the VM compares the objects' addresses
    if a is None:
        return -1
    if b is None:
        return 1
    if isinstance(a, Instance):
        return a._sq_cmp(b)
    raise _compare_error(a, b)


def lt(a: Any, b: Any) -> bool:
    """``a < b``."""
    if type(a) is int and type(b) is int:
        return a < b
    return cmp(a, b) < 0


def le(a: Any, b: Any) -> bool:
    """``a <= b``."""
    if type(a) is int and type(b) is int:
        return a <= b
    return cmp(a, b) <= 0


def gt(a: Any, b: Any) -> bool:
    """``a > b``."""
    if type(a) is int and type(b) is int:
        return a > b
    return cmp(a, b) > 0


def ge(a: Any, b: Any) -> bool:
    """``a >= b``."""
    if type(a) is int and type(b) is int:
        return a >= b
    return cmp(a, b) >= 0


def unbox(value: Any) -> Any:
    """The value of a Cell (boxed loop-body local), else the value itself."""
    return value.value if type(value) is Cell else value


__all__ = [
    "INT_MAX", "INT_MIN", "Array", "Table", "add", "bitand", "bitnot", "bitor", "bitxor",
    "cmp", "dec", "div", "eq", "f32", "format_float", "ge", "gt", "i32", "inc", "le", "lt",
    "mod", "mul", "ne", "neg", "print_text", "shl", "shr", "sub", "tostring", "truth",
    "typeof", "ushr",
]
