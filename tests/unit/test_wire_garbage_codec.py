"""Malformed traffic at the codecs (issue 9, part 3): never raise, deliver what can be delivered,
and note a problem the receiving side reports (tests/reliability/test_wire_garbage.py sends the
same over real sockets)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from proton import Data, Described, symbol, timestamp, ulong
from proton import Message as ProtonMessage

from bridge.backends.amqp import codec as amqp_codec
from bridge.contract.message import BodyKind, Message
from bridge.engines.mqtt import codec as mqtt_codec
from tests.support.amqp_bytes import list_key_map, map_value, sections

DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


def _v5(payload: bytes, props: list[tuple[str, str]]) -> tuple[Message, list[str]]:
    with mqtt_codec.collect_problems() as problems:
        message = mqtt_codec.decode_v5(payload, props)
    return message, problems


def _v311(payload: bytes) -> tuple[Message, list[str]]:
    with mqtt_codec.collect_problems() as problems:
        message = mqtt_codec.decode_v311(payload)
    return message, problems


# -- MQTT 5 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "props", "body", "kind", "properties", "problem"), [
    # value kind, payload not UTF-8
    (b"\xff\xfe", [("x-amqp-body", "value")], b"\xff\xfe", BodyKind.DATA, {}, "not UTF-8"),
    # json kind, payload not JSON / tagged JSON / nested past the recursion limit
    (b"{nope", [("x-amqp-body", "json")], b"{nope", BodyKind.DATA, {}, "not tagged JSON"),
    (b'{"$bytes":"!!"}', [("x-amqp-body", "json")], b'{"$bytes":"!!"}', BodyKind.DATA, {},
     "not tagged JSON"),
    (DEEP_JSON, [("x-amqp-body", "json")], DEEP_JSON, BodyKind.DATA, {}, "nested too deeply"),
    # an unknown kind: imp's warning string
    (b"x", [("x-amqp-body", "sequence")], "Unhandled message body type sequence",
     BodyKind.VALUE, {}, "unknown x-amqp-body kind"),
    # the types table is not JSON, not an object, or names impossible conversions
    (b"b", [("x-amqp-body", "value"), ("n", "1"), ("x-amqp-types", "{bad")], "b",
     BodyKind.VALUE, {"n": "1"}, "not valid JSON"),
    (b"b", [("x-amqp-body", "value"), ("n", "1"), ("x-amqp-types", "[1]")], "b",
     BodyKind.VALUE, {"n": "1"}, "not a JSON object"),
    (b"b", [("x-amqp-body", "value"), ("n", "one"), ("ok", "2"),
            ("x-amqp-types", '{"n":"int","ok":"int"}')], "b", BodyKind.VALUE, {"ok": 2},
     "'n' declared 'int' cannot be converted"),
    (b"b", [("x-amqp-body", "value"), ("n", "1"), ("x-amqp-types", '{"n":"uuid"}')], "b",
     BodyKind.VALUE, {}, "declared 'uuid'"),
    (b"b", [("x-amqp-body", "value"), ("n", "maybe"), ("x-amqp-types", '{"n":"bool"}')], "b",
     BodyKind.VALUE, {}, "declared 'bool'"),
    (b"b", [("x-amqp-body", "value"), ("s", "[1]"), ("x-amqp-types", '{"s":"jstr"}')], "b",
     BodyKind.VALUE, {}, "declared 'jstr'"),
    (b"b", [("x-amqp-body", "value"), ("n", "1"), ("x-amqp-types", '{"n":7}')], "b",
     BodyKind.VALUE, {}, "declared '7'"),
])
def test_v5_bad_reserved_properties_are_reported(payload: bytes, props: list[tuple[str, str]],
                                                 body: Any, kind: BodyKind,
                                                 properties: dict[str, Any],
                                                 problem: str) -> None:
    message, problems = _v5(payload, props)
    assert (message.body(), message.kind, message.properties()) == (body, kind, properties)
    assert problems and problem in "; ".join(problems)


@pytest.mark.parametrize(("payload", "props"), [
    (b"\x00\xff garbage from a plain client", []),
    (b"", []),
    (b"text", [("k", "v"), ("k2", "\u00e9")]),
    (b"ok", [("x-amqp-body", "value"), ("n", "5"), ("x-amqp-types", '{"n":"int"}')]),
])
def test_v5_good_or_plain_messages_report_nothing(payload: bytes,
                                                  props: list[tuple[str, str]]) -> None:
    assert _v5(payload, props)[1] == []


def test_v5_payload_format_indicator_that_lies_is_reported() -> None:
    with mqtt_codec.collect_problems() as problems:
        message = mqtt_codec.decode_v5(b"\xff\xfe", [("k", "v")], payload_format=1)
    assert (message.body(), message.kind, message.properties()) == \
        (b"\xff\xfe", BodyKind.DATA, {"k": "v"})
    assert "Payload Format Indicator" in problems[0]
    with mqtt_codec.collect_problems() as problems:
        assert mqtt_codec.decode_v5("é".encode(), [], payload_format=1).body() == "é"
    assert problems == []


def test_problems_are_only_collected_inside_the_block_and_bounded() -> None:
    # outside collect_problems nothing is recorded (and nothing raises)
    assert mqtt_codec.decode_v5(b"\xff", [("x-amqp-body", "value")]).body() == b"\xff"
    props = [("x-amqp-body", "value"), ("x-amqp-types", json.dumps(
        {f"p{i}": "int" for i in range(100)}))] + [(f"p{i}", "x") for i in range(100)]
    message, problems = _v5(b"b", props)
    assert message.properties() == {} and len(problems) == 8  # bounded per message


# -- MQTT 3.1.1 envelope -------------------------------------------------------------------------


def _envelope(**fields: Any) -> bytes:
    return json.dumps({"x-amqp-envelope": 1, **fields}).encode()


@pytest.mark.parametrize(("payload", "body", "kind", "properties", "problem"), [
    (b'{"x-amqp-envelope":1, "kind": "value", "bo', None, BodyKind.DATA, {},
     "invalid JSON at character"),
    (_envelope(body="x"), None, BodyKind.DATA, {}, "no 'kind' field"),
    (_envelope(kind="data", body="%%%"), None, BodyKind.DATA, {}, "invalid base64"),
    (_envelope(kind="value", body="s", properties=[1, 2]), "s", BodyKind.VALUE, {},
     "not a JSON object"),
    (_envelope(kind="value", body="s", properties={"a": [1], "b": 2}), "s", BodyKind.VALUE,
     {"b": 2}, "'a' of type list left out"),
    (_envelope(kind="value", body=5), "Unhandled message body type value", BodyKind.VALUE, {},
     "with a int body"),
    (b'{"x-amqp-envelope":1,"kind":"json","body":' + DEEP_JSON + b"}", None, BodyKind.DATA, {},
     "nested too deeply"),
])
def test_v311_broken_envelopes_are_reported(payload: bytes, body: Any, kind: BodyKind,
                                            properties: dict[str, Any], problem: str) -> None:
    message, problems = _v311(payload)
    expected = payload if body is None else body  # None: handed over untouched, as data
    assert (message.body(), message.kind, message.properties()) == (expected, kind, properties)
    assert problems and problem in "; ".join(problems)


def test_v311_plain_payloads_report_nothing() -> None:
    for payload in (b"", b"\xff\x00", b'{"json": "of someone else"}', b"[" * 1000):
        assert _v311(payload) == (Message(payload, {}, BodyKind.DATA), [])


# -- AMQP ----------------------------------------------------------------------------------------


def _decode(raw: bytes) -> tuple[Message, list[str]]:
    with amqp_codec.collect_problems() as problems:
        message = amqp_codec.decode_message(raw)
    return message, problems


def test_amqp_well_formed_messages_report_nothing() -> None:
    for sent in (ProtonMessage(body="s", properties={"a": 1, "n": None}),
                 ProtonMessage(body=b"raw", inferred=True, durable=True),
                 ProtonMessage(body={"k": [1, 2.5, None]}, subject="x")):
        message, problems = _decode(sent.encode())
        assert problems == []
        received = ProtonMessage()
        received.decode(sent.encode())
        assert message == amqp_codec.message_from_proton(received)


def test_amqp_several_data_sections_are_concatenated() -> None:
    raw = sections((0x74, {"k": "v"}), (0x75, b"ab"), (0x75, b""), (0x75, b"cd" * 200))
    message, problems = _decode(raw)
    assert (message.body(), message.kind, message.properties()) == \
        (b"ab" + b"cd" * 200, BodyKind.DATA, {"k": "v"})
    assert problems == []  # legal AMQP: nothing to report, nothing lost


def test_amqp_sequences_are_one_list_and_reported() -> None:
    message, problems = _decode(sections((0x76, [1, "a"]), (0x76, [timestamp(5)])))
    assert message.body() == [1, "a", "Unhandled message body type timestamp"]
    assert "amqp-sequence" in "; ".join(problems) and "timestamp" in "; ".join(problems)


@pytest.mark.parametrize(("raw", "body", "problem"), [
    (sections((0x77, "v"), (0x75, b"d")), b"d", "does not allow together"),
    (sections((0x77, "one"), (0x77, "two")), "two", "does not allow together"),
    (sections((0x74, {"k": 1})), None, "no body section"),
    (sections((0x75, "not binary")), "not binary", "other than binary"),
    (sections((0x77, Described(symbol("x:y"), 5))), "Unhandled message body type described",
     "AMQP type described"),
    (sections((0x77, [uuid.UUID(int=1)])), ["Unhandled message body type uuid"], "uuid"),
    (sections((0x77, "v"), (0x99, "?")), "v", "unknown kind"),
    (sections((0x74, [1, 2]), (0x77, "v")), "v", "not a map"),
])
def test_amqp_odd_layouts_are_delivered_and_reported(raw: bytes, body: Any,
                                                     problem: str) -> None:
    message, problems = _decode(raw)
    assert message.body() == body
    assert problem in "; ".join(problems)


def test_amqp_unconvertible_properties_are_left_out_and_reported() -> None:
    props = {"ok": 1, "id": uuid.UUID(int=5), "at": timestamp(1), "l": [1], "m": {"a": 1},
             "d": Described(symbol("a"), 1), "none": None, symbol("sym"): 2, ulong(7): "x"}
    message, problems = _decode(sections((0x74, props), (0x77, "v")))
    assert message.properties() == {"ok": 1, "sym": 2}
    text = "; ".join(problems)
    for needle in ("'id' of type uuid", "'at' of type timestamp", "'l' of type list",
                   "'m' of type dict", "'d' of type described", "key of type ulong"):
        assert needle in text
    assert "none" not in text  # a null property is legal: left out without a report


@pytest.mark.parametrize("raw", [
    b"garbage!!", b"\x00", b"\x00\x53", b"\x00\x53\x77\xb0\x00\x00\xff\xff", b"\x00\x53\x75\xa0",
    b"\x00\x53\x77\x01", b"\x00" * 20,
])
def test_amqp_bytes_that_are_no_message_raise_value_error(raw: bytes) -> None:
    with amqp_codec.collect_problems(), pytest.raises(ValueError):
        amqp_codec.decode_message(raw)


def test_amqp_empty_transfer_has_no_body_section() -> None:
    message, problems = _decode(b"")
    assert message.body() is None and "no body section" in problems[0]


def test_amqp_big_map_body_decodes() -> None:
    message, problems = _decode(map_value(20_000))
    assert len(message.body()) == 20_000 and problems == []


def test_amqp_map_past_protons_limit_is_reported() -> None:
    message, problems = _decode(map_value(40_000))
    assert 0 < len(message.body()) < 40_000  # proton dropped the rest ...
    assert "the most proton decodes" in problems[0]  # ... and that is said


def test_amqp_map_with_a_list_key_is_undecodable() -> None:
    """Legal AMQP, but proton cannot build the dict: the handler rejects it (and reports)."""
    with amqp_codec.collect_problems(), pytest.raises(TypeError):
        amqp_codec.decode_message(list_key_map(3))


def test_amqp_symbolic_section_descriptors_are_understood() -> None:
    data = Data()
    for name, value in (("amqp:data:binary", b"ab"), ("amqp:data:binary", b"cd")):
        data.put_described()
        data.enter()
        data.put_symbol(symbol(name))
        data.put_binary(value)
        data.exit()
    message, problems = _decode(data.encode())
    assert (message.body(), problems) == (b"abcd", [])
