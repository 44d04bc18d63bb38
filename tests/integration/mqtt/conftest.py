"""Fixtures for MQTT integration tests: agents on the shared or a private Mosquitto, raw clients.

The shared Mosquitto (127.0.0.1:1883) is used by other test runs at the same time: every agent
gets a unique agent id (hence client ids) and every test its own topics. Tests that restart the
broker, use TLS, credentials or ACLs, or flood it start a private one (`private_broker`).
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge import Agent, Settings
from tests.support.mosquitto import Mosquitto, started_brokers

HOST, PORT = "127.0.0.1", 1883
SHARED_URL = f"mqtt://{HOST}:{PORT}"


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session", autouse=True)
def _shared_mosquitto() -> None:
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            pass
    except OSError as exc:
        pytest.fail(f"the shared Mosquitto on {HOST}:{PORT} is not reachable: {exc}")


@pytest.fixture
def make_agent() -> Iterator[Callable[..., Agent]]:
    """``make_agent(**mqtt_settings)``: an agent on the MQTT backend, closed after the test."""
    agents: list[Agent] = []

    def make(agent_id: str | None = None, **mqtt: Any) -> Agent:
        mqtt.setdefault("url", SHARED_URL)
        agent = Agent(Settings(backend="mqtt", agent_id=agent_id or unique("it"), mqtt=mqtt))
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``private_broker(**options)``: a started private Mosquitto, stopped after the test."""
    with started_brokers(tmp_path) as start:
        yield start


class RawClient:
    """A plain paho client (the "other application"): subscribe, publish, collect messages."""

    def __init__(self, port: int = PORT, *, v5: bool = True, host: str = HOST,
                 client_id: str | None = None) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._cond = threading.Condition()
        self._acks: dict[int, Any] = {}
        self._subacks: set[int] = set()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or unique("raw"),
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        self.client.on_connect = lambda *a: self._notify()
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port)
        self.client.loop_start()
        self.wait(self.client.is_connected, "raw client connected")

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._cond:
            self._acks[mid] = reason
            self._cond.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any,
                      props: Any) -> None:
        with self._cond:
            self._subacks.add(mid)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(predicate, timeout), f"timed out waiting for {what}"

    def subscribe(self, topic: str) -> None:
        _, mid = self.client.subscribe(topic, qos=1)
        self.wait(lambda: mid in self._subacks, f"SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes, user_properties: list[tuple[str, str]] | None
                = None, *, payload_format: int | None = None) -> Any:
        props = None
        if user_properties or payload_format is not None:
            props = Properties(PacketTypes.PUBLISH)
            if user_properties:
                props.UserProperty = user_properties
            if payload_format is not None:
                props.PayloadFormatIndicator = payload_format
        info = self.client.publish(topic, payload, qos=1, properties=props)
        self.wait(lambda: info.mid in self._acks, f"PUBACK for {topic}")
        return self._acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def signal_on(obj: Any, method: str) -> threading.Event:
    """An Event set each time ``obj.method`` has run (on whatever thread calls it).

    Connection-level changes of the MQTT backend (reconnected, resubscribed) are deliberately
    invisible to agent code, so tests observe the backend's hooks instead of polling.
    """
    event = threading.Event()
    original = getattr(obj, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        finally:
            event.set()

    setattr(obj, method, wrapper)
    return event


def kick(client_id: str, port: int = PORT) -> None:
    """Connect (and leave) with *client_id*: Mosquitto disconnects the client that had it."""
    RawClient(port, client_id=client_id).close()


@pytest.fixture
def raw_client() -> Iterator[Callable[..., RawClient]]:
    clients: list[RawClient] = []

    def make(port: int = PORT, **kw: Any) -> RawClient:
        client = RawClient(port, **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


class Objects:
    """Open connection/session/links of one agent, with recorders (for short tests)."""

    def __init__(self, agent: Agent, url: str = "amqps://hub.example") -> None:
        self.agent = agent
        self.events: list[tuple[str, str | None]] = []
        self.messages: list[Any] = []
        self.conn = agent.amqp.openconnection(url, self._record)
        self.wait(lambda: self.has("CONNECTION_OPEN") or self.has("CONNECTION_ERROR"),
                  "connection outcome")
        self.session: Any = None
        self.links: list[Any] = []  # a link nobody holds is closed (imp's close-by-drop)

    def _record(self, event: str, detail: str | None) -> None:
        self.events.append((event, detail))

    def has(self, event: str) -> bool:
        return any(e == event for e, _ in self.events)

    def detail(self, event: str) -> str | None:
        return next(d for e, d in self.events if e == event)

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        assert self.agent.run_until(predicate, timeout), f"timed out waiting for {what}: " \
                                                           f"{self.events}"

    def open_session(self) -> Any:
        self.session = self.conn.opensession()
        self.wait(self.session.isopen, "SESSION_OPEN")
        return self.session

    def sender(self, path: str) -> Any:
        sender = (self.session or self.open_session()).opensender(path)
        self.links.append(sender)
        self.wait(lambda: sender.isopen() or self.has("SENDER_ERROR"), "SENDER_OPEN")
        return sender

    def receiver(self, path: str, on_messages: Callable[[list[Any]], Any] | None = None) -> Any:
        receiver = (self.session or self.open_session()).openreceiver(
            path, None, on_messages or self.keep)
        self.links.append(receiver)
        self.wait(lambda: receiver.isopen() or self.has("RECEIVER_ERROR"), "RECEIVER_OPEN")
        return receiver

    def keep(self, deliveries: list[Any]) -> None:
        for delivery in deliveries:
            self.messages.append(delivery.message())
            delivery.accept()

    def send(self, sender: Any, message: Any) -> None:
        done: list[bool] = []
        sender.createtransfer(message).sendasync(lambda: done.append(True))
        self.wait(lambda: bool(done) or self.has("SENDER_ERROR"), "sendasync callback")
