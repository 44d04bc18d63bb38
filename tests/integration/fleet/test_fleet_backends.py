"""Fleets of plain `Agent` objects (``agent.start()``) on every networked backend, CI-sized.

The 10,000-agent figures come from benchmarks/fleet.py; here a few hundred agents per backend
show the same properties on real brokers: every connection opens and every send is confirmed,
the process's threads do not grow with the agents, and a broker restart under the fleet loses
nothing that was confirmed or queued.
"""

from __future__ import annotations

import base64
import os
import resource
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from bridge.loop.pacing import connect_pacer
from bridge.settings import Settings
from bridge.testing.fleet import HUB, AgentFleet, TLSMosquitto, bridge_threads
from bridge.testing.mosquitto import PrivateMosquitto

pytestmark = pytest.mark.integration

CORES = len(os.sched_getaffinity(0))
THREAD_LIMIT = 2 * CORES + 8  # the ceiling for a whole fleet process


@pytest.fixture(autouse=True)
def open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Confirmations:
    def __init__(self) -> None:
        self.bodies: set[str] = set()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def add(self, body: str) -> None:
        with self.changed:
            self.bodies.add(body)
            self.changed.notify_all()

    def wait_for(self, expected: set[str], timeout: float) -> set[str]:
        """The expected bodies not confirmed within *timeout*."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not expected <= self.bodies and time.monotonic() < deadline:
                self.changed.wait(max(0.0, deadline - time.monotonic()))
            return expected - self.bodies


def _run_fleet(fleet: AgentFleet, path_for: Callable[[int], str], count: int,
               timeout: float) -> None:
    try:
        fleet.wait_open(timeout)
        assert fleet.errors == []
        fleet.open_senders(path_for)
        confirmations = Confirmations()
        fleet.send_each(lambda n: f"m-{n}", confirmations.add)
        missing = confirmations.wait_for({f"m-{n}" for n in range(count)}, timeout)
        assert not missing, f"{len(missing)} of {count} sends not confirmed"
        assert bridge_threads() <= THREAD_LIMIT, bridge_threads()
    finally:
        fleet.close()


def test_three_hundred_amqp_agents_on_rabbitmq_share_a_few_reactors() -> None:
    count, tag = 300, uuid.uuid4().hex[:8]
    base = Settings(backend="amqp", amqp={"url": "amqp://guest:guest@127.0.0.1:5672"})
    fleet = AgentFleet(lambda n: base.model_copy(update={"agent_id": f"a{tag}{n}"}), count,
                       "amqp://fleet.example")
    _run_fleet(fleet, lambda n: f"/topic/fleet.{tag}.{n}", count, 60)


def test_two_hundred_iothub_agents_over_tls_with_sas(tmp_path: Path) -> None:
    count = 200
    with TLSMosquitto(tmp_path / "hub", extra=["max_connections -1"]) as broker:
        key = base64.b64encode(os.urandom(32)).decode()
        base = Settings(backend="iothub", iothub={"gateway_host": "localhost",
                                                  "port": broker.tls_port,
                                                  "ca_file": str(broker.tls.ca_file)})

        def settings(n: int) -> Settings:
            text = f"HostName={HUB};DeviceId=d{n};SharedAccessKey={key}"
            return base.model_copy(update={"agent_id": f"d{n}", "iothub": base.iothub.model_copy(
                update={"connection_string": SecretStr(text)})})

        fleet = AgentFleet(settings, count, f"amqps://{HUB}")
        _run_fleet(fleet, lambda n: f"/devices/d{n}/messages/events", count, 90)


class Watcher:
    """A raw paho subscriber with a persistent session: what reached the broker."""

    def __init__(self, port: int, topic: str) -> None:
        self.received: set[str] = set()
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"w-{uuid.uuid4().hex}",
                                  clean_session=False, protocol=paho.MQTTv311)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.received.add(msg.payload.decode())

    def missing(self, expected: set[str], timeout: float) -> set[str]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                left = expected - self.received
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.05)  # polling a set another thread fills; the deadline decides

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    with PrivateMosquitto(tmp_path / "restart", persistence=True,
                          extra=["max_connections -1"]) as broker:
        yield broker


def test_a_broker_restart_under_500_agents_loses_nothing(
        persistent_broker: PrivateMosquitto) -> None:
    count, tag = 500, uuid.uuid4().hex[:8]
    watcher = Watcher(persistent_broker.port, f"r{tag}/#")
    base = Settings(backend="mqtt", mqtt={"url": persistent_broker.url, "reconnect": "auto",
                                          "reconnect_max_delay": 2})
    connect_pacer().configure(500)  # reconnects paced too: no stampede on the broker
    fleet = AgentFleet(lambda n: base.model_copy(update={"agent_id": f"r{tag}{n}"}), count,
                       "amqps://fleet.example")
    try:
        fleet.wait_open(60)
        fleet.open_senders(lambda n: f"/r{tag}/{n}")
        confirmations = Confirmations()
        before = {f"before-{n}" for n in range(count)}
        fleet.send_each(lambda n: f"before-{n}", confirmations.add)
        assert not confirmations.wait_for(before, 60)
        persistent_broker.stop()
        during = {f"during-{n}" for n in range(count)}
        fleet.send_each(lambda n: f"during-{n}", confirmations.add)  # held while it is down
        persistent_broker.start()
        assert not confirmations.wait_for(before | during, 90)
        assert all(agent.status() == "connected" for agent in fleet.agents)
        assert watcher.missing(before | during, 30) == set()
    finally:
        connect_pacer().configure(None)
        watcher.stop()
        fleet.close()
