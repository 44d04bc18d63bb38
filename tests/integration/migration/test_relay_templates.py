"""Topic templates on the real brokers: a wildcard MQTT source fanned out to one AMQP queue per
device (``amqp:/queue/<prefix>tmpl-{1}``), and the same source into MQTT under ``{topic}``.

Devices publish to ``devices/<id>/messages/events`` on a private Mosquitto; each device's
messages must all reach that device's queue on the shared RabbitMQ, in order, with the stable
id, and without the relay's internal topic property.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bridge import Agent, Settings
from bridge.migration.relay import ID_PROPERTY, Relay
from bridge.migration.relay.templates import SUBJECT_PROPERTY, TOPIC_PROPERTY
from tests.integration.amqp.rabbit import QUEUE_PREFIX, delete_queue, ensure_expiry_policy
from tests.integration.migration.conftest import SHARED_AMQP_URL, MqttCounter
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES, PER_DEVICE = 3, 100


def publish(port: int, topics: list[str], count: int) -> None:
    done = threading.Event()
    acked = [0]
    total = len(topics) * count

    def on_publish(*args: Any) -> None:
        acked[0] += 1
        if acked[0] == total:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv5)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    for n in range(count):
        for topic in topics:
            client.publish(topic, f"{topic.split('/')[1]}:{n}".encode(), qos=1)
    assert done.wait(60), f"{acked[0]} of {total} PUBACKs"
    client.disconnect()
    client.loop_stop()


def read_queues(addresses: list[str], per_queue: int) -> dict[str, list[tuple[str, Any]]]:
    got: dict[str, list[tuple[str, Any]]] = {a: [] for a in addresses}
    with Agent(Settings(backend="amqp", agent_id=f"read-{uuid.uuid4().hex[:6]}",
                        amqp={"url": SHARED_AMQP_URL})) as agent:
        session = agent.amqp.openconnection(SHARED_AMQP_URL, lambda e, d: None).opensession()
        receivers = []
        for address in addresses:
            def on_messages(deliveries: list[Any], address: str = address) -> None:
                for delivery in deliveries:
                    message = delivery.message()
                    got[address].append((message.body().decode(), message.properties()))
                    delivery.accept()
            receivers.append(session.openreceiver(address, None, on_messages))
        agent.run_until(lambda: all(len(v) >= per_queue for v in got.values()), 60)
        for receiver in receivers:
            receiver.close()
    return got


def test_a_wildcard_source_fans_out_to_a_queue_per_device(
        mosquitto: Callable[..., Mosquitto], mqtt_counter: Callable[..., MqttCounter],
        record_property: Callable[[str, Any], None]) -> None:
    ensure_expiry_policy()
    broker = mosquitto()
    tag = uuid.uuid4().hex[:8]
    devices = [f"d{i}-{tag}" for i in range(DEVICES)]
    archive = f"archive-{tag}"
    counter = mqtt_counter(broker.port, f"{archive}/#")
    relay = Relay(Settings(
        agent_id=f"tmpl-{tag}", amqp={"url": SHARED_AMQP_URL},
        mqtt={"url": broker.url, "clean_start": False, "session_expiry": 300},
        relay={"status_interval": 0, "rules": [
            {"source": "mqtt:/devices/+/messages/events",
             "target": f"amqp:/queue/{QUEUE_PREFIX}tmpl-{{1}}"},
            {"source": "mqtt:/devices/+/messages/events",
             "target": f"mqtt:/{archive}/{{topic}}"}]}))
    to_queues, to_archive = relay.forwarders
    relay.start()
    try:
        assert relay.agent.run_until(
            lambda: all(f.receiver is not None and f.receiver.isopen() for f in relay.forwarders),
            20), relay.status_line()
        topics = [f"devices/{d}/messages/events" for d in devices]
        thread = threading.Thread(target=publish, args=(broker.port, topics, PER_DEVICE))
        thread.start()
        total = DEVICES * PER_DEVICE
        assert relay.agent.run_until(lambda: to_queues.stats.forwarded == total
                                     and to_archive.stats.forwarded == total, 60), \
            relay.status_line()
        thread.join(30)
    finally:
        relay.drain()
        relay._drain()
    addresses = [f"/queue/{QUEUE_PREFIX}tmpl-{d}" for d in devices]
    got = read_queues(addresses, PER_DEVICE)
    for device, address in zip(devices, addresses, strict=True):
        assert [body for body, _ in got[address]] == [f"{device}:{n}" for n in range(PER_DEVICE)]
        assert all(ID_PROPERTY in p and TOPIC_PROPERTY not in p for _, p in got[address])
    assert counter.wait_unique(DEVICES * PER_DEVICE, 30)
    assert set(to_queues.senders) == set(addresses)
    for address in addresses:
        delete_queue(address)
    record_property("queues", len(addresses))


def test_an_amqp_subject_picks_the_mqtt_topic(
        mosquitto: Callable[..., Mosquitto], record_property: Callable[[str, Any], None]) -> None:
    """``amqp:/queue/in -> mqtt:/devices/{subject}/messages/events``: a foreign AMQP
    application sets each message's subject; each lands on its device's topic, without the
    relay's internal subject property, and a message without a subject is dead-lettered."""
    from proton import Message as ProtonMessage

    from tests.integration.amqp.rabbit import RawClient
    from tests.integration.migration.conftest import unique_queue

    broker = mosquitto()
    tag = uuid.uuid4().hex[:8]
    source, dead = unique_queue("subject-in"), unique_queue("subject-dead")
    seen: list[tuple[str, str]] = []
    cond = threading.Condition()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{tag}",
                         protocol=paho.MQTTv5)

    def on_message(c: Any, u: Any, msg: paho.MQTTMessage) -> None:
        with cond:
            seen.append((msg.topic, msg.payload.decode()))
            cond.notify_all()

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", broker.port)
    client.subscribe(f"{tag}/#", qos=1)
    client.loop_start()
    assert subscribed.wait(10)
    devices = [f"d{i}" for i in range(3)]
    with RawClient(SHARED_AMQP_URL) as raw:
        for n in range(30):
            raw.send(source, ProtonMessage(body=f"m{n}".encode(), inferred=True,
                                           subject=devices[n % 3]))
        raw.send(source, ProtonMessage(body=b"no-subject", inferred=True))
    relay = Relay(Settings(
        agent_id=f"subj-{tag}", amqp={"url": SHARED_AMQP_URL}, mqtt={"url": broker.url},
        relay={"status_interval": 0, "rules": [
            {"source": f"amqp:{source}", "target": f"mqtt:/{tag}/{{subject}}/events",
             "dead_letter": f"amqp:{dead}"}]}))
    (forwarder,) = relay.forwarders
    relay.start()
    try:
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded == 30
                                     and forwarder.stats.dead_lettered == 1, 60), \
            relay.status_line()
        with cond:
            assert cond.wait_for(lambda: len(seen) >= 30, 30), seen
    finally:
        relay.drain()
        relay._drain()
        client.loop_stop()
        client.disconnect()
    for device in devices:
        assert [body for topic, body in seen if topic == f"{tag}/{device}/events"] == \
            [f"m{n}" for n in range(30) if devices[n % 3] == device]
    (dead_letter,) = read_queues([dead], 1)[dead]
    assert dead_letter[0] == "no-subject"
    assert "no AMQP subject" in str(dead_letter[1].get("bridge-relay-dead-reason"))
    assert SUBJECT_PROPERTY not in dead_letter[1]
    record_property("devices", len(devices))
