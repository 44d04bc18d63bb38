"""Where the ``iothub`` backend's tests connect, behind one small interface.

- `TlsHub`: a private Mosquitto with a TLS listener (throw-away CA, ``localhost`` certificate)
  for devices and a plain one for the hub side, where a paho 2.x client plays IoT Hub: it
  records D2C publishes, sends C2D with property bags, and can echo module outputs back as
  module inputs (what an IoT Edge route does). No SAS check: any well-formed token connects.
- `StandinTarget`: the IoT Hub stand-in (`bridge.testing.hub.Hub`): SAS verified in CONNECT,
  the connection cut when the token expires, a C2D queue with IoT Hub's states.

Tests take a `Target` and ask it for a device, the bridge settings that reach it, what arrived
(`wait_d2c`) and to send C2D (`send_c2d`).
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from bridge.backends.iothub import sas, topics
from bridge.backends.iothub.connection_string import ConnectionString, format_connection_string
from bridge.backends.iothub.topics import SystemProperties
from bridge.testing.hub import Hub
from tests.conftest import register_secret
from tests.support.mosquitto import Mosquitto

TIMEOUT = 10.0


@dataclass(frozen=True)
class TestDevice:
    __test__ = False  # not a test class, despite the name

    device_id: str
    key: str = field(repr=False)
    host_name: str
    module_id: str | None = None

    @property
    def audience(self) -> str:
        return sas.resource_uri(self.host_name, self.device_id, self.module_id)

    @property
    def path_base(self) -> str:
        base = f"/devices/{self.device_id}"
        return base + (f"/modules/{self.module_id}" if self.module_id else "")

    @property
    def events_path(self) -> str:
        return f"{self.path_base}/messages/events"

    @property
    def c2d_path(self) -> str:
        return f"{self.path_base}/messages/devicebound"

    @property
    def connection_string(self) -> str:
        from pydantic import SecretStr

        return format_connection_string(ConnectionString(
            host_name=self.host_name, device_id=self.device_id, module_id=self.module_id,
            shared_access_key=SecretStr(self.key)))

    def token(self, ttl: float = 3600.0) -> str:
        """A SAS token signed with the device key (negative *ttl*: already expired)."""
        expiry = max(int(time.time() + ttl), 0)
        return register_secret(sas.generate_token(self.audience, self.key, expiry))


@dataclass(frozen=True)
class D2C:
    """A device-to-cloud message as the hub side saw it."""

    device_id: str
    body: bytes
    properties: dict[str, Any]
    topic: str = ""


class Target(Protocol):
    kind: str
    host_name: str

    def iothub_settings(self, **extra: Any) -> dict[str, Any]: ...
    def url(self) -> str: ...
    def device(self, module: bool = False) -> TestDevice: ...
    def wait_d2c(self, device: TestDevice, count: int = 1,
                 timeout: float = TIMEOUT) -> list[D2C]: ...
    def send_c2d(self, device: TestDevice, body: bytes,
                 properties: dict[str, str | None] | None = None) -> str: ...


def _random_key() -> str:
    return register_secret(base64.b64encode(os.urandom(32)).decode("ascii"))


class TlsHub:
    """Private TLS Mosquitto + a paho client playing the hub (see the module docstring)."""

    kind = "mosquitto"
    host_name = "myhub.azure-devices.net"  # realistic; TLS goes to localhost (gateway_host)

    def __init__(self, directory: Path) -> None:
        # subscribe/unsubscribe lines: what the broker holds, for `subscriptions_of`
        self.broker = Mosquitto(directory, tls=True,
                                extra=["log_type subscribe", "log_type unsubscribe"])
        self.echo = False  # module outputs -> module input "echo"
        self._lock = threading.Condition()
        self._d2c: dict[str, list[D2C]] = {}
        self._acks: set[int] = set()
        self._echo_mids: set[int] = set()
        self.echoed = 0  # echo publishes the broker has acknowledged
        self._client: mqtt.Client | None = None

    def start(self) -> TlsHub:
        self.broker.start()
        connected = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"hub-side-{uuid.uuid4().hex[:8]}",
                             protocol=mqtt.MQTTv311)
        client.on_connect = lambda *args: connected.set()
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        subscribed = threading.Event()
        client.on_subscribe = lambda *args: subscribed.set()
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        if not connected.wait(TIMEOUT):
            raise RuntimeError("hub-side client could not connect to the private broker")
        client.subscribe("devices/#", qos=1)
        if not subscribed.wait(TIMEOUT):
            raise RuntimeError("hub-side client got no SUBACK")
        self._client = client
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self.broker.stop()

    # -- Target ---------------------------------------------------------------------------------
    def iothub_settings(self, **extra: Any) -> dict[str, Any]:
        assert self.broker.tls_port is not None and self.broker.ca_file is not None
        return {"gateway_host": "localhost", "port": self.broker.tls_port,
                "ca_file": str(self.broker.ca_file), **extra}

    def url(self) -> str:
        return f"amqps://{self.host_name}"

    def device(self, module: bool = False) -> TestDevice:
        suffix = uuid.uuid4().hex[:10]
        return TestDevice(f"dev-{suffix}", _random_key(), self.host_name,
                          f"mod-{suffix}" if module else None)

    def wait_d2c(self, device: TestDevice, count: int = 1,
                 timeout: float = TIMEOUT) -> list[D2C]:
        key = device.path_base
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._d2c.get(key, [])) >= count, timeout):
                raise AssertionError(f"the hub saw {len(self._d2c.get(key, []))} D2C "
                                     f"message(s) from {key}, expected {count}")
            return list(self._d2c[key])

    def d2c(self, device: TestDevice) -> list[D2C]:
        with self._lock:
            return list(self._d2c.get(device.path_base, []))

    def send_c2d(self, device: TestDevice, body: bytes,
                 properties: dict[str, str | None] | None = None) -> str:
        """Publish a C2D message as IoT Hub does (``%24.`` system keys, QoS 1)."""
        message_id = str(uuid.uuid4())
        system = SystemProperties(message_id=message_id, to=device.c2d_path)
        self.publish(topics.c2d_topic(device.device_id, system=system,
                                      application=properties), body)
        return message_id

    def send_input(self, device: TestDevice, input_name: str, body: bytes,
                   properties: dict[str, str | None] | None = None) -> None:
        """A module input message (``devices/{d}/modules/{m}/inputs/{input}/{bag}``)."""
        assert device.module_id is not None
        bag = topics.encode_property_bag(None, properties)
        self.publish(f"devices/{device.device_id}/modules/{device.module_id}/inputs/"
                     f"{input_name}/{bag}", body)

    def publish(self, topic: str, payload: bytes) -> None:
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=1)
        with self._lock:
            if not self._lock.wait_for(lambda: info.mid in self._acks, TIMEOUT):
                raise AssertionError(f"no PUBACK for the hub's publish to {topic!r}")
            self._acks.discard(info.mid)

    def kick(self, client_id: str) -> None:
        """Connect a client with *client_id*: the broker drops the one that had it."""
        done = threading.Event()
        raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                          protocol=mqtt.MQTTv311)
        raw.on_connect = lambda *args: done.set()
        raw.connect("127.0.0.1", self.broker.port)
        raw.loop_start()
        try:
            if not done.wait(TIMEOUT):
                raise AssertionError(f"could not take over client id {client_id!r}")
        finally:
            raw.disconnect()
            raw.loop_stop()

    # -- paho callbacks (its network thread) ------------------------------------------------------
    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        with self._lock:
            self._acks.add(mid)
            if mid in self._echo_mids:
                self._echo_mids.discard(mid)
                self.echoed += 1
            self._lock.notify_all()

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        head, sep, bag = msg.topic.partition("/messages/events/")
        if not sep:
            return  # our own C2D / module-input publishes
        parts = head.split("/")  # devices/{d}[/modules/{m}]
        decoded = topics.decode_property_bag(bag)
        record = D2C(parts[1], bytes(msg.payload), dict(decoded.application), msg.topic)
        with self._lock:
            self._d2c.setdefault("/" + head, []).append(record)
            self._lock.notify_all()
        if self.echo and len(parts) == 4 and parts[2] == "modules":
            # an IoT Edge route: FROM .../modules/m/outputs/* INTO .../modules/m/inputs/echo
            info = client.publish(f"{head}/inputs/echo/{bag}", msg.payload, qos=1)
            with self._lock:
                self._echo_mids.add(info.mid)

    def subscriptions_of(self, client_id: str) -> set[str]:
        """The topic filters the broker holds for *client_id* while it is connected, read from
        the broker's own log (subscribe, unsubscribe, connect and disconnect lines)."""
        filters: set[str] = set()
        connected = False
        for line in list(self.broker.log):
            _, _, text = line.partition(": ")
            if text.startswith("New client connected") and text.split(" as ")[-1].startswith(
                    f"{client_id} ("):
                connected = True
                if " c1," in text:  # a clean session starts without subscriptions
                    filters.clear()
            elif text in (f"Client {client_id} disconnected.",
                          f"Client {client_id} closed its connection.") or (
                    text.startswith(f"Client {client_id} ") and "timeout" in text):
                connected = False
            elif text.startswith(f"{client_id} "):
                fields = text[len(client_id) + 1:].split(" ")
                if len(fields) == 2 and fields[0].isdigit():
                    filters.add(fields[1])  # "<client> <qos> <filter>": SUBSCRIBE
                elif len(fields) == 1:
                    filters.discard(fields[0])  # "<client> <filter>": UNSUBSCRIBE
        return filters if connected else set()

    def wait_echoed(self, count: int, timeout: float = TIMEOUT) -> None:
        """Until *count* echo publishes in all have been acknowledged by the broker."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.echoed >= count, timeout):
                raise AssertionError(f"only {self.echoed} of {count} echoes acknowledged")


class StandinTarget:
    """The IoT Hub stand-in behind the `Target` interface."""

    kind = "standin"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.host_name = hub.host_name

    def iothub_settings(self, **extra: Any) -> dict[str, Any]:
        return {"gateway_host": "localhost", "port": self.hub.mqtt_port,
                "ca_file": str(self.hub.ca_file), **extra}

    def url(self) -> str:
        return f"amqps://{self.host_name}"

    def device(self, module: bool = False) -> TestDevice:
        if module:
            raise NotImplementedError("the stand-in's MQTT surface has no module identities")
        registered = self.hub.register_device(f"dev-{uuid.uuid4().hex[:10]}")
        return TestDevice(registered.device_id, register_secret(registered.key),
                          registered.host_name)

    def wait_d2c(self, device: TestDevice, count: int = 1,
                 timeout: float = TIMEOUT) -> list[D2C]:
        messages = self.hub.wait_d2c(device.device_id, count, timeout)
        return [D2C(m.device_id, bytes(m.body) if isinstance(m.body, bytes) else
                    str(m.body).encode(), dict(m.properties)) for m in messages]

    def send_c2d(self, device: TestDevice, body: bytes,
                 properties: dict[str, str | None] | None = None) -> str:
        return self.hub.send_c2d(device.device_id, body, properties).message_id
