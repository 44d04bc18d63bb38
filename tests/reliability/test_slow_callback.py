"""A message callback that blocks the dispatcher for more than three keep-alive periods does not
cost the connection.

User callbacks run on the agent's dispatcher thread; the network side runs on its own thread
(the MQTT driver, the proton reactor). So while a callback is stuck, the MQTT driver still sends
PINGREQs and the reactor still answers and sends AMQP heartbeats (empty frames): the broker keeps
the connection, and so does our side's own idle check. With MQTT ``reconnect = "off"`` a dropped
connection would be ``CONNECTION_ERROR``; the broker's own log would say it timed the client
out. Messages that arrive meanwhile wait and are delivered once the callback returns.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from proton import Message as ProtonMessage

from bridge import Agent
from bridge.backends.mqtt.backend import live_backends
from tests.integration.amqp.peer import AmqpPeer
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

KEEPALIVE = 1  # seconds (MQTT keep-alive; AMQP idle time-out)
BLOCK = 3.5 * KEEPALIVE + 0.5  # how long the callback holds the dispatcher
LATER = 20  # messages published while it is blocked


def _blocking_receiver(agent: Agent, conn: Any, path: str
                       ) -> tuple[Any, list[Any], threading.Event, list[float]]:
    got: list[Any] = []
    blocked = threading.Event()
    spans: list[float] = []

    def on_messages(deliveries: list[Any]) -> None:
        for delivery in deliveries:
            got.append(delivery.message().body())
            delivery.accept()
        if not blocked.is_set():
            blocked.set()
            started = time.monotonic()
            time.sleep(BLOCK)  # the slow user code under test
            spans.append(time.monotonic() - started)

    receiver = conn.opensession().openreceiver(path, None, on_messages)
    assert agent.run_until(receiver.isopen, 10)
    return receiver, got, blocked, spans


def test_mqtt_keepalive_runs_while_a_callback_blocks(
        mosquitto: Callable[..., Mosquitto], agents: Callable[..., Agent]) -> None:
    broker = mosquitto()
    agent = agents(backend="mqtt", mqtt={"url": broker.url, "keepalive": KEEPALIVE,
                                         "reconnect": "off"})
    events: list[tuple[str, str | None]] = []
    conn = agent.amqp.openconnection("amqps://hub", lambda e, d: events.append((e, d)))
    assert agent.run_until(conn.isopen, 10), events
    (backend,) = live_backends(agent.settings.agent_id)
    path = f"/slow/{uuid.uuid4().hex[:8]}"
    receiver, got, blocked, spans = _blocking_receiver(agent, conn, path)
    sender = conn.opensession().opensender(path)
    assert agent.run_until(sender.isopen, 10)

    sender.createtransfer(agent.amqp.createmessage("first")).sendasync()
    publisher = threading.Thread(target=_publish_when, args=(
        blocked, broker.port, path.lstrip("/"), LATER), daemon=True)
    publisher.start()
    assert agent.run_until(lambda: len(got) == 1 + LATER, BLOCK + 15), (got, events)
    publisher.join(5)

    assert spans and spans[0] >= BLOCK  # the dispatcher really was held that long
    # no CONNECTION_ERROR (reconnect is off): the connection held
    assert not [e for e in events if e[0].endswith(("_ERROR", "_CLOSED"))], events
    assert conn.isopen() and receiver.isopen()
    assert backend.driver.epoch == 1 and backend.stats.reconnects == 0  # the same MQTT session
    client_id = backend.client_id
    timed_out = [line for line in broker.log if client_id in line and
                 ("timeout" in line.lower() or "disconnect" in line.lower())]
    assert timed_out == [], timed_out  # the broker never dropped us for silence


def _publish_when(blocked: threading.Event, port: int, topic: str, count: int) -> None:
    """While the callback blocks, a plain client publishes more (they must wait, not vanish)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    blocked.wait(10)
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for n in range(count):
        client.publish(topic, f"later-{n}".encode(), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_amqp_idle_timeout_is_honoured_while_a_callback_blocks(
        agents: Callable[..., Agent]) -> None:
    """On a raw proton peer that itself enforces a 1 s idle time-out (RabbitMQ's heartbeat is
    60 s: too slow to test): both sides must keep sending frames while the callback blocks."""
    agent = agents(backend="amqp", amqp={"idle_timeout": KEEPALIVE})
    events: list[tuple[str, str | None]] = []
    with AmqpPeer() as peer:
        handler = peer._handler
        bound = handler.on_connection_bound

        def strict_peer(event: Any) -> None:
            bound(event)
            event.transport.idle_timeout = KEEPALIVE  # the peer drops us after 1 s of silence

        handler.on_connection_bound = strict_peer  # type: ignore[method-assign]
        conn = agent.amqp.openconnection(peer.url(), lambda e, d: events.append((e, d)))
        assert agent.run_until(conn.isopen, 10), events
        address = f"/slow/{uuid.uuid4().hex[:8]}"
        receiver, got, blocked, spans = _blocking_receiver(agent, conn, address)
        peer.send(address, ProtonMessage(body="first"))
        assert agent.run_until(blocked.is_set, 10), events  # returns once the callback did
        # (the callback ran inside run_until: it has already blocked for BLOCK seconds)
        for n in range(LATER):
            peer.send(address, ProtonMessage(body=f"later-{n}"))
        assert agent.run_until(lambda: len(got) == 1 + LATER, 15), (got, events)
        assert spans and spans[0] >= BLOCK
        # an idle time-out on either side would have ended the connection
        assert not [e for e in events if e[0].endswith(("_ERROR", "_CLOSED"))], events
        assert conn.isopen() and receiver.isopen()
        assert len(peer.seen.connections) == 1
