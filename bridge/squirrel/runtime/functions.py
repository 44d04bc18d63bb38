"""The function delegate: ``bindenv``, ``call``, ``pcall``, ``acall``, ``pacall``, ``getinfos``.

Translated functions get their ``this`` statically: a method's ``this`` is the instance it is
bound to (``self``), and a function written inside a method closes over that ``self``. So
``f.bindenv(this)`` in a method is the function itself, and ``bindenv``/``call`` with another
environment rebind only a method of a translated class (the translator rejects functions that
would need a dynamic ``this`` elsewhere).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

from bridge.squirrel.runtime.values import Array, Instance, SquirrelError, Table


def bindenv(fn: Any, env: Any) -> Any:
    """``fn.bindenv(env)``: a method of a translated class rebound to ``env``; else ``fn``."""
    if isinstance(fn, types.MethodType) and isinstance(fn.__self__, Instance):
        if isinstance(env, Instance) and env is not fn.__self__:
            return types.MethodType(fn.__func__, env)
        return fn
    if not callable(fn):
        raise SquirrelError("the index 'bindenv' does not exist")
    return fn


def call(fn: Any, env: Any, *args: Any) -> Any:
    """``fn.call(env, args...)``."""
    return bindenv(fn, env)(*args)


def pcall(fn: Any, env: Any, *args: Any) -> Any:
    """``fn.pcall(env, args...)``: as ``call`` (the bridge has no error handler to skip)."""
    return bindenv(fn, env)(*args)


def acall(fn: Any, args: Any) -> Any:
    """``fn.acall([env, args...])``."""
    if not isinstance(args, (list, tuple)) or not args:
        raise SquirrelError("the array must contain at least the environment")
    return call(fn, args[0], *args[1:])


def pacall(fn: Any, args: Any) -> Any:
    """``fn.pacall([env, args...])``."""
    return acall(fn, args)


def getinfos(fn: Callable[..., Any]) -> Table:
    """``fn.getinfos()``: name and parameters, as far as Python knows them."""
    code = getattr(fn, "__code__", None)
    params = Array(["this", *code.co_varnames[:code.co_argcount]]) if code else Array()
    return Table({"name": getattr(fn, "__name__", None), "native": code is None,
                  "parameters": params, "src": getattr(code, "co_filename", None)})


BUILTINS: dict[str, Callable[..., Any]] = {
    "bindenv": bindenv, "call": call, "pcall": pcall, "acall": acall, "pacall": pacall,
    "getinfos": getinfos,
}

__all__ = ["BUILTINS", "acall", "bindenv", "call", "getinfos", "pacall", "pcall"]
