"""``qos = 2`` on a rule into MQTT: the target Mosquitto restarted mid-stream gives no duplicate
and no loss.

AMQP queue (shared RabbitMQ) -> topic of a private Mosquitto with persistence, restarted (SIGTERM,
so it writes its persistence file, then started again on the same port) a third of the way.
The relay's target connection keeps its session (the rule's ``qos = 2`` gives it one); paho
resends an unacknowledged PUBLISH with its packet id (the broker drops it if it already has
that id) and a PUBREL for one the broker had acknowledged, so each message enters the broker
once. A raw paho subscriber at QoS 2 with a persistent session, away while the stream runs (its own
hop from the broker would add duplicates of its own across the restart: Mosquitto 2.0 resends
a restarted session's QoS 2 deliveries), counts afterwards what entered the broker, by stable
id (the ``bridge-relay-id`` user property). ``BRIDGE_TEST_MESSAGES`` // 5 messages
(default 2,000).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge import Settings
from bridge.backends.mqtt.backend import live_backends
from bridge.migration.relay import ID_PROPERTY, Relay
from tests.integration.amqp.rabbit import queue_depth
from tests.integration.migration.conftest import (
    MESSAGES,
    SHARED_AMQP_URL,
    fill_queue,
    unique_queue,
)
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]

N = max(MESSAGES // 5, 100)


class Qos2Counter:
    """A raw paho client at QoS 2 with a persistent session, counting by stable id.

    `subscribe` creates its session and leaves; `count` comes back for what the broker queued
    for it meanwhile (the stream and the restart happen while it is away, so what it counts
    is what entered the broker, not what its own hop may deliver twice)."""

    def __init__(self, port: int, topic: str) -> None:
        self.port, self.topic = port, topic
        self.client_id = f"qos2-counter-{uuid.uuid4().hex[:8]}"
        self.counts: Counter[str] = Counter()
        self.bodies: dict[str, str] = {}
        self.changed = threading.Condition()
        self.client: paho.Client | None = None

    def _connect(self, on_message: Callable[..., None] | None) -> paho.Client:
        subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv5)
        client.on_subscribe = lambda *args: subscribed.set()
        if on_message is not None:
            client.on_message = on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        props.ReceiveMaximum = 1000
        client.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        client.loop_start()
        client.subscribe(self.topic, qos=2)
        assert subscribed.wait(10)
        return client

    def subscribe(self) -> None:
        client = self._connect(None)
        client.disconnect()
        client.loop_stop()

    def count(self) -> None:
        self.client = self._connect(self._on_message)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        ids = [v for k, v in (getattr(message.properties, "UserProperty", None) or [])
               if k == ID_PROPERTY]
        with self.changed:
            ident = ids[0] if ids else "(none)"
            self.counts[ident] += 1
            self.bodies[ident] = message.payload.decode()
            self.changed.notify_all()

    def wait_unique(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.counts) >= count, timeout)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def publish_sentinel(port: int, topic: str) -> None:
    acked = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"end-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv5)
    client.on_publish = lambda *args: acked.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = (ID_PROPERTY, "end")
    client.publish(topic, b"end", qos=2, properties=props)
    assert acked.wait(10)
    client.disconnect()
    client.loop_stop()


def test_qos2_into_mqtt_survives_a_broker_restart_without_duplicates(
        mosquitto: Callable[..., Mosquitto], record_property: Callable[[str, Any], None]
        ) -> None:
    broker = mosquitto()
    topic = f"qos2/{uuid.uuid4().hex[:10]}"
    counter = Qos2Counter(broker.port, topic)
    counter.subscribe()
    source = unique_queue("qos2-src")
    fill_queue(SHARED_AMQP_URL, source, N)
    relay = Relay(Settings(
        agent_id=f"qos2-{uuid.uuid4().hex[:8]}", amqp={"url": SHARED_AMQP_URL},
        mqtt={"url": broker.url, "reconnect": "auto", "reconnect_min_delay": 0.05,
              "reconnect_max_delay": 0.5},
        relay={"status_interval": 0, "drain_timeout": 10, "window": 50, "rules": [
            {"source": f"amqp:{source}", "target": f"mqtt:/{topic}", "qos": 2}]}))
    forwarder = relay.forwarders[0]
    assert forwarder.target_side.settings.mqtt.qos == 2
    assert not forwarder.target_side.settings.mqtt.clean_start
    relay.start()
    try:
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded >= N // 3, 60), \
            relay.status_line()
        at_restart = forwarder.stats.forwarded
        done = threading.Event()

        def restart() -> None:
            try:
                broker.restart()
            finally:
                done.set()

        threading.Thread(target=restart, daemon=True).start()
        assert relay.agent.run_until(done.is_set, 30)
        assert broker.running, "\n".join(broker.log[-20:])
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded == N, 90), \
            relay.status_line()
        # it really went down and came back with the session
        assert [b.stats.reconnects for b in live_backends(relay.settings.agent_id)] == [1]
    finally:
        relay.drain()
        relay._drain()
    # one more message after the stream, queued last for the counter: once it is in, a
    # duplicate of an earlier one would be too (a session's queue is sent in order)
    publish_sentinel(broker.port, topic)
    counter.count()
    try:
        assert counter.wait_unique(N + 1, 30), f"{N + 1 - len(counter.counts)} message(s) lost"
    finally:
        counter.close()
    duplicates = sum(counter.counts.values()) - (N + 1)
    assert "(none)" not in counter.counts
    assert sorted(counter.bodies.values()) == sorted([*(f"m{i}" for i in range(N)), "end"])
    assert duplicates == 0, [k for k, v in counter.counts.items() if v > 1][:5]
    assert 0 < at_restart < N
    assert queue_depth(source) == 0
    record_property("resent", forwarder.stats.resent)
    print(f"\nqos 2 across a Mosquitto restart: {N} messages, duplicates {duplicates}, resent "
          f"by the relay {forwarder.stats.resent}, forwarded at the restart {at_restart}, "
          f"{time.strftime('%H:%M:%S')}")
