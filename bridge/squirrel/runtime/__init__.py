"""The Squirrel runtime translated agent code imports as ``sq``.

``from bridge.squirrel import runtime as sq`` gives the operators (``sq.add``, ``sq.div`` ...),
the value types (``sq.Table``, ``sq.Array``, ``sq.Instance``), slot access (``sq.index``,
``sq.newslot`` ...), the built-in methods as functions (``sq.len(x)``, ``sq.push(a, v)`` ...)
and the Squirrel globals (``sq.format``, ``sq.split``, ``sq.math``, ``sq.regexp``, ``sq.blob``).
Pure Python; the imp globals (``http``, ``crypto``, ``server``...) are not here: they are the
script namespace's.
"""

from __future__ import annotations

from bridge.squirrel.runtime.access import (
    caught, clone, delete, has, index, instanceof, items, newslot, set_index, throw, values,
)
from bridge.squirrel.runtime.assign import bump_attr, bump_index, first, root_set, set_attr, set_cell
from bridge.squirrel.runtime.blob import blob
from bridge.squirrel.runtime.functions import acall, bindenv, call, getinfos, pacall, pcall
from bridge.squirrel.runtime.methods import (
    BUILTINS, append, apply, clear, extend, filter_, find, getbase, getclass, insert, instance,
    invoke, len_, map_, method, newmember, pop, push, rawdelete, rawget, rawin, rawset, reduce,
    remove, resize, reverse, slice_, sort, tochar, tofloat, tointeger, tolower, top, tostring_,
    toupper, weakref,
)
from bridge.squirrel.runtime.ops import (
    INT_MAX, INT_MIN, add, bitand, bitnot, bitor, bitxor, cmp, dec, div, eq, f32, format_float,
    ge, gt, i32, inc, le, lt, mod, mul, ne, neg, print_text, shl, shr, sub, tostring, truth,
    typeof, unbox, ushr,
)
from bridge.squirrel.runtime.regexp import regexp
from bridge.squirrel.runtime.stdlib import (
    array, assert_, clock, date, format, lstrip, math, print, rstrip, split, strip, time,
)
from bridge.squirrel.runtime.values import (
    Array, Cell, Instance, MissingIndex, RootTable, SquirrelError, Table,
)

# Built-in method names that are Python keywords/builtins are exported with a trailing
# underscore (``sq.len_``), the translator knows the mapping (``METHOD_FUNCTIONS``).
METHOD_FUNCTIONS: dict[str, str] = {
    name: (name + "_" if name in {"len", "slice", "map", "filter", "tostring"} else name)
    for name in BUILTINS
}
METHOD_FUNCTIONS.update({name: name for name in ("bindenv", "call", "pcall", "acall", "pacall",
                                                 "getinfos")})

# The Squirrel globals the runtime provides, by their Squirrel name -> attribute of ``sq``.
GLOBALS: dict[str, str] = {
    "format": "format", "split": "split", "strip": "strip", "lstrip": "lstrip",
    "rstrip": "rstrip", "array": "array", "math": "math", "time": "time", "clock": "clock",
    "date": "date", "print": "print", "assert": "assert_", "regexp": "regexp", "blob": "blob",
}

__all__ = [
    "GLOBALS", "INT_MAX", "bump_attr", "bump_index", "first", "root_set", "set_attr", "set_cell", "INT_MIN", "METHOD_FUNCTIONS", "Array", "Cell", "Instance",
    "MissingIndex", "RootTable", "SquirrelError", "Table", "acall", "add", "append", "apply", "array",
    "assert_", "bindenv", "bitand", "bitnot", "bitor", "bitxor", "blob", "call", "caught",
    "clear", "clock", "clone", "cmp", "date", "dec", "delete", "div", "eq", "extend", "f32",
    "filter_", "find", "format", "format_float", "ge", "getbase", "getclass", "getinfos", "gt",
    "has", "i32", "inc", "index", "insert", "instance", "instanceof", "invoke", "items", "le",
    "len_", "lstrip", "lt", "map_", "math", "method", "mod", "mul", "ne", "neg", "newmember",
    "newslot", "pacall", "pcall", "pop", "print", "print_text", "push", "rawdelete", "rawget",
    "rawin", "rawset", "reduce", "regexp", "remove", "resize", "reverse", "rstrip", "set_index",
    "shl", "shr", "slice_", "sort", "split", "strip", "sub", "throw", "time", "tochar",
    "tofloat", "tointeger", "tolower", "top", "tostring", "tostring_", "toupper", "truth",
    "typeof", "unbox", "ushr", "values", "weakref",
]
