"""Malformed traffic from the wire never crashes a receiver, never stops it, and is reported.

MQTT: a raw paho client publishes, to the topic a bridge receiver listens on, garbage payloads,
broken reserved user properties (``x-amqp-body``, ``x-amqp-types``), lying Payload Format
Indicators, broken 3.1.1 envelopes, and messages past the broker's ``max_packet_size``.
AMQP: a raw proton peer transfers hand-made bytes: no message at all, truncated encodings,
unusual or forbidden body-section layouts, described types, properties of types imp cannot
map, a map larger than proton decodes, nesting deeper than the interpreter allows.

After each bad message a good one follows and must arrive: the receiver (and its connection)
is still working. What the bridge could not deliver faithfully is reported: a WARNING naming the
problem and the per-connection counter (`Inbox.malformed`, `ConnectionHandler.malformed`);
an AMQP transfer that is no message at all is also rejected (``amqp:decode-error``) so the
sender learns of it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from proton import Delivery, Described, symbol, timestamp, ulong
from proton import Message as ProtonMessage

from bridge import Agent
from bridge.backends.mqtt.backend import live_backends
from bridge.contract.message import BodyKind
from tests.integration.amqp.peer import AmqpPeer
from tests.support.amqp_bytes import deep_list, list_key_map, map_value, sections
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

MAX_PACKET = 65_536


class Receiver:
    """A bridge receiver that records (body, kind, properties) and accepts everything."""

    def __init__(self, agent: Agent, conn: Any, path: str) -> None:
        self.agent = agent
        self.got: list[tuple[Any, BodyKind, dict[str, Any]]] = []
        self.link = conn.opensession().openreceiver(path, None, self._on_messages)
        assert agent.run_until(self.link.isopen, 10)

    def _on_messages(self, deliveries: list[Any]) -> None:
        for delivery in deliveries:
            message = delivery.message()
            self.got.append((message.body(), message.kind, message.properties()))
            delivery.accept()

    def next_after(self, marker: Any, timeout: float = 10.0) -> list[tuple[Any, Any, Any]]:
        """Everything received up to and including the good message *marker*."""
        assert self.agent.run_until(lambda: any(g[0] == marker for g in self.got), timeout), \
            f"{marker!r} never arrived: the receiver stopped? got {self.got[-3:]}"
        index = next(i for i, g in enumerate(self.got) if g[0] == marker)
        taken, self.got = self.got[:index + 1], self.got[index + 1:]
        return taken


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "malformed" in r.getMessage()]


# -- MQTT ----------------------------------------------------------------------------------------


class RawPublisher:
    def __init__(self, port: int, *, v5: bool) -> None:
        self.port = port
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        self.acked: set[int] = set()
        self.cond = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    props: Any) -> None:
        with self.cond:
            self.acked.add(mid)
            self.cond.notify_all()

    def publish(self, topic: str, payload: bytes, user: list[tuple[str, str]] | None = None,
                payload_format: int | None = None) -> None:
        props = None
        if user is not None or payload_format is not None:
            props = Properties(PacketTypes.PUBLISH)
            if user:
                props.UserProperty = user
            if payload_format is not None:
                props.PayloadFormatIndicator = payload_format
        info = self.client.publish(topic, payload, qos=1, properties=props)
        with self.cond:
            assert self.cond.wait_for(lambda: info.mid in self.acked, 10), "no PUBACK"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_pair(mosquitto: Callable[..., Mosquitto], agents: Callable[..., Agent]
              ) -> Iterator[Callable[[str], tuple[Agent, Any, Receiver, RawPublisher, str]]]:
    broker = mosquitto(persistence=False, extra=[f"max_packet_size {MAX_PACKET}"])
    publishers: list[RawPublisher] = []

    def make(protocol: str) -> tuple[Agent, Any, Receiver, RawPublisher, str]:
        agent = agents(backend="mqtt", mqtt={"url": broker.url, "protocol": protocol})
        events: list[tuple[str, str | None]] = []
        conn = agent.amqp.openconnection("amqps://hub", lambda e, d: events.append((e, d)))
        assert agent.run_until(conn.isopen, 10), events
        path = f"/garbage/{uuid.uuid4().hex[:8]}"
        receiver = Receiver(agent, conn, path)
        publisher = RawPublisher(broker.port, v5=protocol == "5")
        publishers.append(publisher)
        return agent, conn, receiver, publisher, path.lstrip("/")

    yield make
    for publisher in publishers:
        publisher.close()


DEEP = b"[" * 20_000 + b"]" * 20_000  # past the recursion limit, under max_packet_size

MQTT5_CASES: list[tuple[str, bytes, list[tuple[str, str]] | None, int | None, Any, bool]] = [
    # (name, payload, user properties, payload format, expected body, reported)
    ("binary garbage, plain client", b"\x00\xff\xfe garbage", None, None,
     b"\x00\xff\xfe garbage", False),
    ("value kind, not UTF-8", b"\xff\xfe", [("x-amqp-body", "value")], None, b"\xff\xfe", True),
    ("json kind, not JSON", b"{oops", [("x-amqp-body", "json")], None, b"{oops", True),
    ("json kind, nested too deep", DEEP, [("x-amqp-body", "json")], None, DEEP, True),
    ("unknown kind", b"x", [("x-amqp-body", "amqp-sequence")], None,
     "Unhandled message body type amqp-sequence", True),
    ("types not JSON", b"b", [("x-amqp-body", "value"), ("n", "1"), ("x-amqp-types", "{")],
     None, "b", True),
    ("types not an object", b"b", [("x-amqp-body", "value"), ("x-amqp-types", '"int"')],
     None, "b", True),
    ("bad type marker", b"b", [("x-amqp-body", "value"), ("n", "NaN?"),
                               ("x-amqp-types", '{"n":"int"}')], None, "b", True),
    ("unknown type marker", b"b", [("x-amqp-body", "value"), ("n", "1"),
                                   ("x-amqp-types", '{"n":"uuid"}')], None, "b", True),
    ("format indicator lies", b"\xc3\x28", [("k", "v")], 1, b"\xc3\x28", True),
    ("many properties", b"p", [(f"k{i}", "v" * 20) for i in range(2000)], None, b"p", False),
    ("near the packet limit", b"y" * (MAX_PACKET - 200), None, None, b"y" * (MAX_PACKET - 200),
     False),
]


def test_mqtt5_garbage_is_delivered_or_reported_and_the_receiver_goes_on(
        mqtt_pair: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bridge")
    agent, conn, receiver, publisher, topic = mqtt_pair("5")
    (backend,) = live_backends(agent.settings.agent_id)
    for n, (name, payload, user, fmt, body, reported) in enumerate(MQTT5_CASES):
        before, warned = backend.inbox.malformed, len(_warnings(caplog))
        publisher.publish(topic, payload, user, fmt)
        publisher.publish(topic, f"good-{n}".encode(), [("x-amqp-body", "value")])
        got = receiver.next_after(f"good-{n}")
        assert [g[0] for g in got] == [body, f"good-{n}"], name
        assert (backend.inbox.malformed - before == 1) == reported, name
        assert (len(_warnings(caplog)) - warned == 1) == reported, name
    assert conn.isopen() and receiver.link.isopen()


def test_mqtt_oversize_messages_are_refused_by_the_broker_and_by_the_sender(
        mqtt_pair: Callable[..., Any]) -> None:
    agent, conn, receiver, publisher, topic = mqtt_pair("5")
    # a plain client's oversize PUBLISH: the broker drops that client; ours is untouched
    big = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    gone = threading.Event()
    big.on_disconnect = lambda *a: gone.set()
    big.connect("127.0.0.1", publisher.port)
    big.loop_start()
    big.publish(topic, b"z" * (2 * MAX_PACKET), qos=1)
    assert gone.wait(10)
    big.loop_stop()
    publisher.publish(topic, b"after-big", [("x-amqp-body", "value")])
    assert [g[0] for g in receiver.next_after("after-big")] == ["after-big"]
    # the bridge's own oversize send: refused before it is sent (Maximum Packet Size from
    # CONNACK), SENDER_ERROR, and the sender stays open
    errors: list[str | None] = []
    sender = conn.opensession().opensender(
        "/" + topic, lambda e, d: errors.append(d) if e == "SENDER_ERROR" else None)
    assert agent.run_until(sender.isopen, 10)
    sender.createtransfer(agent.amqp.createmessage("z" * (2 * MAX_PACKET))).sendasync()
    sender.createtransfer(agent.amqp.createmessage("after-own")).sendasync()
    assert [g[0] for g in receiver.next_after("after-own")] == ["after-own"]
    assert len(errors) == 1 and "Maximum Packet Size" in (errors[0] or "")
    assert sender.isopen() and conn.isopen() and receiver.link.isopen()


def _envelope(text: str) -> bytes:
    return ('{"x-amqp-envelope":1,' + text + "}").encode()


MQTT311_CASES: list[tuple[str, bytes, Any, bool]] = [
    ("plain payload", b"\x00\x01 plain", b"\x00\x01 plain", False),
    ("broken JSON", b'{"x-amqp-envelope":1,"kind":', b'{"x-amqp-envelope":1,"kind":', True),
    ("no kind", _envelope('"body":"b"'), _envelope('"body":"b"'), True),
    ("bad base64", _envelope('"kind":"data","body":"***"'),
     _envelope('"kind":"data","body":"***"'), True),
    ("properties a list", _envelope('"kind":"value","body":"b","properties":[1]'), "b", True),
    ("property of a list type", _envelope('"kind":"value","body":"b","properties":{"a":[1]}'),
     "b", True),
    ("unknown kind", _envelope('"kind":"weird","body":"b"'), "Unhandled message body type weird",
     True),
    ("nested too deep", _envelope('"kind":"json","body":' + "[" * 20_000 + "]" * 20_000),
     _envelope('"kind":"json","body":' + "[" * 20_000 + "]" * 20_000), True),
]


def test_mqtt311_broken_envelopes_are_reported_and_the_receiver_goes_on(
        mqtt_pair: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bridge")
    agent, conn, receiver, publisher, topic = mqtt_pair("3.1.1")
    (backend,) = live_backends(agent.settings.agent_id)
    for n, (name, payload, body, reported) in enumerate(MQTT311_CASES):
        before = backend.inbox.malformed
        publisher.publish(topic, payload)
        publisher.publish(topic, _envelope(f'"kind":"value","body":"good-{n}"'))
        got = receiver.next_after(f"good-{n}")
        assert [g[0] for g in got] == [body, f"good-{n}"], name
        assert (backend.inbox.malformed - before == 1) == reported, name
    assert len(_warnings(caplog)) == sum(1 for case in MQTT311_CASES if case[3])
    assert conn.isopen() and receiver.link.isopen()


# -- AMQP ----------------------------------------------------------------------------------------


REJECTED = object()  # the transfer is rejected (no message at all), not delivered

AMQP_CASES: list[tuple[str, bytes, Any]] = [
    # (name, transfer bytes, expected body or REJECTED); every one is reported
    ("not AMQP", b"garbage!!", REJECTED),
    ("truncated", b"\x00\x53\x77\xb0\x00\x00\xff\xff", REJECTED),
    ("bad constructor", b"\x00\x53\x77\x01", REJECTED),
    ("list as a map key", list_key_map(2), REJECTED),
    ("nested too deep", deep_list(3000), REJECTED),
    ("two sequences", sections((0x76, [1, 2]), (0x76, ["three"])), [1, 2, "three"]),
    ("value and data", sections((0x77, "v"), (0x75, b"d")), b"d"),
    ("no body", sections((0x74, {"k": "v"})), None),
    ("described body", sections((0x77, Described(symbol("x:y"), 5))),
     "Unhandled message body type described"),
    ("weird properties", sections((0x74, {"ok": 1, "id": uuid.UUID(int=7), "at": timestamp(5),
                                           "l": [1], symbol("s"): 2, ulong(3): "x"}),
                                   (0x77, "props")), "props"),
    ("properties a list", sections((0x74, [1, 2]), (0x77, "plist")), "plist"),
    ("map past proton's limit", map_value(40_000), "map"),
]


def _raw_send(peer: AmqpPeer, address: str, payload: bytes) -> None:
    def send() -> None:
        for link in peer._handler._links(address, "receiver"):
            link.delivery(uuid.uuid4().hex.encode())
            link.stream(payload)
            link.advance()

    peer.call(send)


def test_amqp_wire_garbage_is_rejected_or_reported_and_the_receiver_goes_on(
        agents: Callable[..., Agent], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bridge")
    agent = agents(backend="amqp")
    with AmqpPeer() as peer:
        events: list[tuple[str, str | None]] = []
        conn = agent.amqp.openconnection(peer.url(), lambda e, d: events.append((e, d)))
        assert agent.run_until(conn.isopen, 10), events
        address = f"/garbage/{uuid.uuid4().hex[:8]}"
        receiver = Receiver(agent, conn, address)
        handler = conn._core.backend._handler
        for n, (name, payload, body) in enumerate(AMQP_CASES):
            before, warned = handler.malformed, len(_warnings(caplog))
            rejected = len([d for d in peer.seen.dispositions if d[1] == Delivery.REJECTED])
            _raw_send(peer, address, payload)
            peer.send(address, ProtonMessage(body=f"good-{n}"))
            got = receiver.next_after(f"good-{n}")
            bodies = [g[0] for g in got]
            if body is REJECTED:
                assert bodies == [f"good-{n}"], name
                assert peer.wait_for(lambda s, r=rejected: len(
                    [d for d in s.dispositions if d[1] == Delivery.REJECTED]) == r + 1), name
            elif body == "map":
                assert isinstance(bodies[0], dict) and 0 < len(bodies[0]) < 40_000, name
            else:
                assert bodies == [body, f"good-{n}"], name
            if name == "weird properties":
                assert got[0][2] == {"ok": 1, "s": 2}
            assert handler.malformed - before == 1, name
            # each of the first ten per connection is logged, later ones only counted
            assert len(_warnings(caplog)) - warned == (handler.malformed <= 10), name
        # legal multi-section data bodies are joined, not reported
        before = handler.malformed
        _raw_send(peer, address, sections((0x75, b"ab"), (0x75, b"cd")))
        peer.send(address, ProtonMessage(body="good-data"))
        assert [g[0] for g in receiver.next_after("good-data")] == [b"abcd", "good-data"]
        assert handler.malformed == before
        assert not [e for e in events if e[0].endswith(("_ERROR", "_CLOSED"))], events
        assert conn.isopen() and receiver.link.isopen()
