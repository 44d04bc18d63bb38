"""Slots and elements: ``a[k]``, ``a[k] = v``, ``<-``, ``delete``, ``in``, ``foreach``, ``clone``.

Works on the runtime's ``Table``/``Array``/``Instance`` and on the plain ``dict``/``list``/
``bytes`` values the bridge hands to callbacks. Strings index to integer character codes, as in
Squirrel.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from bridge.squirrel.runtime.ops import tostring, typeof
from bridge.squirrel.runtime.values import (
    Array,
    Instance,
    MissingIndex,
    RootTable,
    SquirrelClass,
    SquirrelError,
    Table,
)


def index(obj: Any, key: Any) -> Any:
    """``obj[key]``; a missing key or an index out of range throws."""
    kind = type(obj)
    if kind is Array or kind is list or kind is tuple:
        if type(key) is int and 0 <= key < len(obj):
            return obj[key]
        if type(key) is float and 0 <= int(key) < len(obj):
            return obj[int(key)]
        raise MissingIndex(key)
    if kind is Table or kind is dict or isinstance(obj, dict):
        try:
            return dict.__getitem__(obj, key)
        except KeyError:
            raise MissingIndex(key) from None
        except TypeError:  # an unhashable key (a plain list or dict): never a slot
            raise MissingIndex(key) from None
    if kind is str:
        if type(key) is int and 0 <= key < len(obj):
            return ord(obj[key])
        raise MissingIndex(key)
    if isinstance(obj, (bytes, bytearray)):
        if type(key) is int and 0 <= key < len(obj):
            return obj[key]
        raise MissingIndex(key)
    if obj is None:
        raise MissingIndex(key)
    if getattr(type(obj), "_sq_blob", False) or kind is RootTable:
        return obj[key]
    if type(key) is str:
        return getattr(obj, key)
    if isinstance(obj, Instance):
        return obj._sq_get(key)
    raise MissingIndex(key)


def set_index(obj: Any, key: Any, value: Any) -> Any:
    """``obj[key] = value``: the slot or element must exist; the value."""
    kind = type(obj)
    if kind is Array or kind is list:
        if type(key) is int and 0 <= key < len(obj):
            obj[key] = value
            return value
        raise MissingIndex(key)
    if isinstance(obj, dict):
        if key not in obj:
            raise MissingIndex(key)
        dict.__setitem__(obj, key, value)
        return value
    if getattr(type(obj), "_sq_blob", False) or isinstance(obj, (bytearray, RootTable)):
        obj[key] = value
        return value
    if type(key) is str and obj is not None and kind is not str:
        setattr(obj, key, value)
        return value
    raise MissingIndex(key)


def newslot(obj: Any, key: Any, value: Any) -> Any:
    """``obj[key] <- value`` / ``obj.key <- value``: create or overwrite a slot; the value."""
    if type(obj) is RootTable:
        return obj.newslot(key, value)
    if isinstance(obj, dict):
        dict.__setitem__(obj, key, value)
        return value
    if isinstance(obj, SquirrelClass) and type(key) is str:  # a member (before instances)
        obj.sq_newslot(key, value)
        return value
    if isinstance(obj, Instance):
        raise SquirrelError("class instances do not support the new slot operator")
    raise SquirrelError(f"trying to set '{typeof(obj)}'")


def fill(table: Table, slots: dict[Any, Any]) -> Table:
    """A table literal whose functions refer to the table itself: created empty first, then
    given its slots; the table."""
    dict.update(table, slots)
    return table


def delete(obj: Any, key: Any) -> Any:
    """``delete obj[key]``: remove a table slot; the value it had."""
    if type(obj) is RootTable:
        obj = obj._ns
    if isinstance(obj, dict):
        try:
            return dict.pop(obj, key)
        except KeyError:
            raise MissingIndex(key) from None
    raise SquirrelError(f"cannot delete a slot from {typeof(obj)}")


def has(key: Any, obj: Any) -> bool:
    """``key in obj``: a slot of a table/instance/class, or a valid index of an array/string."""
    if isinstance(obj, dict):
        try:
            return key in obj
        except TypeError:
            return False
    if type(obj) is RootTable:
        return key in obj
    if isinstance(obj, (list, tuple, str, bytes, bytearray)):
        return type(key) is int and 0 <= key < len(obj)
    if isinstance(obj, (Instance, type)):
        return type(key) is str and hasattr(obj, key)
    if obj is None:
        raise SquirrelError("the index does not exist")
    return type(key) is str and hasattr(obj, key)


def items(obj: Any) -> Iterator[tuple[Any, Any]]:
    """``foreach (k, v in obj)``: (index, element) of arrays, strings (character codes) and
    blobs (bytes); (key, value) of tables; (member, value) of instances and classes."""
    if isinstance(obj, (list, tuple)):
        # Squirrel's foreach reads element i at step i, so a loop that appends sees the new
        # elements (and one that shrinks the array stops early), as it does here.
        i = 0
        while i < len(obj):
            yield i, obj[i]
            i += 1
        return
    if isinstance(obj, dict):
        yield from list(dict.items(obj))
        return
    if isinstance(obj, str):
        yield from enumerate(ord(c) for c in obj)
        return
    if isinstance(obj, (bytes, bytearray)):
        yield from enumerate(obj)
        return
    if getattr(type(obj), "_sq_blob", False):
        yield from enumerate(obj.tobytes())
        return
    if isinstance(obj, Instance):
        # Squirrel iterates an instance through its _nexti metamethod only
        nexti = getattr(type(obj), "_nexti", None)
        if nexti is None:
            raise SquirrelError("_nexti failed")
        key = nexti(obj, None)
        while key is not None:
            yield key, index(obj, key)
            key = nexti(obj, key)
        return
    if isinstance(obj, type) and issubclass(obj, Instance):
        for name in getattr(obj, "_sq_members", ()):
            yield name, getattr(obj, name)
        return
    if obj is None:
        raise SquirrelError("cannot iterate null")
    raise SquirrelError(f"cannot iterate {typeof(obj)}")


def values(obj: Any) -> Iterator[Any]:
    """``foreach (v in obj)``."""
    for _key, value in items(obj):
        yield value


def clone(obj: Any) -> Any:
    """``clone obj``: a shallow copy of a table, array or instance (``_cloned`` called)."""
    if isinstance(obj, dict):
        return Table(obj)
    if isinstance(obj, (list, tuple)):
        return Array(obj)
    if isinstance(obj, Instance):
        twin = copy.copy(obj)
        cloned = getattr(type(obj), "_cloned", None)
        if cloned is not None:
            cloned(twin, obj)
        return twin
    if isinstance(obj, bytearray) or getattr(type(obj), "_sq_blob", False):
        return copy.copy(obj)
    if obj is None or isinstance(obj, (int, float, str, bool)):
        return obj
    raise SquirrelError(f"cannot clone {typeof(obj)}")


def instanceof(obj: Any, klass: Any) -> bool:
    """``obj instanceof klass``."""
    if not isinstance(klass, type):
        raise SquirrelError("cannot apply instanceof between a " + typeof(obj) + " and a "
                            + typeof(klass))
    return isinstance(obj, Instance) and isinstance(obj, klass)


def caught(exc: BaseException) -> Any:
    """The value a Squirrel ``catch (e)`` sees for an exception: a thrown value as thrown, a
    runtime error (Squirrel's or a Python one from the bridge) as its message string."""
    if isinstance(exc, SquirrelError):
        return exc.value
    if isinstance(exc, NameError):
        return f"the index '{exc.name}' does not exist"
    if isinstance(exc, AttributeError) and exc.name is not None:
        return f"the index '{exc.name}' does not exist"
    if isinstance(exc, KeyError) and exc.args:
        return f"the index '{tostring(exc.args[0])}' does not exist"
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, RecursionError):
        return "stack overflow"
    return str(exc) or type(exc).__name__


def throw(value: Any) -> SquirrelError:
    """The exception for ``throw value`` (``raise sq.throw(value)``)."""
    return SquirrelError(value)


__all__ = ["caught", "clone", "delete", "fill", "has", "index", "instanceof", "items", "newslot",
           "set_index", "throw", "values"]
