"""The direct AMQP codec against proton: the same bytes out, the same messages in."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proton import Message as ProtonMessage
from proton import byte, char, float32, int32, short, symbol, timestamp, ubyte, uint, ulong, ushort

from bridge.backends.amqp import codec, fastcodec
from bridge.contract.message import INT64_MAX, INT64_MIN, BodyKind, Message

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.integers(min_value=-200, max_value=200),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.binary(max_size=300),
)
property_tables = st.dictionaries(st.text(max_size=40), scalars, max_size=8)
messages = st.one_of(
    st.builds(lambda body, props: Message(body, props, BodyKind.DATA),
              st.binary(max_size=600), property_tables),
    st.builds(lambda body, props: Message(body, props, BodyKind.VALUE),
              st.text(max_size=600), property_tables),
    st.builds(lambda props: Message(None, props, BodyKind.VALUE), property_tables),
)


def full_path(raw: bytes) -> Message:
    """What `codec.decode_message` returns without the direct reader."""
    original = fastcodec.decode
    fastcodec.decode = lambda raw: None  # type: ignore[assignment]
    try:
        return codec.decode_message(raw)
    finally:
        fastcodec.decode = original


@settings(max_examples=300, deadline=None)
@given(messages, st.booleans())
def test_encoding_is_byte_for_byte_what_proton_writes(message: Message, durable: bool) -> None:
    direct = fastcodec.encode(message, durable=durable)
    assert direct is not None
    assert direct == codec.message_to_proton(message, durable=durable).encode()


@settings(max_examples=300, deadline=None)
@given(messages, st.booleans())
def test_decoding_gives_what_the_full_path_gives(message: Message, durable: bool) -> None:
    raw = codec.message_to_proton(message, durable=durable).encode()
    direct = fastcodec.decode(raw)
    if message.body() is None:
        assert direct is None  # no body section at all: the full path reports it
        return
    assert direct == full_path(raw) == message


def test_shapes_it_leaves_to_proton_still_encode() -> None:
    for message in (Message({"a": [1, 2]}, {}, BodyKind.VALUE),  # a map body
                    Message(b"x", {"n": 2**64 - 1}, BodyKind.DATA),  # beyond int64
                    Message("lone \ud800", {}, BodyKind.VALUE)):
        assert fastcodec.encode(message) is None
    assert codec.encode_message(Message(b"x", {"n": 2**64 - 1}, BodyKind.DATA)) == \
        codec.message_to_proton(Message(b"x", {"n": 2**64 - 1}, BodyKind.DATA)).encode()


@pytest.mark.parametrize("value,expected", [
    (ubyte(200), 200), (byte(-3), -3), (ushort(60000), 60000), (short(-300), -300),
    (uint(4_000_000_000), 4_000_000_000), (uint(0), 0), (uint(7), 7),
    (int32(-70000), -70000), (ulong(2**64 - 1), 2**64 - 1), (ulong(0), 0), (ulong(9), 9),
    (float32(0.5), 0.5), (symbol("sym"), "sym"), (-(2**63), -(2**63)), (True, True),
])
def test_every_integer_and_float_width_reads_as_proton_reads_it(value: Any, expected: Any) -> None:
    raw = ProtonMessage(body=b"b", inferred=True, properties={"k": value}).encode()
    direct = fastcodec.decode(raw)
    assert direct is not None
    assert direct.properties() == {"k": expected} == full_path(raw).properties()
    assert type(direct.properties()["k"]) is type(expected)


@pytest.mark.parametrize("body", [ubyte(1), -5, 2.5, True, b"bin", symbol("s"), float32(1.5)])
def test_scalar_value_bodies_read_as_proton_reads_them(body: Any) -> None:
    raw = ProtonMessage(body=body).encode()
    direct = fastcodec.decode(raw)
    assert direct is not None and direct == full_path(raw)
    assert direct.kind is BodyKind.VALUE


@pytest.mark.parametrize("message", [
    ProtonMessage(body=b"x", inferred=True, properties={"t": timestamp(5)}),
    ProtonMessage(body=b"x", inferred=True, properties={"c": char("c")}),
    ProtonMessage(body=b"x", inferred=True, properties={"u": uuid.uuid4()}),
    ProtonMessage(body=b"x", inferred=True, properties={"l": [1, 2]}),
    ProtonMessage(body=[1, 2, 3], inferred=True),  # amqp-sequence
    ProtonMessage(body={"a": 1}),
    ProtonMessage(body=timestamp(1)),
    ProtonMessage(body=None),
])
def test_anything_else_goes_to_the_full_path(message: ProtonMessage) -> None:
    assert fastcodec.decode(message.encode()) is None


def test_a_key_that_is_not_a_string_goes_to_the_full_path() -> None:
    items = b"\x54\x05\x55\x01"  # 5 (smallint) = 1
    raw = (b"\x00\x53\x74\xc1" + bytes([len(items) + 1, 2]) + items + b"\x00\x53\x75\xa0\x00")
    assert fastcodec.decode(raw) is None
    assert full_path(raw).properties() == {}


def test_sections_it_does_not_read_are_skipped() -> None:
    message = ProtonMessage(body=b"payload", inferred=True, properties={"a": "b"},
                            id="message-1", subject="s", ttl=5, priority=7,
                            annotations={symbol("x-opt"): 1}, durable=True)
    message.instructions = {symbol("x-da"): "v"}
    raw = message.encode()
    direct = fastcodec.decode(raw)
    assert direct == full_path(raw) == Message(b"payload", {"a": "b"}, BodyKind.DATA)


def test_several_data_sections_go_to_the_full_path() -> None:
    one = ProtonMessage(body=b"ab", inferred=True).encode()
    data_section = one[one.index(b"\x00\x53\x75"):]
    raw = one + data_section  # two data sections: the full path joins them
    assert fastcodec.decode(raw) is None
    assert full_path(raw).body() == b"abab"


def test_a_null_property_removes_an_earlier_pair_of_the_same_name() -> None:
    items = b"\xa1\x01k\x55\x01" + b"\xa1\x01k\x40"  # k=1, then k=null
    raw = (b"\x00\x53\x70\x45\x00\x53\x73\x45\x00\x53\x74\xc1" + bytes([len(items) + 1, 4])
           + items + b"\x00\x53\x75\xa0\x00")
    direct = fastcodec.decode(raw)
    assert direct is not None and direct.properties() == {} == full_path(raw).properties()


@settings(max_examples=500, deadline=None)
@given(messages, st.data())
def test_damaged_bytes_never_raise_and_never_disagree(message: Message, data: Any) -> None:
    raw = bytearray(codec.message_to_proton(message).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        operation = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        where = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if operation == "flip" and raw:
            raw[where] ^= data.draw(st.integers(1, 255))
        elif operation == "cut":
            del raw[where:]
        else:
            raw[where:where] = data.draw(st.binary(min_size=1, max_size=4))
    damaged = bytes(raw)
    direct = fastcodec.decode(damaged)  # must not raise
    if direct is None:
        return
    try:
        expected = full_path(damaged)
    except Exception:  # proton refuses what the direct reader accepted
        pytest.fail(f"accepted bytes proton refuses: {damaged.hex()}")
    assert _same(direct, expected), damaged.hex()


def _same(a: Message, b: Message) -> bool:
    def norm(value: Any) -> Any:
        return "nan" if isinstance(value, float) and math.isnan(value) else value

    return (a.kind, norm(a.body()), {k: norm(v) for k, v in a.properties().items()}) == \
        (b.kind, norm(b.body()), {k: norm(v) for k, v in b.properties().items()})
