"""The Squirrel value types translated code creates, and the error every Squirrel throw becomes.

Squirrel tables, arrays and instances are references compared by identity, so ``Table`` and
``Array`` keep ``dict``/``list`` storage (fast, and the bridge's API takes them as they are) but
compare and hash by identity. Values that reach translated code from the bridge (plain ``dict``,
``list``, ``bytes``) are accepted everywhere a table, array or blob is.
"""

from __future__ import annotations

from typing import Any


def value_text(value: Any) -> str:
    """A value in an error message. `bridge.squirrel.runtime.ops.tostring` (which imports this
    module) replaces it with the full Squirrel text at import; this is the fallback."""
    return str(value)


class SquirrelError(Exception):
    """A Squirrel ``throw`` (of any value) or a runtime error (whose value is its message)."""

    def __init__(self, value: Any = None) -> None:
        self.value = value
        super().__init__(value)

    def __str__(self) -> str:
        return self.value if isinstance(self.value, str) else value_text(self.value)


class MissingIndex(SquirrelError, AttributeError):
    """Reading (or ``=``-assigning) a slot that does not exist: "the index 'x' does not exist".

    Also an AttributeError, so Python's own attribute probes (``getattr(x, n, default)``) work.
    """

    def __init__(self, key: Any) -> None:
        SquirrelError.__init__(self, f"the index '{value_text(key)}' does not exist")


_dict_get = dict.get
_ABSENT = object()


def _missing(key: Any) -> MissingIndex:
    return MissingIndex(key)


class Table(dict):
    """A Squirrel table: slots read as attributes (``t.name``) or items (``t["name"]``).

    A missing slot read throws; ``=`` on a missing slot throws (only ``<-``, `newslot`, creates).
    """

    __slots__ = ()
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __missing__(self, key: Any) -> Any:
        raise _missing(key)

    def __getattr__(self, name: str) -> Any:
        # Only after dict's own attributes: Python's machinery (json, copy) keeps C speed;
        # the translator reads a slot named like a dict attribute with sq.get (t.keys is the
        # slot "keys", as in Squirrel) and a table-only variable's slots as t["name"].
        if name.startswith("__"):
            raise AttributeError(name)
        value = _dict_get(self, name, _ABSENT)
        if value is _ABSENT:
            raise _missing(name)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self:
            raise _missing(name)
        dict.__setitem__(self, name, value)

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self:
            raise _missing(key)
        dict.__setitem__(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:  # copy/pickle: the slots exist only afterwards
        return (Table, (dict(self),))

    def __repr__(self) -> str:
        return f"Table({dict.__repr__(self)})"


class Array(list):
    """A Squirrel array: a list compared by identity (Squirrel arrays are references)."""

    __slots__ = ()
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Array({list.__repr__(self)})"


class SquirrelClass(type):
    """The type of translated Squirrel classes, with Squirrel's rules for class slots: ``=`` on
    one throws ("trying to set 'class'"), ``<-`` (`newslot`) adds one until the class has an
    instance; static members are not assignable through an instance."""

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        cls._sq_refresh()

    def _sq_refresh(cls) -> None:
        fields: set[str] = set()
        for klass in reversed(cls.__mro__):
            own = klass.__dict__
            statics = set(own.get("_sq_statics", ()))
            fields -= statics
            fields.update(n for n in own.get("_sq_members", ()) if n not in statics)
        type.__setattr__(cls, "_sq_fields", frozenset(fields))

    def __setattr__(cls, name: str, value: Any) -> None:
        raise SquirrelError("trying to set 'class'")

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not cls.__dict__.get("_sq_locked"):
            type.__setattr__(cls, "_sq_locked", True)
        return super().__call__(*args, **kwargs)

    def sq_newslot(cls, name: str, value: Any) -> None:
        """``Class.name <- value``."""
        if cls.__dict__.get("_sq_locked"):
            raise SquirrelError("trying to modify a class that has already been instantiated")
        type.__setattr__(cls, name, value)
        members = cls.__dict__.get("_sq_members", ())
        if name not in members:
            type.__setattr__(cls, "_sq_members", (*members, name))
        cls._sq_refresh()


class Instance(metaclass=SquirrelClass):
    """Base of every translated Squirrel class.

    Member defaults are class attributes (so, as in Squirrel, a table or array default is shared
    by the instances until one assigns its own); assigning a member the class does not declare
    throws, unless the class has a ``_set`` metamethod; reading one calls ``_get`` if defined.
    """

    __slots__ = ("__dict__", "__weakref__")

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("__", "_sq_")):  # Python's and the runtime's own probes
            raise AttributeError(name)
        return self._sq_get(name)

    def _sq_get(self, key: Any) -> Any:
        """A member that is not there: the ``_get`` metamethod's answer (throwing null from it
        means "does not exist", as in Squirrel), else the missing-index error."""
        getter = getattr(type(self), "_get", None)
        if getter is None:
            raise _missing(key)
        try:
            return getter(self, key)
        except SquirrelError as exc:
            if exc.value is None:
                raise _missing(key) from None
            raise

    _sq_fields: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self)._sq_fields or name in self.__dict__:
            object.__setattr__(self, name, value)
            return
        setter = getattr(type(self), "_set", None)
        if setter is not None:
            setter(self, name, value)
            return
        raise _missing(name)

    # Squirrel's relational operators on instances go through the _cmp metamethod.
    def _sq_cmp(self, other: Any) -> int:
        cmp = getattr(type(self), "_cmp", None)
        if cmp is None:
            raise SquirrelError(f"comparison between 'instance' and '{value_text(other)}'")
        result = cmp(self, other)
        return int(result)

    def __lt__(self, other: Any) -> bool:
        return self._sq_cmp(other) < 0

    def __le__(self, other: Any) -> bool:
        return self._sq_cmp(other) <= 0

    def __gt__(self, other: Any) -> bool:
        return self._sq_cmp(other) > 0

    def __ge__(self, other: Any) -> bool:
        return self._sq_cmp(other) >= 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} instance>"


class RootTable:
    """The root table (``getroottable()``, the top level's ``this``): a view of the generated
    module's globals, which hold the root slots."""

    __slots__ = ("_ns",)

    def __init__(self, namespace: dict[str, Any]) -> None:
        object.__setattr__(self, "_ns", namespace)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._ns[name]
        except KeyError:
            raise _missing(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._ns:
            raise _missing(name)
        self._ns[name] = value

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._ns[key]
        except KeyError:
            raise _missing(key) from None

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self._ns:
            raise _missing(key)
        self._ns[key] = value

    def __contains__(self, key: Any) -> bool:
        return key in self._ns

    def __len__(self) -> int:
        return len(self._ns)

    def newslot(self, key: Any, value: Any) -> Any:
        self._ns[key] = value
        return value

    def rawin(self, key: Any) -> bool:
        return key in self._ns

    def rawget(self, key: Any) -> Any:
        return self[key]

    def rawset(self, key: Any, value: Any) -> RootTable:
        self._ns[key] = value
        return self

    def rawdelete(self, key: Any) -> Any:
        return self._ns.pop(key, None)

    def len(self) -> int:
        return len(self._ns)


class Cell:
    """A boxed local: lets a closure created in a loop body see its own iteration's variable."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value


__all__ = ["Array", "Cell", "Instance", "MissingIndex", "RootTable", "SquirrelClass",
           "SquirrelError", "Table"]
