"""Assignments used as values (``f(x = 1)``, ``a.b++`` inside an expression): each sets, then
returns what Squirrel's expression evaluates to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.squirrel.runtime.access import index, set_index
from bridge.squirrel.runtime.values import Cell


def set_attr(obj: Any, name: str, value: Any) -> Any:
    """``obj.name = value`` as an expression: the value."""
    setattr(obj, name, value)
    return value


def set_cell(cell: Cell, value: Any) -> Any:
    """An assignment to a boxed local as an expression: the value."""
    cell.value = value
    return value


def first(value: Any, _after: Any) -> Any:
    """``x++`` as a value: the old value (the second argument did the assignment)."""
    return value


def bump_attr(obj: Any, name: str, step: Callable[[Any], Any], prefix: bool) -> Any:
    """``++obj.name`` / ``obj.name++`` as a value."""
    old = index(obj, name)
    new = step(old)
    set_index(obj, name, new)
    return new if prefix else old


def bump_index(obj: Any, key: Any, step: Callable[[Any], Any], prefix: bool) -> Any:
    """``++obj[key]`` / ``obj[key]++`` as a value."""
    old = index(obj, key)
    new = step(old)
    set_index(obj, key, new)
    return new if prefix else old


def root_set(namespace: dict[str, Any], name: str, value: Any) -> Any:
    """``name = value`` for a root-table slot nobody created with ``<-``: Squirrel throws when
    the slot does not exist."""
    from bridge.squirrel.runtime.values import MissingIndex
    if name not in namespace:
        raise MissingIndex(name)
    namespace[name] = value
    return value


__all__ = ["bump_attr", "bump_index", "first", "root_set", "set_attr", "set_cell"]
