"""`Message` and the property type rules every backend shares.

imp kept integer, float, bool and string property values with their type and converted anything
else with a string conversion; keys had to be strings. The same rules apply here, so a property
table means the same thing on every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

PropertyValue = int | float | bool | str
Properties = dict[str, PropertyValue]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class BodyKind(StrEnum):
    """Which AMQP body section a message carries."""

    VALUE = "value"  # amqp-value section: createmessage(), a string or any received AMQP value
    DATA = "data"  # data section: createbinarymessage(), bytes


def normalize_property_value(value: object) -> PropertyValue:
    """Keep int/float/bool/str with their type; turn anything else into ``str(value)``.

    Integers outside the signed 64-bit range cannot travel as an AMQP ``long`` on every backend,
    so they are converted to strings here, once, for all backends.
    """
    if isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    return str(value)


def normalize_properties(properties: object, *, argument: str = "properties") -> Properties:
    """Validate and copy an outgoing property table.

    Raises ``TypeError`` naming *argument* when the table is not a mapping or a key is not a str.
    """
    if properties is None:
        return {}
    if not isinstance(properties, Mapping):
        raise TypeError(
            f"{argument} must be a dict of str keys to values, got {type(properties).__name__}"
        )
    normalized: Properties = {}
    for key, value in properties.items():
        if not isinstance(key, str):
            raise TypeError(
                f"{argument} keys must be str, got {type(key).__name__} key {key!r}"
            )
        normalized[key] = normalize_property_value(value)
    return normalized


class Message:
    """An immutable AMQP message: a body (value or data section) and application properties.

    ``properties()`` returns a copy, so changing it never changes the message.
    """

    __slots__ = ("_body", "_kind", "_properties")

    def __init__(self, body: Any, properties: Properties | None = None,
                 kind: BodyKind = BodyKind.VALUE) -> None:
        # Trusted constructor: callers (factories, backends) have already validated the inputs.
        self._body = body
        self._properties: Properties = properties if properties is not None else {}
        self._kind = kind

    @classmethod
    def value(cls, body: str, properties: object = None) -> Message:
        """What ``amqp.createmessage`` builds: an AMQP value (string) body."""
        if not isinstance(body, str):
            binary = isinstance(body, bytes | bytearray)
            hint = " (use createbinarymessage for bytes)" if binary else ""
            raise TypeError(f"body must be str, got {type(body).__name__}{hint}")
        return cls(body, normalize_properties(properties), BodyKind.VALUE)

    @classmethod
    def data(cls, body: bytes | bytearray | memoryview | str, properties: object = None) -> Message:
        """What ``amqp.createbinarymessage`` builds: an AMQP data (binary) body."""
        if isinstance(body, str):
            payload = body.encode("utf-8")
        elif isinstance(body, bytes | bytearray | memoryview):
            payload = bytes(body)
        else:
            raise TypeError(f"body must be bytes or str, got {type(body).__name__}")
        return cls(payload, normalize_properties(properties), BodyKind.DATA)

    @property
    def kind(self) -> BodyKind:
        """``BodyKind.VALUE`` or ``BodyKind.DATA``."""
        return self._kind

    def body(self) -> Any:
        """The body: ``bytes`` for a data section, the Python value for a value section."""
        return self._body

    def properties(self) -> Properties:
        """A copy of the application properties (``{}`` when there are none)."""
        return dict(self._properties)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self._kind, self._body, self._properties) == (
            other._kind, other._body, other._properties)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value object

    def __repr__(self) -> str:
        body = self._body
        shown = repr(body) if len(repr(body)) <= 60 else repr(body)[:57] + "..."
        return f"Message({self._kind.value}, body={shown}, properties={self._properties!r})"


def received_value(value: Any) -> Any:
    """Map a received AMQP value to what imp's ``body()`` gave (statement 32/33).

    None, bool, int, float, str and bytes pass; lists/tuples become lists and maps dicts
    (recursively); anything else becomes the string ``Unhandled message body type <TYPE>``.
    Backends with richer type systems (proton symbols, arrays) convert to these first.
    """
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, list | tuple):
        return [received_value(item) for item in value]
    if isinstance(value, Mapping):
        return {received_value(k): received_value(v) for k, v in value.items()}
    return f"Unhandled message body type {type(value).__name__}"


def received_properties(properties: Mapping[Any, Any] | None) -> Properties:
    """Keep received properties imp could represent; silently leave out the rest (statement 30)."""
    if not properties:
        return {}
    return {key: value for key, value in properties.items()
            if isinstance(key, str) and isinstance(value, bool | int | float | str)}
