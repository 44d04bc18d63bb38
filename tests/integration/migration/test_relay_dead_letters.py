"""A poison message among good ones: the MQTT target refuses it, the relay retries it per the
rule's policy and then dead-letters it with the reason; the stream never stalls.

AMQP queue (shared RabbitMQ) -> topic of a private Mosquitto whose ``max_packet_size`` the
poison message exceeds: the broker announces the limit in its CONNACK and the MQTT backend
refuses the publish (Mosquitto's ``message_size_limit`` would instead close the connection,
which the relay cannot tell from a broker failure); the dead-letter target is another queue
on the shared RabbitMQ. The good
messages must all arrive, in order, and the poison one must be in the dead-letter queue with
its reason. ``BRIDGE_TEST_MESSAGES`` good messages (default 10,000).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
import pytest

from bridge import Agent, Settings
from bridge.migration.relay import ID_PROPERTY, REASON_PROPERTY, Relay
from tests.integration.amqp.rabbit import delete_queue
from tests.integration.migration.conftest import (
    MESSAGES,
    SHARED_AMQP_URL,
    MqttCounter,
    fill_queue,
    unique_queue,
)
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIMIT = 2048


class OrderedCounter(MqttCounter):
    """`MqttCounter` that also keeps the order of arrival."""

    def __init__(self, port: int, topic: str) -> None:
        self.order: list[str] = []
        super().__init__(port, topic)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.order.append(message.payload.decode("utf-8", "replace"))
        super()._on_message(client, userdata, message)


def take_one(address: str) -> tuple[bytes, dict[str, Any]]:
    with Agent(Settings(backend="amqp", agent_id=f"dlq-{uuid.uuid4().hex[:6]}",
                        amqp={"url": SHARED_AMQP_URL})) as agent:
        got: list[tuple[bytes, dict[str, Any]]] = []

        def on_messages(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                got.append((delivery.message().body(), delivery.message().properties()))
                delivery.accept()

        receiver = agent.amqp.openconnection(SHARED_AMQP_URL, lambda e, d: None) \
            .opensession().openreceiver(address, None, on_messages)
        assert agent.run_until(lambda: bool(got), 30), "nothing in the dead-letter queue"
        receiver.close()
    assert len(got) == 1, got
    return got[0]


def test_a_poison_message_is_dead_lettered_and_the_good_ones_all_arrive_in_order(
        mosquitto: Callable[..., Mosquitto], record_property: Callable[[str, Any], None]
        ) -> None:
    n = MESSAGES
    broker = mosquitto(extra=[f"max_packet_size {LIMIT}"])
    topic = f"poison/{uuid.uuid4().hex[:10]}"
    counter = OrderedCounter(broker.port, topic)
    source, dead = unique_queue("poison-src"), unique_queue("poison-dlq")
    half = n // 2
    fill_queue(SHARED_AMQP_URL, source, half)
    with Agent(Settings(backend="amqp", agent_id=f"poison-{uuid.uuid4().hex[:6]}",
                        amqp={"url": SHARED_AMQP_URL})) as agent:
        sender = agent.amqp.openconnection(SHARED_AMQP_URL, lambda e, d: None).opensession() \
            .opensender(source)
        confirmed = [0]
        poison = agent.amqp.createbinarymessage(b"P" * (2 * LIMIT), {"poison": True})
        sender.createtransfer(poison).sendasync(lambda: confirmed.__setitem__(0, 1))
        assert agent.run_until(lambda: confirmed[0] == 1, 30)
    fill_queue(SHARED_AMQP_URL, source, n - half, start=half)
    relay = Relay(Settings(
        agent_id=f"poison-{uuid.uuid4().hex[:6]}", amqp={"url": SHARED_AMQP_URL},
        mqtt={"url": broker.url, "reconnect": "auto"},
        relay={"status_interval": 0, "rules": [{
            "source": f"amqp:{source}", "target": f"mqtt:/{topic}", "retries": 2,
            "dead_letter": f"amqp:{dead}"}]}))
    forwarder = relay.forwarders[0]
    relay.start()
    try:
        assert relay.agent.run_until(
            lambda: forwarder.stats.forwarded == n and forwarder.stats.dead_lettered == 1, 120
        ), relay.status_line()
    finally:
        relay.drain()
        relay._drain()
    assert counter.wait_unique(n, 30), f"{n - counter.unique} good message(s) lost"
    good = [f"m{i}" for i in range(n)]
    assert counter.order == good  # all, once, in order
    body, properties = take_one(dead)
    assert body == b"P" * (2 * LIMIT)
    assert properties["poison"] is True and properties[ID_PROPERTY]
    reason = properties[REASON_PROPERTY]
    assert reason and ("large" in reason.lower() or "size" in reason.lower()), reason
    assert forwarder.stats.failed == 3  # the first attempt and 2 retries
    text = relay.metrics_text()
    assert f'bridge_relay_dead_lettered_total{{rule="{forwarder.name}"}} 1' in text
    record_property("reason", reason)
    print(f"\npoison among {n}: dead-lettered with reason {reason!r}; {relay.status_line()}")
    counter.close()
    for queue in (source, dead):
        delete_queue(queue)
