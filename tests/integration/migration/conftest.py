"""Fixtures and helpers for the staged-migration tests on the real brokers (project issue 7).

- the shared RabbitMQ (127.0.0.1:5672) and Mosquitto (127.0.0.1:1883) carry small, uniquely
  named traffic; anything restarted or flooded runs on a private broker: `Mosquitto`
  (tests/support/mosquitto.py) or `RabbitNode` (bridge/testing/rabbitmq.py, one per module:
  ~4 s to start);
- `MqttCounter` is a raw paho subscriber with a persistent session that survives a broker
  restart and counts what arrives per id (duplicates allowed and counted);
- `fill_queue` / `drain_queue` put messages on an AMQP queue and take them off, through bridge
  agents (pipelined, so 10,000 messages take a second or two, not a minute);
- message counts come from ``BRIDGE_TEST_MESSAGES`` (default 10,000, what issue 7 asks for).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge import Agent, Settings
from bridge.testing.rabbitmq import RabbitNode
from tests.integration.amqp.rabbit import QUEUE_PREFIX, broker_available, ensure_expiry_policy
from tests.integration.amqp.rabbit import URL as SHARED_AMQP_URL
from tests.support.mosquitto import Mosquitto, started_brokers

SHARED_MQTT_URL = "mqtt://127.0.0.1:1883"
MESSAGES = int(os.environ.get("BRIDGE_TEST_MESSAGES", "10000"))

__all__ = ["MESSAGES", "SHARED_AMQP_URL", "SHARED_MQTT_URL", "MqttCounter", "drain_queue",
           "fill_queue", "unique_queue"]


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def unique_queue(label: str) -> str:
    """A /queue/ address on the shared RabbitMQ that its test-queue expiry policy covers."""
    ensure_expiry_policy()
    return f"/queue/{QUEUE_PREFIX}{unique(label)}"


@pytest.fixture(scope="session", autouse=True)
def _shared_brokers() -> None:
    problem = broker_available()
    if problem is not None:
        pytest.fail(problem)
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=2):
            pass
    except OSError as exc:
        pytest.fail(f"the shared Mosquitto on 127.0.0.1:1883 is not reachable: {exc}")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``mosquitto(**options)``: a private broker (persistence on, no queue limit)."""
    # max_queued_messages 0 = no limit: floods are not dropped
    with started_brokers(tmp_path, persistence=True, max_queued_messages=0) as start:
        yield start


@pytest.fixture(scope="module")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    node = RabbitNode(tmp_path_factory.mktemp("rabbit")).start()
    yield node
    node.stop()


# -- MQTT: a counting subscriber -----------------------------------------------------------------


class MqttCounter:
    """A raw paho subscriber on *topic*, QoS 1, persistent session, reconnecting by itself."""

    def __init__(self, port: int, topic: str, *, host: str = "127.0.0.1") -> None:
        self.topic = topic
        self.counts: Counter[str] = Counter()
        self.connects = 0
        self._subscribed = False
        self._cond = threading.Condition()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("counter"),
                             protocol=paho.MQTTv5)
        client.reconnect_delay_set(0.05, 0.5)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self.client = client
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600  # messages for us are kept while the broker restarts
        props.ReceiveMaximum = 1000
        client.connect(host, port, clean_start=False, properties=props)
        client.loop_start()
        self.wait(lambda: self.connects > 0 and self._subscribed, "subscription", 10)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(self.topic, qos=1)  # again after a restart: harmless, the same filter
        with self._cond:
            self.connects += 1
            self._subscribed = True  # SUBSCRIBE is ordered before any PUBLISH we then send
            self._cond.notify_all()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.counts[message.payload.decode("utf-8", "replace")] += 1
            self._cond.notify_all()

    @property
    def unique(self) -> int:
        return len(self.counts)

    @property
    def received(self) -> int:
        return sum(self.counts.values())

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), (
                f"timed out waiting for {what}: {self.unique} unique / {self.received} received")

    def wait_unique(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.counts) >= count, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_counter() -> Iterator[Callable[..., MqttCounter]]:
    counters: list[MqttCounter] = []

    def make(port: int, topic: str) -> MqttCounter:
        counter = MqttCounter(port, topic)
        counters.append(counter)
        return counter

    yield make
    for counter in counters:
        counter.close()


def mqtt_publisher(port: int, topic: str, count: int, *, start: int = 0) -> threading.Thread:
    """Publish ``m<n>`` for n in [start, start+count) at QoS 1 from a thread; returns it (joined
    when every PUBACK is in)."""
    done = threading.Event()
    acked = [0]

    def run() -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=unique("publisher"),
                             protocol=paho.MQTTv5)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)

        def on_publish(*args: Any) -> None:
            acked[0] += 1
            if acked[0] == count:
                done.set()

        client.on_publish = on_publish
        client.connect("127.0.0.1", port)
        client.loop_start()
        for n in range(start, start + count):
            client.publish(topic, f"m{n}".encode(), qos=1)
        ok = done.wait(120)
        client.disconnect()
        client.loop_stop()
        assert ok, f"publisher: only {acked[0]} of {count} PUBACKs"

    thread = threading.Thread(target=run, name="mqtt-publisher", daemon=True)
    thread.start()
    return thread


# -- AMQP: fill and drain queues through bridge agents ------------------------------------------


def fill_queue(url: str, address: str, count: int, *, start: int = 0, durable: bool = False,
               timeout: float = 120.0) -> None:
    """Send ``m<n>`` (binary, property seq=n) for n in [start, start+count); returns when the
    broker accepted every one."""
    with Agent(Settings(backend="amqp", agent_id=unique("filler"),
                        amqp={"url": url, "durable": durable})) as agent:
        connection = agent.amqp.openconnection(url, lambda event, detail: None)
        sender = connection.opensession().opensender(address)
        confirmed = [0]

        def done() -> None:
            confirmed[0] += 1

        for n in range(start, start + count):
            message = agent.amqp.createbinarymessage(f"m{n}", {"seq": n})
            sender.createtransfer(message).sendasync(done)
        assert agent.run_until(lambda: confirmed[0] == count, timeout), (
            f"only {confirmed[0]} of {count} messages accepted by {address}")


def drain_queue(url: str, address: str, expected: int, *, durable: bool = False,
                timeout: float = 60.0) -> Counter[str]:
    """Take messages off *address* until *expected* distinct bodies arrived; their counts."""
    seen: Counter[str] = Counter()
    with Agent(Settings(backend="amqp", agent_id=unique("drainer"),
                        amqp={"url": url, "durable": durable, "prefetch": 500})) as agent:
        connection = agent.amqp.openconnection(url, lambda event, detail: None)

        def on_messages(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                body = delivery.message().body()
                seen[body.decode() if isinstance(body, bytes) else str(body)] += 1
                delivery.accept()

        receiver = connection.opensession().openreceiver(address, None, on_messages)
        agent.run_until(lambda: len(seen) >= expected, timeout)
        assert receiver.isopen() or len(seen) >= expected
    return seen
