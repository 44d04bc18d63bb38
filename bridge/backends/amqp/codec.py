"""Pure conversions between bridge `Message` objects and proton messages, and error texts.

The received-value mapping is imp's (imp-amqp-api.md §3.1): null, bool, every integer type,
float/double, string, symbol -> str, binary -> bytes, list/array -> list, map -> dict. Any other
AMQP type (uuid, timestamp, decimal*, char, described) becomes the string
``"Unhandled message body type <TYPE>"`` in a body and makes an application property be left
out (statements 30, 32, 33). Nothing here raises on received data, except `decode_message` on
bytes that are not an AMQP message at all.

What imp would silently drop or map (an unsupported type, a property left out, a body made of
several or unexpected sections) is also noted as a *problem* while `collect_problems` is active,
so the receiving side can report malformed traffic (a warning and a counter) without the codec
doing any logging itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from proton import (
    UNDESCRIBED,
    Array,
    Data,
    Described,
    char,
    decimal32,
    decimal64,
    decimal128,
    timestamp,
    ulong,
)
from proton import Message as ProtonMessage

from bridge.backends.amqp import fastcodec
from bridge.contract.message import INT64_MAX, INT64_MIN, BodyKind, Message
from bridge.engines.problems import collect_problems
from bridge.engines.problems import note as _problem

# What a message without a body section is noted as. Legal in practice for some peers: a CBS
# reply's body "MUST be empty" (the AMQP CBS draft, as Azure's uamqp implements it).
NO_BODY = "the message has no body section (delivered with a null body)"

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
    if isinstance(converted, Unhandled):
        _problem(f"the body holds a value of AMQP type {converted.type_name}, given as "
                 f"{converted.text()!r}")
        return converted.text()
    return converted


def _map_key(value: Any) -> Any:
    key = _body_item(value)
    try:
        hash(key)
    except TypeError:  # AMQP allows a list as a map key; a dict cannot hold one
        _problem("the body holds a map with a list or map as a key, given as its repr()")
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
    if properties is None:
        return kept
    if not isinstance(properties, dict):
        _problem(f"the application-properties section is a {type(properties).__name__}, not a "
                 f"map: no properties delivered")
        return kept
    for key, value in properties.items():
        if not isinstance(key, str) or isinstance(key, char):
            _problem(f"an application property key of type {type(key).__name__} (not a "
                     f"string) was left out")
            continue
        converted = from_amqp(value)
        if converted is None:
            continue  # null: nothing to deliver, and a legal AMQP value
        if isinstance(converted, Unhandled | list | dict):
            kind = converted.type_name if isinstance(converted, Unhandled) else \
                type(converted).__name__
            _problem(f"application property {str(key)[:64]!r} of type {kind} was left out")
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


# -- the sections of a received message ----------------------------------------------------------

HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS, PROPERTIES, APPLICATION_PROPERTIES = \
    0x70, 0x71, 0x72, 0x73, 0x74
DATA, AMQP_SEQUENCE, AMQP_VALUE, FOOTER = 0x75, 0x76, 0x77, 0x78
_SECTION_NAMES = {
    "amqp:header:list": HEADER, "amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
    "amqp:message-annotations:map": MESSAGE_ANNOTATIONS, "amqp:properties:list": PROPERTIES,
    "amqp:application-properties:map": APPLICATION_PROPERTIES, "amqp:data:binary": DATA,
    "amqp:amqp-sequence:list": AMQP_SEQUENCE, "amqp:amqp-value:*": AMQP_VALUE,
    "amqp:footer:map": FOOTER,
}
# Bytes of a fixed-width value by the high nibble of its constructor (AMQP 1.0, 1.2).
_FIXED_WIDTH = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}


def _skip_value(raw: bytes, pos: int, depth: int = 0) -> int:
    """The offset just past the encoded value at *pos*; ValueError if it is not one."""
    if pos >= len(raw) or depth > 4:
        raise ValueError("truncated or nested too deeply")
    code = raw[pos]
    pos += 1
    if code == 0x00:  # described: descriptor, then the value
        return _skip_value(raw, _skip_value(raw, pos, depth + 1), depth + 1)
    width = _FIXED_WIDTH.get(code >> 4)
    if width is not None:
        end = pos + width
    elif code >> 4 in (0xA, 0xC, 0xE):  # variable, compound, array: one-byte size
        end = pos + 1 + raw[pos] if pos < len(raw) else len(raw) + 1
    elif code >> 4 in (0xB, 0xD, 0xF):  # ... four-byte size
        if pos + 4 > len(raw):
            raise ValueError("truncated")
        end = pos + 4 + int.from_bytes(raw[pos:pos + 4], "big")
    else:
        raise ValueError(f"no AMQP type has the constructor 0x{code:02x}")
    if end > len(raw):
        raise ValueError("truncated")
    return end


def _section_code(raw: bytes, pos: int) -> tuple[int | None, int]:
    """(section code or None if unknown, offset of its value) of the section at *pos*."""
    if raw[pos] != 0x00:
        raise ValueError(f"byte {pos} starts no described section (constructor "
                         f"0x{raw[pos]:02x})")
    kind = raw[pos + 1] if pos + 1 < len(raw) else -1
    if kind == 0x53 and pos + 2 < len(raw):  # smallulong, the usual form
        return raw[pos + 2], pos + 3
    if kind == 0x80:  # ulong
        return int.from_bytes(raw[pos + 2:pos + 10], "big"), pos + 10
    value_at = _skip_value(raw, pos + 1)
    if kind in (0xA3, 0xB3):  # a symbol descriptor
        start = pos + (3 if kind == 0xA3 else 6)
        return _SECTION_NAMES.get(raw[start:value_at].decode("ascii", "replace")), value_at
    return None, value_at


def sections(raw: bytes) -> list[tuple[int | None, int, int]]:
    """(section code, value start, value end) of each top-level section of an encoded message.

    Only the sizes in the encoding are followed (nothing is copied or decoded), so this is cheap
    next to proton's own decoding. ValueError if *raw* is not a sequence of described sections.
    """
    found: list[tuple[int | None, int, int]] = []
    pos = 0
    while pos < len(raw):
        code, value_at = _section_code(raw, pos)
        end = _skip_value(raw, value_at)
        found.append((code if code is None or 0x70 <= code <= 0x78 else None, value_at, end))
        pos = end
    return found


def _binary_at(raw: bytes, start: int, end: int) -> bytes:
    header = {0xA0: 2, 0xB0: 5}.get(raw[start])
    if header is None:
        raise ValueError("a data section that does not hold binary")
    return raw[start + header:end]


def _list_at(raw: bytes, start: int, end: int) -> list[Any]:
    data = Data()
    data.decode(raw[start:end])
    data.next()
    value = data.get_object()
    if not isinstance(value, list):
        raise ValueError("an amqp-sequence section that does not hold a list")
    return value


# proton's decoder holds at most 65,535 values per message and silently drops the rest of a
# larger body (a 40,000-entry map arrives with 32,767 entries). A value takes at least one byte,
# so only a body section that large can have lost anything.
_PROTON_VALUE_LIMIT = 65_535
_NEAR_LIMIT = 65_000


def _values_at_least(value: Any, limit: int) -> int:
    """How many AMQP values *value* holds, counting up to *limit* (iterative: no recursion)."""
    count, stack = 0, [value]
    while stack and count < limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, Array):
            stack.extend(item.elements)
    return count


def decode_message(raw: bytes) -> Message:
    """A received transfer's bytes as a bridge `Message`, noting problems (`collect_problems`).

    Raises ValueError (or proton's error) only when *raw* is not an AMQP message at all; such a
    delivery is rejected by the handler. The body rules of AMQP 1.0 (3.2): one or more data
    sections (delivered as their concatenation - proton alone would keep only the last), one or
    more amqp-sequence sections (one list), or exactly one amqp-value. Other layouts are
    delivered as proton reads them and reported.
    """
    fast = fastcodec.decode(raw)
    if fast is not None:  # the plain shape, read without proton (identical result)
        return fast
    layout = sections(raw)
    received = ProtonMessage()
    received.decode(raw)
    message = message_from_proton(received)
    codes = [code for code, _, _ in layout]
    body = [(code, start, end) for code, start, end in layout
            if code in (DATA, AMQP_SEQUENCE, AMQP_VALUE)]
    kinds = {code for code, _, _ in body}
    if any(end - start >= _NEAR_LIMIT for code, start, end in body if code != DATA) \
            and _values_at_least(received.body, _NEAR_LIMIT) >= _NEAR_LIMIT:
        _problem(f"the body holds about {_PROTON_VALUE_LIMIT:,} values or more, the most proton "
                 f"decodes in one message: what is past that was dropped")
    if None in codes:
        _problem("the message has a section of an unknown kind (ignored)")
    if not body:
        _problem(NO_BODY)
    elif len(kinds) > 1 or codes.count(AMQP_VALUE) > 1:
        names = ", ".join(f"0x{code:02x}" for code, _, _ in body)
        _problem(f"the body is made of sections {names}, which AMQP does not allow together; "
                 f"only what proton kept is delivered")
    elif kinds == {DATA} and any(raw[start] not in (0xA0, 0xB0) for _, start, _ in body):
        _problem("a data section holds something other than binary; delivered as proton "
                 "read it")
    elif kinds == {DATA} and len(body) > 1:
        joined = b"".join(_binary_at(raw, start, end) for _, start, end in body)
        return Message(joined, message.properties(), BodyKind.DATA)
    elif kinds == {AMQP_SEQUENCE}:
        _problem("the body is an amqp-sequence (imp has no such body): delivered as a list")
        if len(body) > 1:
            items = [item for _, start, end in body for item in _list_at(raw, start, end)]
            return Message(body_from_amqp(items), message.properties(), BodyKind.VALUE)
    return message


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


def message_to_proton(message: Message, *, durable: bool = False) -> ProtonMessage:
    """``createmessage`` -> amqp-value section; ``createbinarymessage`` -> one data section.

    *durable* sets the header's durable flag (``amqp.durable``): a broker keeps such a message
    across a restart (RabbitMQ: persistent), if its queue is durable too.
    """
    properties = properties_to_amqp(message.properties())
    if message.kind is BodyKind.DATA:
        body = message.body()
        payload = body if type(body) is bytes else bytes(body)
        return ProtonMessage(body=payload, inferred=True, properties=properties,
                             durable=durable)
    return ProtonMessage(body=to_amqp(message.body()), inferred=False, properties=properties,
                         durable=durable)


def encode_message(message: Message, *, durable: bool = False) -> bytes:
    """The bytes of one transfer: `message_to_proton` encoded (directly, for the plain shapes)."""
    encoded = fastcodec.encode(message, durable=durable)
    if encoded is None:
        encoded = message_to_proton(message, durable=durable).encode()
    return encoded


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
    "collect_problems",
    "condition_text",
    "decode_message",
    "encode_message",
    "from_amqp",
    "message_from_proton",
    "message_to_proton",
    "outcome_text",
    "properties_from_amqp",
    "properties_to_amqp",
    "to_amqp",
]
