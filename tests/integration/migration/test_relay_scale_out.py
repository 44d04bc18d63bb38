"""Scaling the relay out with the brokers' own mechanisms: two instances, each message once.

- MQTT source: both relays subscribe as the MQTT 5 shared subscription
  ``$share/<group>/<topic>`` (``mqtt.shared_group``); Mosquitto hands each message to one
  member of the group.
- AMQP source: both relays attach a receiver to the same queue; RabbitMQ's competing consumers
  give each message to one of them.

Each instance has its own ``agent_id`` (so its own MQTT client ids). Both must forward a share,
the shares must add up to the total (each message forwarded by exactly one instance, modulo
redeliveries, which are counted) and every message must reach the target.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bridge import Settings
from bridge.migration.relay import Relay
from tests.integration.amqp.rabbit import delete_queue
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

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = max(MESSAGES // 5, 10)


class Instances:
    """Relays started and opened on the test thread, then dispatching on their own threads."""

    def __init__(self, rule: dict[str, Any], mqtt_url: str, count: int = 2,
                 **mqtt: Any) -> None:
        self.relays = [Relay(Settings(
            agent_id=f"scale-{uuid.uuid4().hex[:8]}", amqp={"url": SHARED_AMQP_URL},
            mqtt={"url": mqtt_url, **mqtt},
            relay={"rules": [rule], "status_interval": 0})) for _ in range(count)]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for relay in self.relays:
            relay.start()
            forwarder = relay.forwarders[0]
            assert relay.agent.run_until(lambda f=forwarder: f.receiver is not None
                                         and f.receiver.isopen() and f.sender is not None
                                         and f.sender.isopen(), 10), relay.status_line()
        for relay in self.relays:
            thread = threading.Thread(target=relay.agent.run_until,
                                      args=(relay._drain_requested.is_set, 120), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        for relay in self.relays:
            relay.drain()
        for thread in self.threads:
            thread.join(10)
        for relay in self.relays:
            relay._drain()

    def forwarded(self) -> list[int]:
        return [relay.forwarders[0].stats.forwarded for relay in self.relays]

    def extra(self) -> int:
        """Forwards that redeliveries or resends may have added."""
        return sum(r.forwarders[0].stats.resent + r.forwarders[0].stats.redelivered
                   for r in self.relays)


def test_two_relays_share_an_mqtt_source_through_a_shared_subscription(
        mosquitto: Callable[..., Mosquitto], record_property: Callable[[str, Any], None]
        ) -> None:
    broker = mosquitto()
    topic = f"scale/{uuid.uuid4().hex[:10]}/telemetry"
    target = unique_queue("scale-mqtt-source")
    instances = Instances({"source": f"mqtt:/{topic}", "target": f"amqp:{target}"}, broker.url,
                          shared_group=f"relays-{uuid.uuid4().hex[:6]}", clean_start=False,
                          session_expiry=300)
    instances.start()
    try:
        mqtt_publisher(broker.port, topic, N)
        seen = drain_queue(SHARED_AMQP_URL, target, N)
    finally:
        instances.stop()
    forwarded = instances.forwarded()
    assert set(seen) == {f"m{i}" for i in range(N)}, f"{N - len(seen)} message(s) lost"
    assert all(count > 0 for count in forwarded), forwarded  # both took a share
    assert N <= sum(forwarded) <= N + instances.extra(), forwarded  # each message once
    record_property("forwarded_per_instance", forwarded)
    print(f"\nshared subscription, {N} messages: forwarded per relay {forwarded}, "
          f"duplicates {sum(seen.values()) - N}")
    delete_queue(target)


def test_two_relays_compete_on_an_amqp_queue(
        mosquitto: Callable[..., Mosquitto], mqtt_counter: Callable[..., MqttCounter],
        record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto()
    topic = f"scale/{uuid.uuid4().hex[:10]}/commands"
    counter = mqtt_counter(broker.port, topic)
    source = unique_queue("scale-amqp-source")
    instances = Instances({"source": f"amqp:{source}", "target": f"mqtt:/{topic}"}, broker.url)
    instances.start()  # both consumers attached before the first message
    try:
        fill_queue(SHARED_AMQP_URL, source, N)
        assert counter.wait_unique(N, 60), f"{N - counter.unique} message(s) lost"
    finally:
        instances.stop()
    forwarded = instances.forwarded()
    assert set(counter.counts) == {f"m{i}" for i in range(N)}
    assert all(count > 0 for count in forwarded), forwarded
    assert N <= sum(forwarded) <= N + instances.extra(), forwarded
    record_property("forwarded_per_instance", forwarded)
    print(f"\ncompeting consumers, {N} messages: forwarded per relay {forwarded}, "
          f"duplicates {counter.received - N}")
    delete_queue(source)
