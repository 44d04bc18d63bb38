"""Fixtures of the reliability suite (``-m reliability``): private brokers, agents, raw clients.

Every broker these tests kill, restart, flood or limit is private (its own process, port and
directory) and is ended by the fixture that started it, by its own process id. Nothing here
touches the shared Mosquitto or RabbitMQ except tests that only need a well-behaved broker.
"""

from __future__ import annotations

import threading
import time
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
from bridge.testing.rabbitmq import available as rabbit_available
from tests.support.mosquitto import Mosquitto, started_brokers

# Mosquitto settings under which a SIGKILL loses no acknowledged message: the in-memory state
# is written after every change (a subscription, a queued message), not only on a clean stop.
CRASH_SAFE = ["autosave_interval 1", "autosave_on_changes true"]


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """``mosquitto(**options)``: a started private Mosquitto; killed afterwards."""
    with started_brokers(tmp_path, kill=True) as start:
        yield start


@pytest.fixture
def rabbit_node(tmp_path: Path) -> Iterator[Callable[[], RabbitNode]]:
    """``rabbit_node()``: a started private RabbitMQ node; killed afterwards."""
    nodes: list[RabbitNode] = []

    def start() -> RabbitNode:
        problem = rabbit_available()
        if problem is not None:
            pytest.fail(problem)
        node = RabbitNode(tmp_path / f"rabbit{len(nodes)}")
        nodes.append(node)
        return node.start()

    yield start
    for node in nodes:
        node.kill()


@pytest.fixture
def agents() -> Iterator[Callable[..., Agent]]:
    """``agents(**settings)``: an `Agent` closed after the test."""
    made: list[Agent] = []

    def make(**settings: Any) -> Agent:
        settings.setdefault("agent_id", unique("rel"))
        agent = Agent(Settings(**settings))
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


class Subscriber:
    """A raw paho client (the "other application") holding a persistent QoS 1 subscription.

    It reconnects by itself (paho's own loop), so it outlives broker restarts; every message is
    counted by payload (and by the user property *tag*, if given).
    """

    def __init__(self, port: int, topic: str, *, tag: str | None = None,
                 client_id: str | None = None) -> None:
        self.topic = topic
        self.tag = tag
        self.bodies: Counter[bytes] = Counter()
        self.tags: Counter[str] = Counter()
        self.cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or unique("sub"), protocol=paho.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect("127.0.0.1", port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        assert self._subscribed.wait(10), "raw subscriber: no SUBACK"

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if not flags.session_present:
            client.subscribe(self.topic, qos=1)
        else:
            self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self.cond:
            self.bodies[bytes(msg.payload)] += 1
            if self.tag is not None:
                for key, value in getattr(msg.properties, "UserProperty", None) or ():
                    if key == self.tag:
                        self.tags[value] += 1
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def duplicates(self) -> int:
        with self.cond:
            return sum(count - 1 for count in self.bodies.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(port: int, topic: str, **kw: Any) -> Subscriber:
        sub = Subscriber(port, topic, **kw)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def signal_on(obj: Any, method: str) -> threading.Event:
    """An Event set each time ``obj.method`` has run (on whatever thread calls it): how tests
    see backend-internal changes (a reconnect) that agent code deliberately never sees."""
    event = threading.Event()
    original = getattr(obj, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        finally:
            event.set()

    setattr(obj, method, wrapper)
    return event


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """For state owned by other processes (a broker log, a file): poll *predicate*."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
