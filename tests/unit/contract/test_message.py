from __future__ import annotations

import uuid

import pytest

from bridge import BodyKind, Message
from bridge.contract.message import (
    normalize_properties,
    received_properties,
    received_value,
)


@pytest.mark.parametrize(("given", "expected"), [
    ({"i": 1, "f": 1.5, "b": True, "s": "x"}, {"i": 1, "f": 1.5, "b": True, "s": "x"}),
    ({"none": None, "list": [1], "tuple": (1, 2)}, {"none": "None", "list": "[1]",
                                                    "tuple": "(1, 2)"}),
    ({"huge": 2**63, "min": -(2**63)}, {"huge": str(2**63), "min": -(2**63)}),
    (None, {}),
])
def test_normalize_properties(given: object, expected: dict) -> None:
    assert normalize_properties(given) == expected


def test_bool_stays_bool_not_int() -> None:
    props = normalize_properties({"flag": True})
    assert type(props["flag"]) is bool


@pytest.mark.parametrize("bad", [[("a", 1)], "a=1", 5])
def test_properties_must_be_a_mapping(bad: object) -> None:
    with pytest.raises(TypeError, match="properties must be a dict"):
        normalize_properties(bad)


def test_non_str_key_names_the_key() -> None:
    with pytest.raises(TypeError, match="got int key 7"):
        normalize_properties({7: "x"})


def test_value_message() -> None:
    message = Message.value("hi", {"a": 1})
    assert message.kind is BodyKind.VALUE and message.body() == "hi"
    with pytest.raises(TypeError, match="createbinarymessage"):
        Message.value(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="body must be str"):
        Message.value(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("body", "expected"), [
    (b"\x00", b"\x00"), (bytearray(b"ab"), b"ab"), (memoryview(b"cd"), b"cd"), ("é", "é".encode()),
])
def test_data_message(body: object, expected: bytes) -> None:
    message = Message.data(body)  # type: ignore[arg-type]
    assert message.kind is BodyKind.DATA and message.body() == expected
    assert type(message.body()) is bytes


def test_data_message_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="body must be bytes or str"):
        Message.data(1.5)  # type: ignore[arg-type]


def test_properties_copy_and_equality() -> None:
    a = Message.value("x", {"k": 1})
    a.properties()["k"] = 2
    assert a.properties() == {"k": 1}
    assert a == Message.value("x", {"k": 1})
    assert a != Message.data("x", {"k": 1})
    assert "value" in repr(a)


def test_received_value_mapping() -> None:
    assert received_value([1, ("a", {"k": b"v"})]) == [1, ["a", {"k": b"v"}]]
    assert received_value(uuid.UUID(int=1)) == "Unhandled message body type UUID"
    assert received_value(None) is None


def test_received_properties_drop_unrepresentable() -> None:
    assert received_properties({"a": 1, "b": uuid.uuid4(), 3: "x", "c": None}) == {"a": 1}
    assert received_properties(None) == {}
