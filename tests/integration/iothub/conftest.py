"""Fixtures for the IoT Hub wire-format tests: a private broker, a TLS capture proxy, raw paho.

The official SDK only speaks TLS and checks the host name, so it dials `TlsCaptureProxy`
(certificate for ``localhost`` from a throw-away CA), which records the CONNECT and every
SUBSCRIBE/PUBLISH and relays to a private plain-TCP Mosquitto; a raw paho 2.x client on that
broker plays the hub (reads D2C, publishes C2D).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.integration.iothub.connect_capture import TlsCaptureProxy
from tests.support.mosquitto import Mosquitto, make_tls_material


@dataclass(frozen=True)
class TLSFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="module")
def hub_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("iothub-broker")) as broker:
        yield broker


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca, cert, key = make_tls_material(tmp_path_factory.mktemp("iothub-tls"), "localhost")
    return TLSFiles(ca, cert, key)


@pytest.fixture
def capture_proxy(hub_broker: Mosquitto, tls_files: TLSFiles) -> Iterator[TlsCaptureProxy]:
    with TlsCaptureProxy(tls_files.cert_file, tls_files.key_file, hub_broker.port) as proxy:
        yield proxy


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int


class RawClient:
    """A plain paho 2.x client standing in for the hub: subscribe, collect, publish QoS 1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox: Queue[Received] = Queue()
        self._connected = threading.Event()
        self._subacks: dict[int, threading.Event] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"hub-standin-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(Received(msg.topic, msg.payload, msg.qos))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        event = self._subacks.setdefault(mid, threading.Event())
        event.set()

    def __enter__(self) -> RawClient:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise AssertionError("raw paho client could not connect to the private broker")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def subscribe(self, topic_filter: str, timeout: float = 10.0) -> None:
        result, mid = self.client.subscribe(topic_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        event = self._subacks.setdefault(mid, threading.Event())
        if not event.wait(timeout):
            raise AssertionError(f"no SUBACK for {topic_filter!r}")

    def publish(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout)
        assert info.is_published(), f"no PUBACK for {topic!r}"

    def next_message(self, timeout: float = 20.0) -> Received:
        try:
            return self.inbox.get(timeout=timeout)
        except Empty:
            raise AssertionError(f"nothing arrived on the raw client within {timeout}s") from None


@pytest.fixture
def raw_hub(hub_broker: Mosquitto) -> Iterator[RawClient]:
    with RawClient(hub_broker.port) as client:
        yield client


# -- the iothub backend's tests (test_backend*.py) -------------------------------------------------
# The stand-in's fixtures come from its pytest plugin (imported: pytest_plugins is only allowed
# in the top-level conftest).
from bridge.testing.plugin import iothub_standin  # noqa: E402
from tests.integration.iothub.targets import StandinTarget, Target, TlsHub  # noqa: E402

__all__ = ["iothub_standin"]


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsHub]:
    """A private TLS Mosquitto with a paho client playing the hub."""
    hub = TlsHub(tmp_path_factory.mktemp("iothub-tls-hub")).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def standin(iothub_standin: Any) -> StandinTarget:
    return StandinTarget(iothub_standin)


@pytest.fixture(params=["mosquitto", "standin"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each test runs against the private TLS broker and against the stand-in."""
    if request.param == "mosquitto":
        return request.getfixturevalue("tls_hub")
    return StandinTarget(request.getfixturevalue("iothub_standin"))
