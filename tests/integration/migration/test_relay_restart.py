"""The relay forwards 10,000 messages each way while its target broker restarts: none lost.

- AMQP -> MQTT: source a queue on the shared RabbitMQ, target a private Mosquitto (persistence
  on) restarted mid-stream. The relay's MQTT side reconnects by itself (``mqtt.reconnect =
  "auto"``) and resends what had no PUBACK; a raw paho subscriber with a persistent session
  counts distinct ids (duplicates allowed, counted).
- MQTT -> AMQP: source a private Mosquitto (the relay's session persistent, so what it cannot
  forward yet waits there), target a private RabbitMQ node restarted mid-stream. The target
  rule is durable (``target_options = {durable = true}``): RabbitMQ keeps only durable
  messages in durable queues across a restart. The relay loses its AMQP connection, holds
  what arrives, reconnects and resends what was in flight.

Both check the relay's own accounting (``forwarded`` at the source) and print the figures:
throughput, the relay's recovery after the broker is back, duplicates.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bridge import Settings
from bridge.backends.mqtt.backend import live_backends
from bridge.migration.relay import Relay
from bridge.testing.rabbitmq import RabbitNode
from tests.integration.amqp.rabbit import queue_depth
from tests.integration.migration.conftest import (
    MESSAGES,
    SHARED_AMQP_URL,
    MqttCounter,
    drain_queue,
    fill_queue,
    mqtt_publisher,
    unique_queue,
)
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]


def relay_settings(rule: dict[str, Any], *, amqp_url: str, mqtt_url: str,
                   **mqtt: Any) -> Settings:
    return Settings(
        agent_id=f"relay-{uuid.uuid4().hex[:8]}",
        amqp={"url": amqp_url},
        mqtt={"url": mqtt_url, "reconnect": "auto", "reconnect_min_delay": 0.05,
              "reconnect_max_delay": 0.5, **mqtt},
        relay={"rules": [rule], "status_interval": 0, "reconnect_min_delay": 0.2,
               "reconnect_max_delay": 1.0, "drain_timeout": 10})


class Restart:
    """Restart a broker on a thread while the relay keeps dispatching on the test thread."""

    def __init__(self, restart: Callable[[], Any]) -> None:
        self.done = threading.Event()
        self.seconds = 0.0

        def run() -> None:
            began = time.monotonic()
            try:
                restart()
            finally:
                self.seconds = time.monotonic() - began
                self.done.set()

        threading.Thread(target=run, name="broker-restart", daemon=True).start()


def test_amqp_to_mqtt_survives_a_target_mosquitto_restart(
        mosquitto: Callable[..., Mosquitto], mqtt_counter: Callable[..., MqttCounter],
        record_property: Callable[[str, Any], None]) -> None:
    n = MESSAGES
    broker = mosquitto()
    topic = f"relay/{uuid.uuid4().hex[:10]}/events"
    counter = mqtt_counter(broker.port, topic)
    source = unique_queue("relay-a2m")
    fill_queue(SHARED_AMQP_URL, source, n)
    relay = Relay(relay_settings({"source": f"amqp:{source}", "target": f"mqtt:/{topic}"},
                                 amqp_url=SHARED_AMQP_URL, mqtt_url=broker.url))
    forwarder = relay.forwarders[0]
    started = time.monotonic()
    relay.start()
    try:
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded >= n // 3, 60), \
            relay.status_line()
        at_restart = forwarder.stats.forwarded
        rate = at_restart / (time.monotonic() - started)
        restart = Restart(broker.restart)
        assert relay.agent.run_until(restart.done.is_set, 30)
        assert broker.running, "\n".join(broker.log[-20:])
        back_at, before = time.monotonic(), forwarder.stats.forwarded
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded > before, 30), \
            relay.status_line()
        recovery = time.monotonic() - back_at
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded == n, 90), \
            relay.status_line()
        elapsed = time.monotonic() - started
        assert counter.wait_unique(n, 30), f"{n - counter.unique} message(s) lost"
        # it really went down: the relay's MQTT connection and the subscriber reconnected
        assert [b.stats.reconnects for b in live_backends(relay.settings.agent_id)] == [1]
        assert counter.connects == 2
    finally:
        relay.drain()
        relay._drain()
    assert set(counter.counts) == {f"m{i}" for i in range(n)}
    assert forwarder.stats.forwarded == n and forwarder.stats.failed == 0
    assert queue_depth(source) == 0  # every message settled at the source
    assert 0 < at_restart < n
    duplicates = counter.received - n
    figures = {"messages": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed),
               "per_second_before_restart": round(rate),
               "restart_seconds": round(restart.seconds, 2),
               "relay_recovery_seconds": round(recovery, 2), "duplicates": duplicates,
               "resent": forwarder.stats.resent, "forwarded_at_restart": at_restart}
    for key, value in figures.items():
        record_property(key, value)
    print(f"\nrelay AMQP->MQTT with target restart: {figures}")


def test_mqtt_to_amqp_survives_a_target_rabbitmq_restart(
        mosquitto: Callable[..., Mosquitto], rabbit_node: RabbitNode,
        record_property: Callable[[str, Any], None]) -> None:
    n = MESSAGES
    source_broker = mosquitto()
    topic = f"relay/{uuid.uuid4().hex[:10]}/commands"
    queue = f"relay-m2a-{uuid.uuid4().hex[:10]}"
    relay = Relay(relay_settings(
        {"source": f"mqtt:/{topic}", "target": f"amqp:/queue/{queue}",
         "target_options": {"durable": True}},
        amqp_url=rabbit_node.url, mqtt_url=source_broker.url,
        clean_start=False, session_expiry=600))
    forwarder = relay.forwarders[0]
    relay.start()
    try:
        assert relay.agent.run_until(lambda: forwarder.receiver is not None
                                     and forwarder.receiver.isopen()
                                     and forwarder.sender is not None
                                     and forwarder.sender.isopen(), 20), relay.status_line()
        started = time.monotonic()
        publisher = mqtt_publisher(source_broker.port, topic, n)
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded >= n // 3, 60), \
            relay.status_line()
        at_restart = forwarder.stats.forwarded
        rate = at_restart / (time.monotonic() - started)
        restart = Restart(rabbit_node.restart)
        assert relay.agent.run_until(restart.done.is_set, 60)
        back_at, before = time.monotonic(), forwarder.stats.forwarded
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded > before, 30), \
            relay.status_line()
        recovery = time.monotonic() - back_at
        assert relay.agent.run_until(lambda: forwarder.stats.forwarded == n, 90), \
            relay.status_line()
        elapsed = time.monotonic() - started
        publisher.join(10)
    finally:
        relay.drain()
        relay._drain()
    seen = drain_queue(rabbit_node.url, f"/queue/{queue}", n, durable=True)
    assert set(seen) == {f"m{i}" for i in range(n)}, f"{n - len(seen)} message(s) lost"
    ready, unacked = rabbit_node.queue_counts(queue)
    duplicates = sum(seen.values()) - n + ready + unacked  # left in the queue: duplicates too
    assert forwarder.stats.forwarded == n and forwarder.stats.failed == 0
    assert 0 < at_restart < n
    figures = {"messages": n, "seconds": round(elapsed, 2), "per_second": round(n / elapsed),
               "per_second_before_restart": round(rate),
               "restart_seconds": round(restart.seconds, 2),
               "relay_recovery_seconds": round(recovery, 2), "duplicates": duplicates,
               "resent": forwarder.stats.resent, "forwarded_at_restart": at_restart}
    for key, value in figures.items():
        record_property(key, value)
    print(f"\nrelay MQTT->AMQP with target restart: {figures}")
