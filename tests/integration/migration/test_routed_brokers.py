"""Stage 2 on the real brokers: one connection, telemetry on MQTT, commands on RabbitMQ.

The agent opens one connection and one session; ``routes`` send ``/devices/...`` links to the
shared Mosquitto and everything else (``/queue/...``) to the shared RabbitMQ. It sends and
receives on both; the other side of each is a raw client (paho, proton). Events stay those of
one AMQP connection: one CONNECTION_OPEN, one SESSION_OPEN; a backend that cannot connect (or
is lost later) fails the connection with a detail naming it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proton import Message as ProtonMessage

from bridge import Agent, Message, Settings
from bridge.backends.mqtt.backend import live_backends
from bridge.engines.mqtt import codec
from tests.integration.amqp.rabbit import RawClient as ProtonClient
from tests.integration.amqp.rabbit import delete_queue
from tests.integration.migration.conftest import SHARED_AMQP_URL, SHARED_MQTT_URL, unique_queue
from tests.integration.mqtt.conftest import RawClient as PahoClient
from tests.support.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []

    def __call__(self, event: str, detail: str | None) -> None:
        self.events.append((event, detail))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def staged_agent(*, mqtt_url: str = SHARED_MQTT_URL, amqp_url: str = SHARED_AMQP_URL,
                 **mqtt: Any) -> Agent:
    return Agent(Settings(
        backend="amqp", agent_id=f"staged-{uuid.uuid4().hex[:8]}", amqp={"url": amqp_url},
        mqtt={"url": mqtt_url, **mqtt},
        routes=[{"match": "/devices/{device}/*", "backend": "mqtt"}]))


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for agent in made:
        agent.close()


def test_routed_agent_sends_and_receives_on_both_brokers(agents: list[Agent]) -> None:
    device = f"d-{uuid.uuid4().hex[:10]}"
    telemetry, settings_path = f"/devices/{device}/messages/events", f"/devices/{device}/settings"
    commands, replies = unique_queue("staged-commands"), unique_queue("staged-replies")
    agent = staged_agent()
    agents.append(agent)
    paho_side = PahoClient()
    proton_side = ProtonClient()
    try:
        paho_side.subscribe(telemetry[1:])
        recorder = Recorder()
        conn = agent.amqp.openconnection("amqps://hub.example", recorder)
        session = conn.opensession(recorder)
        received: dict[str, list[Message]] = {"mqtt": [], "amqp": []}

        def keep(where: str) -> Callable[[list[Any]], None]:
            def on_messages(deliveries: list[Any]) -> None:
                for delivery in deliveries:
                    received[where].append(delivery.message())
                    delivery.accept()
            return on_messages

        links = [session.opensender(telemetry, recorder),
                 session.openreceiver(settings_path, recorder, keep("mqtt")),
                 session.openreceiver(commands, recorder, keep("amqp")),
                 session.opensender(replies, recorder)]
        assert agent.run_until(lambda: all(link.isopen() for link in links), TIMEOUT), \
            recorder.events
        assert recorder.names().count("CONNECTION_OPEN") == 1
        assert recorder.names().count("SESSION_OPEN") == 1
        assert sorted(recorder.names()[2:]) == ["RECEIVER_OPEN", "RECEIVER_OPEN", "SENDER_OPEN",
                                                "SENDER_OPEN"]
        assert not [e for e in recorder.names() if e.endswith(("_ERROR", "_CLOSED"))]

        # send on both: telemetry reaches the MQTT subscriber, the reply the AMQP queue
        confirmed: list[str] = []
        reading = agent.amqp.createmessage('{"t": 21.5}', {"seq": 7, "unit": "C", "ok": True})
        links[0].createtransfer(reading).sendasync(lambda: confirmed.append("telemetry"))
        reply = agent.amqp.createmessage("done", {"command": 1})
        links[3].createtransfer(reply).sendasync(lambda: confirmed.append("reply"))
        assert agent.run_until(lambda: len(confirmed) == 2, TIMEOUT)
        paho_side.wait(lambda: bool(paho_side.messages), "telemetry on MQTT")
        published = paho_side.messages[0]
        assert codec.decode_v5(published.payload, published.properties.UserProperty,
                               getattr(published.properties, "PayloadFormatIndicator", None)
                               ) == reading
        (got_reply,) = proton_side.receive(replies)
        assert (got_reply.body, got_reply.properties) == ("done", {"command": 1})

        # receive on both: a setting published on MQTT, a command sent to the RabbitMQ queue
        setting = Message.value("interval=5", {"version": 3})
        encoded = codec.encode_v5(setting)
        paho_side.publish(settings_path[1:], encoded.payload, encoded.user_properties)
        proton_side.send(commands, ProtonMessage(body="reboot", properties={"delay": 30}))
        assert agent.run_until(lambda: received["mqtt"] and received["amqp"], TIMEOUT)
        assert received["mqtt"] == [setting]
        assert received["amqp"] == [Message.value("reboot", {"delay": 30})]
        assert not [e for e in recorder.names() if e.endswith(("_ERROR", "_CLOSED"))]

        conn.close()
        assert agent.run_until(lambda: "CONNECTION_CLOSED" in recorder.names(), TIMEOUT)
        assert recorder.names().count("CONNECTION_CLOSED") == 1
        agent.close()
        assert live_backends(agent.settings.agent_id) == []  # the MQTT side closed too
    finally:
        paho_side.close()
        proton_side.close()
        delete_queue(commands)
        delete_queue(replies)


@pytest.mark.parametrize("unreachable", ["mqtt", "amqp"])
def test_one_backend_failing_to_open_fails_the_connection_naming_it(
        agents: list[Agent], unreachable: str) -> None:
    closed = f"127.0.0.1:{free_port()}"
    agent = staged_agent(**({"mqtt_url": f"mqtt://{closed}"} if unreachable == "mqtt"
                            else {"amqp_url": f"amqp://guest:guest@{closed}"}))
    agents.append(agent)
    recorder = Recorder()
    conn = agent.amqp.openconnection("amqps://hub.example", recorder)
    assert agent.run_until(lambda: bool(recorder.events), TIMEOUT)
    agent.run_until(lambda: False, 0.3)  # nothing else may follow (the healthy side is closed)
    assert recorder.names() == ["CONNECTION_ERROR"], recorder.events
    detail = recorder.events[0][1] or ""
    assert detail.startswith(f"{unreachable}: "), detail
    assert closed in detail or "refused" in detail.lower(), detail
    assert not conn.isopen()
    agent.close()
    assert live_backends(agent.settings.agent_id) == []


def test_losing_the_mqtt_broker_later_is_a_connection_loss_naming_it(
        agents: list[Agent], mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto(persistence=False)
    agent = staged_agent(mqtt_url=broker.url)  # mqtt.reconnect = "off": the legacy behaviour
    agents.append(agent)
    recorder = Recorder()
    conn = agent.amqp.openconnection("amqps://hub.example", recorder)
    session = conn.opensession(recorder)
    device = uuid.uuid4().hex[:10]
    commands = unique_queue("staged-loss")
    links = [session.opensender(f"/devices/{device}/messages/events", recorder),
             session.openreceiver(commands, recorder, lambda deliveries: None)]
    assert agent.run_until(lambda: all(link.isopen() for link in links), TIMEOUT)
    stopped = threading.Thread(target=broker.stop)
    stopped.start()
    assert agent.run_until(lambda: "CONNECTION_ERROR" in recorder.names(), TIMEOUT), \
        recorder.events
    stopped.join(10)
    names = recorder.names()
    # the children close first, then the connection reports the loss once, naming MQTT
    assert names[-1] == "CONNECTION_ERROR" and names.count("CONNECTION_ERROR") == 1
    assert {"SESSION_CLOSED", "SENDER_CLOSED", "RECEIVER_CLOSED"} <= set(names)
    assert (recorder.events[-1][1] or "").startswith("mqtt: ")
    assert not conn.isopen()
    delete_queue(commands)
