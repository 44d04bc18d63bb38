"""Pure conversions between bridge `Message` objects and proton messages, and error texts.

The received-value mapping is imp's (imp-amqp-api.md §3.1): null, bool, every integer type,
float/double, string, symbol -> str, binary -> bytes, list/array -> list, map -> dict. Any other
AMQP type (uuid, timestamp, decimal*, char, described) becomes the string
``"Unhandled message body type <TYPE>"`` in a body and makes an application property be left
out (statements 30, 32, 33). Nothing here raises on received data.
"""

from __future__ import annotations

import uuid
from typing import Any

from proton import (
    UNDESCRIBED,
    Array,
    Described,
    char,
    decimal32,
    decimal64,
    decimal128,
    timestamp,
    ulong,
)
from proton import Message as ProtonMessage

from bridge.contract.message import INT64_MAX, INT64_MIN, BodyKind, Message

UNHANDLED_PREFIX = "Unhandled message body type"

# Subclasses of int/str/bytes that imp did not map: checked before the plain types.
_UNSUPPORTED_SUBTYPES: tuple[tuple[type, str], ...] = (
    (timestamp, "timestamp"),
    (decimal32, "decimal32"),
    (decimal64, "decimal64"),
    (decimal128, "decimal128"),
    (char, "char"),
)


class Unhandled:
    """A received value of an AMQP type imp did not map; remembers the type name."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"Unhandled({self.type_name})"

    def text(self) -> str:
        return f"{UNHANDLED_PREFIX} {self.type_name}"


def from_amqp(value: Any) -> Any:
    """One received AMQP value as a Python value, or `Unhandled` for an unmapped type."""
    if value is None or isinstance(value, bool):
        return value
    for kind, name in _UNSUPPORTED_SUBTYPES:
        if isinstance(value, kind):
            return Unhandled(name)
    if isinstance(value, str):  # string and symbol
        return str(value)
    if isinstance(value, int):  # byte ... ulong
        return int(value)
    if isinstance(value, float):  # float32, double
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):  # proton hands binary as memoryview
        return bytes(value)
    if isinstance(value, Array):
        if value.descriptor is not UNDESCRIBED:
            return Unhandled("described")
        return [_body_item(item) for item in value.elements]
    if isinstance(value, list | tuple):
        return [_body_item(item) for item in value]
    if isinstance(value, dict):
        return {_map_key(key): _body_item(item) for key, item in value.items()}
    if isinstance(value, uuid.UUID):
        return Unhandled("uuid")
    if isinstance(value, Described):
        return Unhandled("described")
    return Unhandled(type(value).__name__)


def _body_item(value: Any) -> Any:
    converted = from_amqp(value)
    return converted.text() if isinstance(converted, Unhandled) else converted


def _map_key(value: Any) -> Any:
    key = _body_item(value)
    try:
        hash(key)
    except TypeError:  # AMQP allows a list as a map key; a dict cannot hold one
        return repr(key)
    return key


def body_from_amqp(value: Any) -> Any:
    """The ``body()`` of a received amqp-value (or amqp-sequence) section."""
    return _body_item(value)


def properties_from_amqp(properties: dict[Any, Any] | None) -> dict[str, Any]:
    """Received application properties; a pair that cannot be converted is left out.

    Keys must be strings (the AMQP spec says so); a null value carries nothing and is left out
    too, so every kept value is an int, float, bool, str or bytes.
    """
    kept: dict[str, Any] = {}
    for key, value in (properties or {}).items():
        if not isinstance(key, str) or isinstance(key, char):
            continue
        converted = from_amqp(value)
        if converted is None or isinstance(converted, Unhandled | list | dict):
            continue
        kept[str(key)] = converted
    return kept


def message_from_proton(message: ProtonMessage) -> Message:
    """A received proton message as a bridge `Message`.

    A data section (proton: ``inferred`` with a binary body) becomes ``BodyKind.DATA`` bytes;
    anything else (amqp-value, amqp-sequence, no body) is ``BodyKind.VALUE``.
    """
    body = message.body
    properties = properties_from_amqp(message.properties)
    if message.inferred and isinstance(body, bytes | bytearray | memoryview):
        return Message(bytes(body), properties, BodyKind.DATA)
    return Message(body_from_amqp(body), properties, BodyKind.VALUE)


# -- outgoing ---------------------------------------------------------------------------------


def to_amqp(value: Any) -> Any:
    """A Python value as something proton encodes (its encoder wants the exact base types).

    Messages made by ``createmessage`` hold a str; a received message that is sent on again may
    hold any value `from_amqp` produced, so lists and maps are encoded as well.
    """
    if value is None or type(value) in (bool, str, float, bytes):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int(value)
        if INT64_MIN <= number <= INT64_MAX:
            return number  # proton: long
        return ulong(number) if 0 <= number < 2**64 else str(number)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [to_amqp(item) for item in value]
    if isinstance(value, dict):
        return {to_amqp(key): to_amqp(item) for key, item in value.items()}
    return str(value)


def properties_to_amqp(properties: dict[str, Any]) -> dict[str, Any] | None:
    """Application properties for the wire: str keys, simple values with their types kept."""
    if not properties:
        return None
    encoded: dict[str, Any] = {}
    for key, value in properties.items():
        item = to_amqp(value)
        encoded[str(key)] = item if not isinstance(item, list | dict) else str(value)
    return encoded


def message_to_proton(message: Message) -> ProtonMessage:
    """``createmessage`` -> amqp-value section; ``createbinarymessage`` -> one data section."""
    properties = properties_to_amqp(message.properties())
    if message.kind is BodyKind.DATA:
        body = message.body()
        payload = body if type(body) is bytes else bytes(body)
        return ProtonMessage(body=payload, inferred=True, properties=properties)
    return ProtonMessage(body=to_amqp(message.body()), inferred=False, properties=properties)


# -- error texts -------------------------------------------------------------------------------


def condition_text(condition: Any, fallback: str) -> str:
    """``"<condition symbol>: <description>"`` of a proton `Condition` (or *fallback*)."""
    if condition is None or not getattr(condition, "name", None):
        return fallback
    name = str(condition.name)
    description = condition.description
    return f"{name}: {description}" if description else name


def outcome_text(outcome: str, condition: Any = None, *, failed: bool = False,
                 undeliverable: bool = False) -> str:
    """The detail of a transfer the peer did not accept, naming the outcome."""
    if outcome == "rejected":
        reason = condition_text(condition, "")
        return f"rejected: {reason}" if reason else "rejected by the peer"
    if outcome == "modified":
        flags = [name for name, on in (("delivery-failed", failed),
                                       ("undeliverable-here", undeliverable)) if on]
        return f"modified: not delivered ({', '.join(flags) or 'no flags'})"
    return f"{outcome}: the peer did not take the message"


__all__ = [
    "UNHANDLED_PREFIX",
    "Unhandled",
    "body_from_amqp",
    "condition_text",
    "from_amqp",
    "message_from_proton",
    "message_to_proton",
    "outcome_text",
    "properties_from_amqp",
    "properties_to_amqp",
    "to_amqp",
]
