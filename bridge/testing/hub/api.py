"""`Hub`: start/stop both surfaces and the hub-side API for tests and the demo.

::

    with Hub() as hub:                                  # both surfaces on free ports
        device = hub.register_device("dev1")            # -> HubDevice
        device.connection_string                        # HostName=localhost;DeviceId=dev1;...
        hub.amqp_url, hub.mqtt_port, hub.ca_file        # where and what to trust
        hub.wait_d2c("dev1", count=1)                   # D2C from either surface
        message = hub.send_c2d("dev1", b"cmd", {"k": "v"})
        hub.wait_c2d(message.message_id).state          # completed / dead-lettered

Everything binds to 127.0.0.1. `stop` ends every thread and process the hub started
(proton container, front loop, paho loop, mosquitto) and removes its temporary directory.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from bridge.testing.hub.amqp_front import AMQPFront, Identities
from bridge.testing.hub.amqp_surface import AMQPSurface
from bridge.testing.hub.broker import free_port
from bridge.testing.hub.loop import FrontLoop
from bridge.testing.hub.mqtt_front import MQTTFront
from bridge.testing.hub.mqtt_surface import MQTTSurface
from bridge.testing.hub.registry import (
    DEFAULT_MAX_DELIVERY_COUNT,
    DEFAULT_MAX_QUEUE,
    AuthAttempt,
    C2DMessage,
    C2DState,
    D2CMessage,
    Device,
    Registry,
)
from bridge.testing.hub.tls import TLSFiles, make_tls_material

log = logging.getLogger("bridge.testing.hub")

T = TypeVar("T")
SETTLED = (C2DState.COMPLETED, C2DState.DEAD_LETTERED)
_LOCAL_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class HubDevice:
    """A registered device plus everything a client needs to reach the stand-in."""

    device: Device
    hub: Hub = field(repr=False, compare=False)

    @property
    def device_id(self) -> str:
        return self.device.device_id

    @property
    def connection_string(self) -> str:
        return self.device.connection_string

    @property
    def key(self) -> str:
        return self.device.primary_key.get_secret_value()

    @property
    def host_name(self) -> str:
        return self.device.host_name

    @property
    def amqp_url(self) -> str:
        return self.hub.amqp_url

    @property
    def mqtt_host(self) -> str:
        return "localhost"

    @property
    def mqtt_port(self) -> int:
        return self.hub.mqtt_port

    @property
    def ca_file(self) -> Path:
        return self.hub.ca_file

    def token(self, ttl: float = 3600.0) -> str:
        """A SAS token for this device (negative *ttl*: already expired)."""
        return self.device.token(ttl)

    def d2c(self) -> list[D2CMessage]:
        return self.hub.d2c(self.device_id)

    def wait_d2c(self, count: int = 1, timeout: float = 10.0) -> list[D2CMessage]:
        return self.hub.wait_d2c(self.device_id, count, timeout)

    def send_c2d(self, body: bytes | str, properties: dict[str, Any] | None = None,
                 **options: Any) -> C2DMessage:
        return self.hub.send_c2d(self.device_id, body, properties, **options)

    def c2d(self) -> list[C2DMessage]:
        return self.hub.c2d(self.device_id)


class Hub:
    """A local Azure IoT Hub stand-in with an AMQP and an MQTT device surface."""

    def __init__(self, host_name: str = "localhost", *, amqp_port: int = 0, mqtt_port: int = 0,
                 amqp_tls: bool = True, max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
                 max_queue: int = DEFAULT_MAX_QUEUE, directory: Path | None = None) -> None:
        gateway = None if host_name.lower() in _LOCAL_NAMES else "localhost"
        self.registry = Registry(host_name, gateway_host_name=gateway,
                                 max_delivery_count=max_delivery_count, max_queue=max_queue)
        self._requested = (amqp_port, mqtt_port)
        self.amqp_tls = amqp_tls
        self._directory = directory
        self._own_directory = directory is None
        self.directory: Path | None = None
        self.tls: TLSFiles | None = None
        self._loop: FrontLoop | None = None
        self._amqp: AMQPSurface | None = None
        self._amqp_front: AMQPFront | None = None
        self._mqtt: MQTTSurface | None = None
        self._mqtt_front: MQTTFront | None = None
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Hub:
        if self._started:
            raise RuntimeError("the hub stand-in is already started")
        self._started = True
        # A script that dies with an exception never calls stop(): without this, its
        # mosquitto would outlive it (it is a separate process).
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        log.info("hub stand-in %s: AMQP %s, MQTT mqtts://localhost:%d", self.host_name,
                 self.amqp_url, self.mqtt_port)
        return self

    def _start(self) -> None:
        self.directory = self._directory or Path(tempfile.mkdtemp(prefix="iothub-standin-"))
        self.tls = make_tls_material(self.directory / "tls", [self.host_name])
        context = self.tls.server_context()
        self._mqtt = MQTTSurface(self.registry, self.directory / "mosquitto")
        self._mqtt.start_broker()
        self._mqtt.start_client()
        identities = Identities()
        self._amqp = AMQPSurface(self.registry, identities)
        self._amqp.start(free_port())
        self._loop = FrontLoop()
        self._loop.start()
        self._amqp_front = AMQPFront(self.registry, context if self.amqp_tls else None,
                                     self._amqp.port, identities)
        self._mqtt_front = MQTTFront(self.registry, context, self._mqtt.broker.port, self._mqtt)
        self._amqp_front.writers = self._mqtt_front.writers = self._loop.writers
        for front, port in ((self._amqp_front, self._requested[0]),
                            (self._mqtt_front, self._requested[1])):
            try:
                server = self._loop.call(front.start(port))
            except OSError as exc:
                raise OSError(f"hub stand-in: cannot listen on 127.0.0.1:{port}: {exc}") from exc
            self._loop.add_server(server)

    def stop(self) -> None:
        """Stop everything that was started (idempotent)."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        if self._amqp is not None:
            self._amqp.stop()
            self._amqp = None
        if self._mqtt is not None:
            self._mqtt.stop()
            self._mqtt = None
        if self._own_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        if self._started:
            atexit.unregister(self.stop)
        self._started = False

    def __enter__(self) -> Hub:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------
    @property
    def host_name(self) -> str:
        """``HostName`` of the connection strings and SAS audiences."""
        return self.registry.host_name

    @property
    def amqp_port(self) -> int:
        return self._require(self._amqp_front).port

    @property
    def mqtt_port(self) -> int:
        return self._require(self._mqtt_front).port

    @property
    def amqp_url(self) -> str:
        return f"{'amqps' if self.amqp_tls else 'amqp'}://localhost:{self.amqp_port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtts://localhost:{self.mqtt_port}"

    @property
    def ca_file(self) -> Path:
        """PEM of the CA that signed both surfaces' certificate (``localhost``, ``127.0.0.1``
        and the host name)."""
        return self._require(self.tls).ca_file

    @property
    def broker_pid(self) -> int | None:
        return self._mqtt.broker.pid if self._mqtt is not None else None

    # -- devices -------------------------------------------------------------------------------
    def register_device(self, device_id: str | None = None, key: str | None = None) -> HubDevice:
        """Register (or look up) a device; a random id ``device-<hex>`` when none is given."""
        device = self.registry.register_device(device_id or f"device-{uuid.uuid4().hex[:10]}",
                                               key)
        return HubDevice(device, self)

    def device(self, device_id: str) -> HubDevice:
        device = self.registry.device(device_id)
        if device is None:
            raise KeyError(f"device {device_id!r} is not registered")
        return HubDevice(device, self)

    def policy_key(self, name: str = "iothubowner") -> str:
        """The key of a shared access policy (``iothubowner`` or ``device``)."""
        key = self.registry.policy_key(name)
        if key is None:
            raise KeyError(f"no shared access policy {name!r}")
        return key.get_secret_value()

    # -- D2C -----------------------------------------------------------------------------------
    def d2c(self, device_id: str) -> list[D2CMessage]:
        """Every D2C message the device sent so far, from either surface, in arrival order."""
        return self.registry.d2c(device_id)

    def wait_d2c(self, device_id: str, count: int = 1, timeout: float = 10.0) -> list[D2CMessage]:
        """Block until the device has sent at least *count* messages; return them all."""
        self.registry.wait_for(lambda: self.registry.d2c_count(device_id) >= count, timeout)
        return self.registry.d2c(device_id)

    # -- C2D -----------------------------------------------------------------------------------
    def send_c2d(self, device_id: str, body: bytes | str,
                 properties: dict[str, Any] | None = None, *, message_id: str | None = None,
                 correlation_id: str | None = None, content_type: str | None = None,
                 content_encoding: str | None = None, ack: str | None = None,
                 ttl: float = 3600.0) -> C2DMessage:
        """Enqueue a C2D message; it goes out on whichever surface the device receives on
        (an AMQP devicebound link, or an MQTT subscription). Returns a snapshot."""
        return self.registry.enqueue_c2d(
            device_id, body, properties, message_id=message_id, correlation_id=correlation_id,
            content_type=content_type, content_encoding=content_encoding, ack=ack, ttl=ttl)

    def c2d(self, device_id: str | None = None) -> list[C2DMessage]:
        return self.registry.c2d(device_id)

    def wait_c2d(self, message_id: str, states: Iterable[C2DState] = SETTLED,
                 timeout: float = 10.0) -> C2DMessage:
        """Block until the message reaches one of *states* (default: completed or
        dead-lettered); return its snapshot."""
        wanted = frozenset(states)

        def reached() -> C2DMessage | None:
            message = self.registry.c2d_message(message_id)
            return message if message is not None and message.state in wanted else None

        found = self.registry.wait_for(reached, timeout)
        assert found is not None  # wait_for returns a truthy value or raises
        return found

    # -- observation ---------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Named counts: ``d2c.amqp``, ``d2c.mqtt``, ``c2d.sent``, ``c2d.delivered.<surface>``,
        ``c2d.completed``, ``c2d.rejected``, ``c2d.abandoned``, ``c2d.dead_lettered``,
        ``c2d.lock_lost``, ``auth.ok.<surface>``, ``auth.failed.<surface>``,
        ``amqp.put_token.<status>``, ``amqp.links_unauthorized``, ``amqp.links_expired``,
        ``mqtt.connack.<code>``, ``mqtt.expired``, ``mqtt.scope_violations``, ..."""
        return self.registry.counters()

    def auth_attempts(self) -> list[AuthAttempt]:
        return self.registry.auth_attempts()

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Wait until *predicate()* over hub state is truthy (re-checked on every change)."""
        return self.registry.wait_for(predicate, timeout)

    def mqtt_connected(self) -> list[str]:
        """Device ids with an MQTT connection through the front right now."""
        return self._require(self._mqtt).connected_devices()

    # -- MQTT extras: twin and direct methods ----------------------------------------------------
    def invoke_method(self, device_id: str, name: str, payload: Any = None,
                      timeout: float = 30.0) -> tuple[int, Any]:
        return self._require(self._mqtt).invoke_method(device_id, name, payload, timeout)

    def update_desired(self, device_id: str, patch: dict[str, Any]) -> int:
        return self._require(self._mqtt).update_desired(device_id, patch)

    def twin(self, device_id: str) -> dict[str, Any]:
        return self._require(self._mqtt).twin(device_id)

    @staticmethod
    def _require(value: T | None) -> T:
        if value is None:
            raise RuntimeError("the hub stand-in is not running (call start())")
        return value
