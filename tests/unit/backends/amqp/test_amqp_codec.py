"""bridge.backends.amqp.codec: imp's AMQP type mapping, body sections, error texts."""

from __future__ import annotations

import enum
import uuid
from typing import Any

import pytest
from proton import (
    UNDESCRIBED,
    Array,
    Condition,
    Data,
    Described,
    byte,
    char,
    decimal32,
    decimal64,
    decimal128,
    float32,
    int32,
    short,
    symbol,
    timestamp,
    ubyte,
    uint,
    ulong,
    ushort,
)
from proton import Message as ProtonMessage

from bridge.backends.amqp import codec
from bridge.contract.message import BodyKind, Message

# (received AMQP value, expected Python value) -- statement 33 and §3.1 of the imp spec
MAPPED: list[tuple[Any, Any]] = [
    (None, None),
    (True, True),
    (False, False),
    (byte(-3), -3), (short(-300), -300), (int32(-70000), -70000), (2**40, 2**40),
    (ubyte(3), 3), (ushort(300), 300), (uint(2**32 - 1), 2**32 - 1), (ulong(2**64 - 1), 2**64 - 1),
    (float32(1.5), 1.5), (2.25, 2.25),
    ("text", "text"), (symbol("sym"), "sym"),
    (b"\x00\xff", b"\x00\xff"), (memoryview(b"mv"), b"mv"),
    ([1, "a", symbol("s")], [1, "a", "s"]),
    (Array(UNDESCRIBED, Data.INT, 1, 2, 3), [1, 2, 3]),
    ({symbol("k"): ulong(1), "n": {"x": [b"y"]}}, {"k": 1, "n": {"x": [b"y"]}}),
]

UNHANDLED: list[tuple[Any, str]] = [
    (uuid.uuid4(), "uuid"), (timestamp(1), "timestamp"), (decimal32(1), "decimal32"),
    (decimal64(1), "decimal64"), (decimal128(b"\x00" * 16), "decimal128"), (char("c"), "char"),
    (Described(symbol("x:y"), "v"), "described"),
    (Array(symbol("d"), Data.INT, 1), "described"),
]


@pytest.mark.parametrize(("value", "expected"), MAPPED)
def test_received_values_map_to_python_types(value: Any, expected: Any) -> None:
    got = codec.body_from_amqp(value)
    assert got == expected
    assert type(got) is type(expected)  # exact base types: no proton subclasses leak out


@pytest.mark.parametrize(("value", "name"), UNHANDLED)
def test_unsupported_body_types_become_the_imp_warning_string(value: Any, name: str) -> None:
    assert codec.body_from_amqp(value) == f"Unhandled message body type {name}"


def test_unsupported_values_inside_containers_become_warning_strings() -> None:
    assert codec.body_from_amqp([1, timestamp(5)]) == [1, "Unhandled message body type timestamp"]
    assert codec.body_from_amqp({"id": uuid.uuid4()}) == {"id": "Unhandled message body type uuid"}
    assert codec.body_from_amqp({(1, 2): "list key"}) == {"[1, 2]": "list key"}


def test_properties_keep_simple_types_and_leave_out_the_rest() -> None:
    received = {"status-code": 200, "count": ulong(7), "small": ubyte(1), "ratio": float32(0.5),
                "ok": True, "name": "dev", "sym": symbol("s"), "bin": memoryview(b"\x01"),
                "id": uuid.uuid4(), "at": timestamp(5), "c": char("x"), "dec": decimal64(1),
                "desc": Described(symbol("a"), 1), "none": None}
    got = codec.properties_from_amqp(received)
    assert got == {"status-code": 200, "count": 7, "small": 1, "ratio": 0.5, "ok": True,
                   "name": "dev", "sym": "s", "bin": b"\x01"}
    assert [type(got[k]) for k in got] == [int, int, int, float, bool, str, str, bytes]


def test_properties_with_non_string_keys_are_left_out() -> None:
    assert codec.properties_from_amqp({1: "x", char("c"): 1, symbol("s"): 2, "k": 3}) == \
        {"s": 2, "k": 3}
    assert codec.properties_from_amqp(None) == {}


def _wire(message: Message) -> ProtonMessage:
    """Encode as the backend does and decode as a peer would."""
    received = ProtonMessage()
    received.decode(codec.message_to_proton(message).encode())
    return received


def test_createmessage_is_an_amqp_value_section() -> None:
    encoded = codec.message_to_proton(Message.value("hello", {"k": 1})).encode()
    assert b"\x00Sw\xa1\x05hello" in encoded  # descriptor 0x77 = amqp-value, str8 "hello"
    received = _wire(Message.value("hello"))
    assert received.inferred is False and received.body == "hello"


def test_createbinarymessage_is_one_data_section() -> None:
    encoded = codec.message_to_proton(Message.data(b"\x00\x01")).encode()
    assert b"\x00Su\xa0\x02\x00\x01" in encoded  # descriptor 0x75 = data, vbin8
    received = _wire(Message.data("text"))
    assert received.inferred is True and bytes(received.body) == b"text"


class Level(enum.IntEnum):
    HIGH = 3


def test_outgoing_properties_keep_their_types_on_the_wire() -> None:
    props = {"status-code": 200, "neg": -1, "big": 2**62, "ratio": 0.5, "ok": True, "s": "x",
             "enum": Level.HIGH}
    received = _wire(Message.value("p", props))
    assert received.properties == {**props, "enum": 3}
    for key in props:  # long, double, bool, string: exact Python types after decoding
        assert type(received.properties[key]) is type(props[key] if key != "enum" else 3), key


def test_received_values_sent_on_again_are_encoded() -> None:
    again = Message({"k": [1, b"x", None], "u": 2**64 - 1}, {"big": 2**64 - 1}, BodyKind.VALUE)
    received = _wire(again)
    assert received.body == {"k": [1, b"x", None], "u": 2**64 - 1}
    assert received.properties == {"big": 2**64 - 1}
    assert codec.to_amqp(2**70) == str(2**70)  # no AMQP integer holds it
    marker = object()
    assert codec.to_amqp(marker) == str(marker)  # anything else travels as its string


def test_received_message_sections() -> None:
    cases = [
        (ProtonMessage(body=b"raw", inferred=True), BodyKind.DATA, b"raw"),
        (ProtonMessage(body=b"raw"), BodyKind.VALUE, b"raw"),  # binary inside an amqp-value
        (ProtonMessage(body=[1, 2], inferred=True), BodyKind.VALUE, [1, 2]),  # amqp-sequence
        (ProtonMessage(body="s", properties={"a": 1}), BodyKind.VALUE, "s"),
        (ProtonMessage(), BodyKind.VALUE, None),
    ]
    for sent, kind, body in cases:
        received = ProtonMessage()
        received.decode(sent.encode())
        message = codec.message_from_proton(received)
        assert (message.kind, message.body()) == (kind, body)
        assert type(message.body()) is type(body)
    assert codec.message_from_proton(ProtonMessage(body="x")).properties() == {}


def test_condition_text() -> None:
    assert codec.condition_text(Condition("amqp:unauthorized-access", "token expired"), "x") == \
        "amqp:unauthorized-access: token expired"
    assert codec.condition_text(Condition("amqp:not-found"), "x") == "amqp:not-found"
    assert codec.condition_text(None, "fallback") == "fallback"


def test_outcome_text_names_the_outcome_and_condition() -> None:
    assert codec.outcome_text("rejected", Condition("amqp:not-allowed", "no")) == \
        "rejected: amqp:not-allowed: no"
    assert codec.outcome_text("rejected") == "rejected by the peer"
    assert codec.outcome_text("released") == "released: the peer did not take the message"
    assert codec.outcome_text("modified", failed=True) == \
        "modified: not delivered (delivery-failed)"
    assert codec.outcome_text("modified") == "modified: not delivered (no flags)"
