"""In-process checks of the stand-in's registry rules and MQTT wire helpers (no sockets)."""

from __future__ import annotations

import struct
import time

import pytest

from bridge.backends.iothub import sas
from bridge.testing.hub import mqtt_wire as wire
from bridge.testing.hub.registry import (
    AuthError,
    C2DOutcome,
    C2DState,
    QueueFullError,
    Registry,
    Surface,
)


def _string(value: str) -> bytes:
    return struct.pack("!H", len(value)) + value.encode()


def test_parse_connect_v5_with_properties_and_will() -> None:
    props = b"\x05\x11\x00\x00\x0e\x10"  # session expiry interval 3600
    will_props = b"\x00"
    body = (_string("MQTT") + bytes([5, 0xC4 | 0x02 | 0x20]) + struct.pack("!H", 60) + props
            + _string("dev1") + will_props + _string("devices/dev1/messages/events/")
            + _string("bye") + _string("hub/dev1/?api-version=x") + _string("token"))
    packet = bytes([0x10]) + wire.encode_varint(len(body)) + body
    connect = wire.parse_connect(packet)
    assert (connect.level, connect.client_id, connect.username, connect.password) == (
        5, "dev1", "hub/dev1/?api-version=x", b"token")
    assert connect.will_topic == "devices/dev1/messages/events/"
    assert connect.clean_start and connect.keepalive == 60
    assert "token" not in repr(connect)


def test_connack_codes_and_v5_reason_string() -> None:
    assert wire.connack(4, wire.RC_NOT_AUTHORIZED) == b"\x20\x02\x00\x05"
    v5 = wire.connack(5, wire.RC_BAD_CREDENTIALS, "no")
    assert v5 == b"\x20\x08\x00\x86\x05\x1f\x00\x02no"


def test_publish_and_subscribe_rewriting_keeps_the_rest() -> None:
    body = _string("$iothub/twin/GET/?$rid=1") + struct.pack("!H", 7) + b"payload"
    publish = bytes([0x32]) + wire.encode_varint(len(body)) + body
    moved = wire.with_publish_topic(publish, "$iothub/dev1/twin/GET/?$rid=1")
    parsed = wire.parse_publish(moved)
    assert (parsed.topic, parsed.qos, parsed.packet_id) == ("$iothub/dev1/twin/GET/?$rid=1", 1, 7)
    assert moved.endswith(b"payload")

    sub_body = struct.pack("!H", 9) + b"\x00" + _string("$iothub/twin/res/#") + b"\x01"
    subscribe = bytes([0x82]) + wire.encode_varint(len(sub_body)) + sub_body
    parsed_sub = wire.parse_subscribe(subscribe, 5)
    assert parsed_sub.filters == [("$iothub/twin/res/#", 1)]
    rebuilt = wire.build_subscribe(subscribe, wire.SubscribeRequest(
        9, [("$iothub/dev1/twin/res/#", 1)], parsed_sub.props))
    assert wire.parse_subscribe(rebuilt, 5).filters == [("$iothub/dev1/twin/res/#", 1)]


def test_malformed_packets_raise_wire_error() -> None:
    with pytest.raises(wire.WireError):
        wire.parse_connect(b"\x30\x00")
    with pytest.raises(wire.WireError):
        wire.parse_connect(b"\x10\x05\x00\x04MQ")


def test_registry_auth_rules() -> None:
    registry = Registry("hub.example")
    device = registry.register_device("d1")
    audience = "hub.example/devices/d1"
    grant = registry.authenticate(device.token(), audience, Surface.AMQP)
    assert grant.covers_device("hub.example", "d1")
    assert not grant.covers_device("hub.example", "d10")
    # url-encoded audience (what Node passes as `name`) and a scheme are accepted
    registry.authenticate(device.token(), "hub.example%2Fdevices%2Fd1", Surface.AMQP)
    registry.authenticate(device.token(), "amqps://hub.example/devices/d1", Surface.AMQP)
    with pytest.raises(AuthError) as info:
        registry.authenticate(device.token(), "hub.example/devices/d2", Surface.AMQP)
    assert info.value.kind == "unknown-device"
    policy = sas.generate_token("hub.example", registry.policy_key("device"),  # type: ignore[arg-type]
                                int(time.time()) + 60, key_name="device")
    assert registry.authenticate(policy, audience, Surface.MQTT).key_name == "device"
    with pytest.raises(AuthError) as info:
        registry.authenticate(policy.replace("skn=device", "skn=nope"), audience, Surface.MQTT)
    assert info.value.kind == "unknown-policy"
    attempts = registry.auth_attempts()
    assert [a.ok for a in attempts] == [True, True, True, False, True, False]
    assert registry.counters()["auth.failed.mqtt"] == 1


def test_registry_queue_limits_ttl_and_late_settlement() -> None:
    registry = Registry(max_queue=2)
    registry.register_device("d1")
    first = registry.enqueue_c2d("d1", b"1")
    registry.enqueue_c2d("d1", b"2", ttl=0)  # already expired when taken
    with pytest.raises(QueueFullError):
        registry.enqueue_c2d("d1", b"3")
    taken = registry.take_c2d("d1", Surface.AMQP)
    assert taken is not None and taken.message_id == first.message_id
    assert registry.take_c2d("d1", Surface.AMQP) is None  # the expired one is dead-lettered
    expired = registry.c2d("d1")[1]
    assert (expired.state, expired.dead_letter_reason) == (C2DState.DEAD_LETTERED, "expired")
    assert registry.settle_c2d(first.message_id, C2DOutcome.LOCK_LOST, Surface.AMQP) \
        is C2DState.ENQUEUED
    # a settlement after the lock was lost is ignored
    assert registry.settle_c2d(first.message_id, C2DOutcome.ACCEPTED, Surface.AMQP) is None
    registry.enqueue_c2d("d1", "3")  # room again: one pending, one dead-lettered


def test_register_device_rules() -> None:
    registry = Registry()
    device = registry.register_device("same", key="a2V5LWJ5dGVz")
    assert registry.register_device("same") is device
    with pytest.raises(ValueError, match="another key"):
        registry.register_device("same", key="b3RoZXIta2V5")
    with pytest.raises(ValueError):
        registry.register_device("has/slash")
    assert "a2V5LWJ5dGVz" not in repr(device)
