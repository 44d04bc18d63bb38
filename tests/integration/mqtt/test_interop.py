"""What the bridge publishes, plain MQTT clients read; what they publish, the bridge receives."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable

import pytest

from bridge import Agent

from .conftest import Objects, RawClient, unique

pytestmark = pytest.mark.integration


def test_bridge_publish_is_read_by_a_raw_mqtt5_subscriber(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    path = f"/interop/{unique('out')}"
    raw = raw_client()
    raw.subscribe(path[1:])
    objects = Objects(make_agent())
    sender = objects.sender(path)
    props = {"count": 3, "temp": 20.5, "alert": True, "unit": "C"}
    objects.send(sender, objects.agent.amqp.createmessage("hello ✓", props))
    objects.send(sender, objects.agent.amqp.createbinarymessage(b"\x00\xffraw"))
    raw.wait(lambda: len(raw.messages) == 2, "two messages")
    text, binary = raw.messages
    assert text.topic == path[1:] and text.payload == "hello ✓".encode()
    user = dict(text.properties.UserProperty)
    assert {k: user[k] for k in props} == {"count": "3", "temp": "20.5", "alert": "true",
                                           "unit": "C"}
    assert json.loads(user["x-amqp-types"]) == {"count": "int", "temp": "float", "alert": "bool"}
    # a data body without properties is exactly what a plain client would publish
    assert binary.payload == b"\x00\xffraw"
    assert getattr(binary.properties, "UserProperty", []) == []


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto_sub not installed")
def test_bridge_publish_is_read_by_mosquitto_sub(make_agent: Callable[..., Agent]) -> None:
    topic = f"interop/{unique('sub')}"
    # stdbuf: line-buffered stdout, so the SUBACK line is seen when it happens
    command = ["mosquitto_sub", "-h", "127.0.0.1", "-p", "1883", "-V", "5", "-q", "1", "-t",
               topic, "-C", "1", "-W", "20", "-d", "-F", "%t|%p"]
    if shutil.which("stdbuf"):
        command = ["stdbuf", "-oL", *command]
    sub = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert sub.stdout is not None
        for line in sub.stdout:  # -d prints the SUBACK: from then on nothing is missed
            lines.append(line)
            if "SUBACK" in line:
                break
        objects = Objects(make_agent())
        objects.send(objects.sender(f"/{topic}"),
                     objects.agent.amqp.createmessage("seen by mosquitto_sub", {"n": 1}))
        lines.extend(sub.stdout)  # until mosquitto_sub exits after one message (-C 1)
        sub.wait(20)
    finally:
        sub.kill()
    assert f"{topic}|seen by mosquitto_sub\n" in lines, lines


def test_raw_publishes_reach_a_bridge_receiver(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    path = f"/interop/{unique('in')}"
    objects = Objects(make_agent())
    objects.receiver(path)
    raw = raw_client()
    raw.publish(path[1:], b"\x01binary", [("source", "raw"), ("n", "7")])
    raw.publish(path[1:], b"declared text", payload_format=1)
    objects.wait(lambda: len(objects.messages) == 2, "two raw messages")
    data, text = objects.messages
    assert data.kind == "data" and data.body() == b"\x01binary"
    assert data.properties() == {"source": "raw", "n": "7"}  # plain strings: no type table
    assert text.kind == "value" and text.body() == "declared text"


def test_mosquitto_pub_reaches_a_bridge_receiver(make_agent: Callable[..., Agent]) -> None:
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub not installed")
    path = f"/interop/{unique('pub')}"
    objects = Objects(make_agent())
    objects.receiver(path)
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-q", "1", "-t", path[1:],
                    "-m", "from mosquitto_pub"], check=True, timeout=20)
    objects.wait(lambda: len(objects.messages) == 1, "the message")
    assert objects.messages[0].body() == b"from mosquitto_pub"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_bridges_round_trip_bodies_and_typed_properties(
        make_agent: Callable[..., Agent], protocol: str) -> None:
    path = f"/interop/{unique('rt')}"
    receiving = Objects(make_agent(protocol=protocol))
    receiving.receiver(path)
    sending = Objects(make_agent(protocol=protocol))
    sender = sending.sender(path)
    amqp = sending.agent.amqp
    props = {"i": -(2**63), "f": 0.1, "b": False, "s": "x\x00y", "x-amqp-body": "mine"}
    sending.send(sender, amqp.createmessage("text", props))
    sending.send(sender, amqp.createbinarymessage(b"\x00\x01", {"k": 1}))
    receiving.wait(lambda: len(receiving.messages) == 2, "two messages")
    text, data = receiving.messages
    assert (text.kind, text.body(), text.properties()) == ("value", "text", props)
    assert all(type(text.properties()[k]) is type(v) for k, v in props.items())
    assert (data.kind, data.body(), data.properties()) == ("data", b"\x00\x01", {"k": 1})


def test_mqtt311_envelope_is_json_for_plain_clients(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    path = f"/interop/{unique('env')}"
    raw = raw_client(v5=False)
    raw.subscribe(path[1:])
    objects = Objects(make_agent(protocol="3.1.1"))
    objects.send(objects.sender(path), objects.agent.amqp.createmessage("hi", {"n": 1}))
    raw.wait(lambda: len(raw.messages) == 1, "the envelope")
    assert json.loads(raw.messages[0].payload) == {
        "x-amqp-envelope": 1, "kind": "value", "body": "hi", "properties": {"n": 1}}


def test_mqtt311_drop_mode_sends_the_bare_body_and_says_so(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient],
        caplog: pytest.LogCaptureFixture) -> None:
    path = f"/interop/{unique('drop')}"
    raw = raw_client(v5=False)
    raw.subscribe(path[1:])
    objects = Objects(make_agent(protocol="3.1.1", properties_v311="drop"))
    with caplog.at_level(logging.WARNING, logger="bridge.backends.mqtt"):
        objects.send(objects.sender(path), objects.agent.amqp.createmessage("bare", {"n": 1}))
    raw.wait(lambda: len(raw.messages) == 1, "the message")
    assert raw.messages[0].payload == b"bare"
    assert any("are not sent" in r.getMessage() for r in caplog.records)


def test_cbs_and_rule_mapped_paths_land_on_documented_topics(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    device = unique("dev")
    raw = raw_client()
    raw.subscribe("bridge/$cbs")
    raw.subscribe(f"devices/{device}/messages/events")
    rules = [{"path": "/devices/{device}/messages/events",
              "topic": "devices/{device}/messages/events"}]
    objects = Objects(make_agent(topic_rules=rules))
    marker = unique("cbs")
    objects.send(objects.sender("$cbs"), objects.agent.amqp.createmessage(marker))
    objects.send(objects.sender(f"/devices/{device}/messages/events"),
                 objects.agent.amqp.createmessage("event"))
    raw.wait(lambda: {m.topic for m in raw.messages} >= {
        "bridge/$cbs", f"devices/{device}/messages/events"}, "both topics")
    assert any(m.topic == "bridge/$cbs" and m.payload == marker.encode() for m in raw.messages)


def test_receiver_rule_with_wildcard_collects_subtopics(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    device = unique("dev")
    rules = [{"path": "/devices/{device}/messages/devicebound",
              "topic": "devices/{device}/messages/devicebound/#"}]
    objects = Objects(make_agent(topic_rules=rules))
    objects.receiver(f"/devices/{device}/messages/devicebound")
    raw = raw_client()
    raw.publish(f"devices/{device}/messages/devicebound/%24.to=x", b"c2d")
    objects.wait(lambda: len(objects.messages) == 1, "the command")
    assert objects.messages[0].body() == b"c2d"
