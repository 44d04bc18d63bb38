"""Squirrel's built-in methods (the default delegates) as functions: ``sq.len_(x)``,
``sq.push(a, v)``.

Translated code calls ``sq.NAME(obj, ...)`` for every method name one of Squirrel's default
delegates defines, because the receiver's type is only known at run time: a table slot or an
instance member of that name wins (as in Squirrel, where the delegate is looked up last), then
the built-in for the value's type. Values from the bridge (``list``, ``dict``, ``bytes``) get the
array, table and blob built-ins.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from bridge.squirrel.runtime.ops import cmp, f32, i32, tostring, truth, typeof
from bridge.squirrel.runtime.values import (
    Array,
    Instance,
    MissingIndex,
    SquirrelClass,
    SquirrelError,
    Table,
)

_PLAIN = (int, float, bool, str, list, Array, tuple, bytes, type(None))


def _own(obj: Any, name: str) -> Callable[..., Any] | None:
    """A user-defined ``name`` on ``obj`` (table slot, instance/class member, bridge method)."""
    kind = type(obj)
    if kind in _PLAIN:
        return None
    if isinstance(obj, dict):
        fn = dict.get(obj, name)
        return fn if fn is not None and callable(fn) else None
    fn = getattr(obj, name, None)
    if fn is None and isinstance(obj, Instance):
        return None
    return fn if callable(fn) else None


def _builtin(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as the built-in ``name``: an object's own ``name`` is tried first."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def method(obj: Any, *args: Any) -> Any:
            own = _own(obj, name)
            if own is not None:
                return own(*args)
            return fn(obj, *args)
        BUILTINS[name] = method
        return method
    return wrap


BUILTINS: dict[str, Callable[..., Any]] = {}


def _no_method(obj: Any, name: str) -> MissingIndex:
    return MissingIndex(name)


# -- conversions --------------------------------------------------------------------------------
_INT_PREFIX = re.compile(r"[ \t\n\r\f\v]*[-+]?\d+")
_FLOAT_PREFIX = re.compile(r"[ \t\n\r\f\v]*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _str2num(text: str) -> int | float:
    """The number a string converts to, as the VM's ``str2num``: a float (C ``strtod``) when
    the text has a '.', 'e' or 'E' anywhere, else an integer (C ``strtol``, saturating at 64
    bits, then wrapped to 32); the longest valid prefix counts; none at all throws."""
    if any(c in text for c in ".eE"):
        match = _FLOAT_PREFIX.match(text)
        if match is None:
            raise SquirrelError("cannot convert the string")
        return f32(float(match.group()))
    match = _INT_PREFIX.match(text)
    if match is None:
        raise SquirrelError("cannot convert the string")
    value = max(-2**63, min(2**63 - 1, int(match.group())))
    return i32(value)


@_builtin("tointeger")
def tointeger(obj: Any) -> int:
    kind = type(obj)
    if kind is int:
        return obj
    if kind is float:
        if obj != obj or obj in (float("inf"), float("-inf")):
            return -0x80000000
        return i32(int(obj))
    if kind is bool:
        return 1 if obj else 0
    if kind is str:
        number = _str2num(obj)
        return number if type(number) is int else tointeger(number)
    raise _no_method(obj, "tointeger")


@_builtin("tofloat")
def tofloat(obj: Any) -> float:
    kind = type(obj)
    if kind is int or kind is float:
        return f32(float(obj))
    if kind is bool:
        return 1.0 if obj else 0.0
    if kind is str:
        return f32(float(_str2num(obj)))
    raise _no_method(obj, "tofloat")


@_builtin("tostring")
def tostring_(obj: Any) -> str:
    return tostring(obj)


@_builtin("tochar")
def tochar(obj: Any) -> str:
    if type(obj) is not int:
        raise _no_method(obj, "tochar")
    return chr(obj & 0xFF)


# -- length, slices, search ---------------------------------------------------------------------
@_builtin("len")
def len_(obj: Any) -> int:
    if isinstance(obj, (str, list, tuple, dict, bytes, bytearray)):
        return len(obj)
    raise _no_method(obj, "len")


def _slice_bounds(size: int, start: int, end: int | None) -> tuple[int, int]:
    if end is None:
        end = size
    if start < 0:
        start += size
    if end < 0:
        end += size
    if end < start:
        raise SquirrelError("wrong indexes")
    if end > size:
        raise SquirrelError("slice out of range")
    start = max(start, 0)  # the VM does not check a start still negative after adjusting
    return start, end


@_builtin("slice")
def slice_(obj: Any, start: int, end: int | None = None) -> Any:
    if isinstance(obj, str):
        lo, hi = _slice_bounds(len(obj), start, end)
        return obj[lo:hi]
    if isinstance(obj, (list, tuple)):
        lo, hi = _slice_bounds(len(obj), start, end)
        return Array(obj[lo:hi])
    raise _no_method(obj, "slice")


@_builtin("find")
def find(obj: Any, needle: Any, start: int = 0) -> int | None:
    if isinstance(obj, str):
        if type(needle) is not str:
            raise SquirrelError("wrong parameter type")
        at = obj.find(needle, start)
        return None if at < 0 else at
    if isinstance(obj, (list, tuple)):
        from bridge.squirrel.runtime.ops import eq
        for i, item in enumerate(obj):
            if eq(item, needle):
                return i
        return None
    raise _no_method(obj, "find")


@_builtin("tolower")
def tolower(obj: Any) -> str:
    if type(obj) is not str:
        raise _no_method(obj, "tolower")
    return obj.lower()


@_builtin("toupper")
def toupper(obj: Any) -> str:
    if type(obj) is not str:
        raise _no_method(obj, "toupper")
    return obj.upper()


# -- arrays -------------------------------------------------------------------------------------
def _array(obj: Any, name: str) -> list[Any]:
    if isinstance(obj, list):
        return obj
    raise _no_method(obj, name)


@_builtin("push")
def push(obj: Any, value: Any) -> None:
    _array(obj, "push").append(value)


@_builtin("append")
def append(obj: Any, value: Any) -> None:
    _array(obj, "append").append(value)


@_builtin("extend")
def extend(obj: Any, other: Any) -> Any:
    _array(obj, "extend").extend(other)
    return obj


@_builtin("pop")
def pop(obj: Any) -> Any:
    items = _array(obj, "pop")
    if not items:
        raise SquirrelError("pop on a empty array")
    return items.pop()


@_builtin("top")
def top(obj: Any) -> Any:
    items = _array(obj, "top")
    if not items:
        raise SquirrelError("top() on a empty array")
    return items[-1]


@_builtin("insert")
def insert(obj: Any, idx: int, value: Any) -> None:
    items = _array(obj, "insert")
    if not 0 <= idx <= len(items):
        raise SquirrelError("index out of range")
    items.insert(idx, value)


@_builtin("remove")
def remove(obj: Any, idx: int) -> Any:
    items = _array(obj, "remove")
    if type(idx) is not int or not 0 <= idx < len(items):
        raise SquirrelError("index out of range")
    return items.pop(idx)


@_builtin("resize")
def resize(obj: Any, size: int, fill: Any = None) -> None:
    if isinstance(obj, list):
        if size < 0:
            raise SquirrelError("negative size")
        if size < len(obj):
            del obj[size:]
        else:
            obj.extend([fill] * (size - len(obj)))
        return
    raise _no_method(obj, "resize")


@_builtin("sort")
def sort(obj: Any, compare: Callable[[Any, Any], Any] | None = None) -> None:
    items = _array(obj, "sort")
    order = compare if compare is not None else cmp
    items.sort(key=functools.cmp_to_key(lambda a, b: int(order(a, b))))


@_builtin("reverse")
def reverse(obj: Any) -> None:
    _array(obj, "reverse").reverse()


@_builtin("map")
def map_(obj: Any, fn: Callable[[Any], Any]) -> Array:
    return Array(fn(item) for item in _array(obj, "map"))


@_builtin("apply")
def apply(obj: Any, fn: Callable[[Any], Any]) -> Any:
    items = _array(obj, "apply")
    for i, item in enumerate(items):
        items[i] = fn(item)
    return obj


@_builtin("filter")
def filter_(obj: Any, fn: Callable[[int, Any], Any]) -> Array:
    return Array(item for i, item in enumerate(_array(obj, "filter")) if truth(fn(i, item)))


@_builtin("reduce")
def reduce(obj: Any, fn: Callable[[Any, Any], Any]) -> Any:
    items = _array(obj, "reduce")
    if not items:
        return None
    result = items[0]
    for item in items[1:]:
        result = fn(result, item)
    return result


@_builtin("clear")
def clear(obj: Any) -> Any:
    if isinstance(obj, list):
        list.clear(obj)
        return obj
    if isinstance(obj, dict):
        dict.clear(obj)
        return obj
    raise _no_method(obj, "clear")


# -- tables, classes and instances ---------------------------------------------------------------
@_builtin("rawget")
def rawget(obj: Any, key: Any) -> Any:
    if isinstance(obj, dict):
        try:
            return dict.__getitem__(obj, key)
        except KeyError:
            raise MissingIndex(key) from None
    if isinstance(obj, (Instance, type)):
        return object.__getattribute__(obj, key)
    raise _no_method(obj, "rawget")


@_builtin("rawset")
def rawset(obj: Any, key: Any, value: Any) -> Any:
    if isinstance(obj, dict):
        dict.__setitem__(obj, key, value)
        return obj
    if isinstance(obj, Instance):
        object.__setattr__(obj, key, value)
        return obj
    if isinstance(obj, SquirrelClass):
        obj.sq_newslot(key, value)
        return obj
    raise _no_method(obj, "rawset")


@_builtin("rawin")
def rawin(obj: Any, key: Any) -> bool:
    if isinstance(obj, dict):
        return key in obj
    if isinstance(obj, (Instance, type)):
        return type(key) is str and hasattr(obj, key)
    raise _no_method(obj, "rawin")


@_builtin("rawdelete")
def rawdelete(obj: Any, key: Any) -> Any:
    if isinstance(obj, dict):
        return dict.pop(obj, key, None)
    raise _no_method(obj, "rawdelete")


@_builtin("getclass")
def getclass(obj: Any) -> type:
    if isinstance(obj, Instance):
        return type(obj)
    raise _no_method(obj, "getclass")


@_builtin("getbase")
def getbase(obj: Any) -> type | None:
    if isinstance(obj, type) and issubclass(obj, Instance):
        base = obj.__mro__[1]
        return None if base is Instance else base
    raise _no_method(obj, "getbase")


@_builtin("instance")
def instance(obj: Any) -> Any:
    if isinstance(obj, type) and issubclass(obj, Instance):
        return obj.__new__(obj)
    raise _no_method(obj, "instance")


@_builtin("newmember")
def newmember(obj: Any, key: str, value: Any = None, *_attrs: Any) -> None:
    if isinstance(obj, SquirrelClass):
        obj.sq_newslot(key, value)
        return
    raise _no_method(obj, "newmember")


@_builtin("weakref")
def weakref(obj: Any) -> Any:
    return obj  # no weak references: the value itself (documented deviation)


def method(obj: Any, name: str) -> Any:
    """``obj.name`` read as a value for a built-in method name: bound to ``obj``."""
    own = _own(obj, name)
    if own is not None:
        return own
    if isinstance(obj, dict) and name in obj:
        return dict.__getitem__(obj, name)
    builtin = BUILTINS.get(name)
    if builtin is None:
        from bridge.squirrel.runtime import functions
        builtin = functions.BUILTINS.get(name)
    if builtin is None:
        raise MissingIndex(name)
    return functools.partial(builtin, obj)


def invoke(obj: Any, name: str, *args: Any) -> Any:
    """``obj.name(args...)`` for any name, resolved at run time."""
    own = _own(obj, name)
    if own is not None:
        return own(*args)
    return method(obj, name)(*args)


__all__ = ["BUILTINS", "invoke", "method", "typeof"]
_ = Table
