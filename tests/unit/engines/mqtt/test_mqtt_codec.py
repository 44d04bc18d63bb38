"""Message <-> MQTT payload/properties codec: table-driven cases and property-based round trips."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.contract.message import INT64_MAX, INT64_MIN, BodyKind, Message
from bridge.engines.mqtt import codec

VALUE, DATA = BodyKind.VALUE, BodyKind.DATA


def v5_round_trip(message: Message) -> Message:
    encoded = codec.encode_v5(message)
    return codec.decode_v5(encoded.payload, encoded.user_properties)


def envelope_round_trip(message: Message) -> Message:
    return codec.decode_v311(codec.encode_envelope(message))


ROUND_TRIPS = [v5_round_trip, envelope_round_trip]

MESSAGES = [
    Message("hello", {}, VALUE),
    Message("", {}, VALUE),
    Message("héllo ✓ \x00 nul", {}, VALUE),
    Message("lone \ud800 surrogate", {}, VALUE),
    Message(b"\x00\x01\xff", {}, DATA),
    Message(b"", {}, DATA),
    Message(b'{"json": true}', {"k": 1}, DATA),
    Message([1, "a", None, True, 2.5, [b"x"]], {}, VALUE),  # received AMQP list
    Message({"k": 1, "nested": {"a": [1, 2]}}, {}, VALUE),  # AMQP map, str keys
    Message({1: "one", "$x": 2}, {}, VALUE),  # non-str and "$" keys: tagged
    Message({"$bytes": "not really"}, {}, VALUE),  # looks like a tag, is user data
    Message(42, {}, VALUE),
    Message(-2.5, {}, VALUE),
    Message(float("inf"), {}, VALUE),
    Message(None, {}, VALUE),
    Message(True, {}, VALUE),
    Message(b"bytes in a value section", {}, VALUE),
    Message("p", {"status-code": 200, "ratio": 0.5, "ok": True, "off": False, "name": "dev",
                  "negative": -7, "big": 2**40, "max": INT64_MAX, "min": INT64_MIN,
                  "zero": 0.0, "negzero": -0.0, "tiny": 5e-324, "inf": float("inf"),
                  "empty": "", "looks-int": "200", "looks-bool": "true", "nul": "a\x00b",
                  "surrogate": "x\udfffy", "x-amqp-body": "user key", "x-amqp-esc-z": 1,
                  "unicode ✓": "✓"}, VALUE),
]


@pytest.mark.parametrize("round_trip", ROUND_TRIPS, ids=["v5", "envelope"])
@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: repr(m)[:50])
def test_round_trip_is_exact(round_trip: Any, message: Message) -> None:
    back = round_trip(message)
    assert back.kind == message.kind
    assert _same(back.body(), message.body())
    assert _same(back.properties(), message.properties())


def _same(a: Any, b: Any) -> bool:
    """Equality that also compares types and float signs (1 != True, -0.0 != 0.0, nan == nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                     math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def test_nan_property_round_trips() -> None:
    for round_trip in ROUND_TRIPS:
        back = round_trip(Message("x", {"nan": float("nan")}, VALUE))
        assert math.isnan(back.properties()["nan"])


def test_v5_wire_format_is_readable_by_plain_clients() -> None:
    encoded = codec.encode_v5(Message("hello ✓", {"count": 3, "unit": "C", "ok": True,
                                                   "temp": 20.5}, VALUE))
    assert encoded.payload == "hello ✓".encode()  # the raw body, as mosquitto_sub shows it
    props = dict(encoded.user_properties)
    assert props["count"] == "3" and props["unit"] == "C" and props["ok"] == "true"
    assert props["temp"] == "20.5"
    assert props["x-amqp-body"] == "value"
    assert json.loads(props["x-amqp-types"]) == {"count": "int", "ok": "bool", "temp": "float"}


def test_v5_str_only_properties_carry_no_type_table() -> None:
    encoded = codec.encode_v5(Message(b"x", {"a": "b"}, DATA))
    # a data body with string properties is exactly what a plain client sends: no marker
    assert dict(encoded.user_properties) == {"a": "b"}
    assert codec.decode_v5(encoded.payload, encoded.user_properties) == Message(b"x", {"a": "b"},
                                                                                 DATA)


def test_v5_data_body_with_typed_properties_carries_only_the_type_table() -> None:
    message = Message(b"\x00", {"n": 1, "s": "x"}, DATA)
    encoded = codec.encode_v5(message)
    assert dict(encoded.user_properties) == {"n": "1", "s": "x", "x-amqp-types": '{"n":"int"}'}
    assert codec.decode_v5(encoded.payload, encoded.user_properties) == message


def test_v5_json_body_for_non_str_values() -> None:
    encoded = codec.encode_v5(Message({"k": [1, 2]}, {}, VALUE))
    assert json.loads(encoded.payload) == {"k": [1, 2]}
    assert dict(encoded.user_properties)["x-amqp-body"] == "json"


def test_reserved_names_are_escaped() -> None:
    encoded = codec.encode_v5(Message("x", {"x-amqp-body": "mine"}, VALUE))
    assert ("x-amqp-esc-x-amqp-body", "mine") in encoded.user_properties
    assert dict(encoded.user_properties)["x-amqp-body"] == "value"


def test_key_mqtt_cannot_carry_is_a_codec_error() -> None:
    with pytest.raises(codec.CodecError, match="NUL"):
        codec.encode_v5(Message("x", {"a\x00b": 1}, VALUE))


@pytest.mark.parametrize(("payload", "user_properties", "pfi", "expected"), [
    # a plain client: data body, str properties
    (b"raw", None, None, Message(b"raw", {}, DATA)),
    (b"raw", [("k", "v"), ("n", "1")], None, Message(b"raw", {"k": "v", "n": "1"}, DATA)),
    (b"a", [("k", "1"), ("k", "2")], None, Message(b"a", {"k": "2"}, DATA)),  # last one wins
    # ... that declared UTF-8 text: a str value body
    ("tëxt".encode(), None, 1, Message("tëxt", {}, VALUE)),
    (b"\xff", None, 1, Message(b"\xff", {}, DATA)),  # not UTF-8 after all: stays bytes
    # a foreign bridge: unknown body kind -> imp's warning string (statement 32)
    (b"x", [("x-amqp-body", "uuid")], None,
     Message("Unhandled message body type uuid", {}, VALUE)),
    # a property whose type cannot be converted is left out (statement 30)
    (b"x", [("x-amqp-body", "value"), ("ok", "1"), ("bad", "zz"), ("worse", "maybe"),
            ("x-amqp-types", '{"ok": "int", "bad": "uuid", "worse": "bool"}')], None,
     Message("x", {"ok": 1}, VALUE)),
    # a broken type table: values stay strings
    (b"x", [("x-amqp-body", "value"), ("n", "1"), ("x-amqp-types", "{not json")], None,
     Message("x", {"n": "1"}, VALUE)),
    # list / map / symbol bodies from another bridge (statement 33)
    (b'[1,"a"]', [("x-amqp-body", "json")], None, Message([1, "a"], {}, VALUE)),
    (b'{"k":1}', [("x-amqp-body", "json")], None, Message({"k": 1}, {}, VALUE)),
    (b'"sym"', [("x-amqp-body", "json")], None, Message("sym", {}, VALUE)),
    # a json body that is not JSON: handed over as bytes rather than lost
    (b"{nope", [("x-amqp-body", "json")], None, Message(b"{nope", {}, DATA)),
    # dead-letter bookkeeping (reserved names) is invisible
    (b"x", [("x-amqp-body", "data"), ("x-amqp-dead-letter-reason", "rejected")], None,
     Message(b"x", {}, DATA)),
])
def test_v5_decoding_of_foreign_messages(payload: bytes, user_properties: Any, pfi: Any,
                                         expected: Message) -> None:
    assert codec.decode_v5(payload, user_properties, pfi) == expected


def test_envelope_is_plain_json_with_typed_properties() -> None:
    payload = codec.encode_envelope(Message("hi", {"n": 1, "f": 1.0, "b": False}, VALUE))
    envelope = json.loads(payload)
    assert envelope == {"x-amqp-envelope": 1, "kind": "value", "body": "hi",
                        "properties": {"n": 1, "f": 1.0, "b": False}}
    assert isinstance(envelope["properties"]["f"], float)


@pytest.mark.parametrize("payload", [
    b"plain text", b"", b'{"other": 1}', b'{"x-amqp-envelope":1, broken',
    b'{"x-amqp-envelope":1,"kind":"data","body":"%%%"}',
])
def test_non_envelopes_arrive_as_data(payload: bytes) -> None:
    assert codec.decode_v311(payload) == Message(payload, {}, DATA)


def test_envelope_drops_properties_that_are_not_scalars() -> None:
    payload = b'{"x-amqp-envelope":1,"kind":"value","body":"x","properties":{"a":1,"b":[1]}}'
    assert codec.decode_v311(payload) == Message("x", {"a": 1}, VALUE)


def test_raw_encoding_is_the_bare_body() -> None:
    assert codec.encode_raw(Message("hé", {"k": 1}, VALUE)) == "hé".encode()
    assert codec.encode_raw(Message(b"\x00", {}, DATA)) == b"\x00"


# -- property-based round trips -------------------------------------------------------------------

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.floats(allow_nan=False),
    st.text(),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(),
              st.binary(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), children, max_size=4)),
    max_leaves=12)
messages = st.one_of(
    st.builds(lambda body, props: Message(body, props, VALUE), st.text(),
              st.dictionaries(st.text(), scalars, max_size=5)),
    st.builds(lambda body, props: Message(body, props, DATA), st.binary(),
              st.dictionaries(st.text(), scalars, max_size=5)),
    st.builds(lambda body: Message(body, {}, VALUE), json_values),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_any_message_round_trips_exactly(message: Message) -> None:
    for round_trip in ROUND_TRIPS:
        try:
            back = round_trip(message)
        except codec.CodecError:
            assert any("\x00" in k or not _utf8(k) for k in message.properties())
            continue
        assert back.kind == message.kind
        assert _same(back.body(), message.body()), (message, back)
        assert _same(back.properties(), message.properties())


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_properties_size_counts_the_utf8_bytes_on_the_wire() -> None:
    encoded = codec.encode_v5(Message(b"x", {"a": 1, "ключ": "значение"}, BodyKind.DATA))
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = encoded.user_properties
    # paho's packed properties: a length prefix (1 byte here) and the pairs themselves
    assert encoded.properties_size == len(props.pack()) - 1


def test_the_type_table_is_the_same_json_every_time() -> None:
    first = codec.encode_v5(Message(b"x", {"n": 1, "f": 0.5, "b": True}, BodyKind.DATA))
    again = codec.encode_v5(Message(b"y", {"n": 2, "f": 1.5, "b": False}, BodyKind.DATA))
    table = dict(first.user_properties)[codec.TYPES_KEY]
    assert table == '{"n":"int","f":"float","b":"bool"}'
    assert dict(again.user_properties)[codec.TYPES_KEY] == table
