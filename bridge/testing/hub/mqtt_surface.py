"""The MQTT surface: private Mosquitto + TLS front + the hub's own paho client.

The hub side is a paho 2.x client on the private broker (a user name only the stand-in knows,
granted everything by the ACL). It

- subscribes ``devices/+/messages/events/#`` and stores each D2C message (payload, property bag
  decoded with `bridge.backends.iothub.topics`) in the registry;
- publishes C2D messages (QoS 1) to ``devices/{id}/messages/devicebound/{bag}`` once the
  device's connection can receive them (it subscribed to its devicebound topic, or it resumed a
  persistent session that had); the bag always carries ``$.mid``, ``$.to`` and, when given,
  ``$.cid``, ``$.ct``, ``$.ce`` and ``iothub-ack``;
- answers twin requests (GET: 200 with the stored twin; PATCH reported: 204 and a new
  ``$version``) and lets tests invoke direct methods, on the per-device ``$iothub/{id}/...``
  topics the front maps each device's ``$iothub/...`` traffic to.

Settlement over MQTT is the device's PUBACK (seen by the front): it completes the message (an
MQTT 5 PUBACK with a failure reason code rejects it). MQTT has no release: a message whose
connection ends unacknowledged is re-enqueued when the session was clean (Mosquitto forgot it)
and left to Mosquitto's redelivery when the session persists.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bridge.backends.iothub import topics
from bridge.backends.iothub.topics import SystemProperties
from bridge.testing.hub.broker import Broker
from bridge.testing.hub.mqtt_front import MQTTFront, MQTTSession
from bridge.testing.hub.registry import C2DMessage, C2DOutcome, Registry, Surface

log = logging.getLogger("bridge.testing.hub.mqtt")

D2C_FILTER = "devices/+/messages/events/#"
TWIN_GET_FILTER = "$iothub/+/twin/GET/#"
TWIN_PATCH_FILTER = "$iothub/+/twin/PATCH/properties/reported/#"
METHOD_RES_FILTER = "$iothub/+/methods/res/#"


class MQTTSurface:
    """Owns the broker process, the hub client and the C2D bookkeeping of the MQTT surface."""

    def __init__(self, registry: Registry, directory: Path) -> None:
        self.registry = registry
        self.hub_username = f"hub-service-{uuid.uuid4().hex}"
        self.broker = Broker(directory, self.hub_username, on_restart=self._broker_restarted)
        self.front: MQTTFront | None = None
        self._lock = threading.RLock()
        self._current: dict[str, MQTTSession] = {}
        self._receivable: set[str] = set()
        self._remembered: set[str] = set()  # persistent sessions known to hold a subscription
        self._in_flight: dict[str, set[str]] = {}  # device -> C2D ids handed to the broker
        self._twins: dict[str, dict[str, Any]] = {}
        self._methods: dict[str, dict[str, Any]] = {}  # rid -> {"event", "status", "payload"}
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._pending_subacks: set[int] = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"hub-{uuid.uuid4().hex[:12]}",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        self.client.username_pw_set(self.hub_username)
        # after a broker restart (see `Broker`), come back quickly
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # -- lifecycle ------------------------------------------------------------------------------
    def start_broker(self) -> None:
        self.broker.start()

    def start_client(self, timeout: float = 10.0) -> None:
        self.client.connect("127.0.0.1", self.broker.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise RuntimeError("the hub-side MQTT client could not connect to its broker and "
                               "subscribe")
        self.registry.add_c2d_listener(self.c2d_available)

    def stop(self) -> None:
        self.registry.remove_c2d_listener(self.c2d_available)
        if self._connected.is_set():
            self.client.disconnect()
        self.client.loop_stop()
        # paho keeps a loopback socket pair until the client is garbage-collected (its
        # callbacks make that a cycle): release it now so a stopped hub holds no descriptor.
        self.client._reset_sockets()
        self.broker.stop()

    # -- paho callbacks (paho's thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            return
        self._connected.set()
        self.registry.count("mqtt.hub_client_connects")
        # (re)subscribe on every connect: the session is clean, and the broker may have been
        # restarted by its watchdog
        result, mid = client.subscribe([(f, 1) for f in (D2C_FILTER, TWIN_GET_FILTER,
                                                         TWIN_PATCH_FILTER, METHOD_RES_FILTER)])
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            with self._lock:
                self._pending_subacks.add(mid)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        with self._lock:
            ours = mid in self._pending_subacks
            self._pending_subacks.discard(mid)
        if ours and all(not r.is_failure for r in reasons):
            self._subscribed.set()
            self.registry.count("mqtt.hub_client_subscribed")
        elif ours:
            log.error("hub mqtt: the broker refused the hub client's subscriptions")

    def _broker_restarted(self, pid: int | None) -> None:
        self.registry.count("mqtt.broker_restarts")
        with self._lock:  # every device connection went down with the old process
            self._receivable.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic.startswith("devices/"):
                self._store_d2c(msg.topic, bytes(msg.payload))
            elif msg.topic.startswith("$iothub/"):
                self._on_iothub(msg.topic, bytes(msg.payload))
        except Exception:
            log.exception("hub mqtt: could not handle a message on %r", msg.topic[:120])

    def _store_d2c(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/", 4)
        if len(parts) < 4 or parts[2:4] != ["messages", "events"]:
            return
        bag = topics.decode_property_bag(parts[4] if len(parts) == 5 else "")
        system = {name.replace("_", "-"): value
                  for name, value in _system_fields(bag.system).items()}
        self.registry.add_d2c(parts[1], payload, dict(bag.application), system, Surface.MQTT)

    # -- C2D --------------------------------------------------------------------------------
    def c2d_available(self, device_id: str) -> None:
        """Registry listener: publish whatever is enqueued if the device can receive now."""
        with self._lock:
            if device_id not in self._receivable:
                return
            while (message := self.registry.take_c2d(device_id, Surface.MQTT)) is not None:
                self._in_flight.setdefault(device_id, set()).add(message.message_id)
                self.client.publish(_c2d_topic(message), message.body_bytes(), qos=1)

    def _lose_in_flight(self, device_id: str) -> None:
        with self._lock:
            lost = self._in_flight.pop(device_id, set())
        for message_id in lost:
            self.registry.settle_c2d(message_id, C2DOutcome.LOCK_LOST, Surface.MQTT)

    # -- front events (front loop thread) ---------------------------------------------------
    def connected(self, session: MQTTSession) -> None:
        with self._lock:
            self._current[session.device_id] = session
            self._receivable.discard(session.device_id)

    def session_present(self, session: MQTTSession, present: bool) -> None:
        device = session.device_id
        with self._lock:
            if self._current.get(device) is not session:
                return
            if not present:
                self._remembered.discard(device)
            elif device in self._remembered:
                self._receivable.add(device)
        if not present:
            self._lose_in_flight(device)  # the broker has no session: what it held is gone
        self.c2d_available(device)

    def subscribed(self, session: MQTTSession) -> None:
        device = session.device_id
        with self._lock:
            if self._current.get(device) is not session:
                return
            self._receivable.add(device)
            if not session.clean_start:
                self._remembered.add(device)
        self.c2d_available(device)

    def unsubscribed(self, session: MQTTSession) -> None:
        with self._lock:
            if self._current.get(session.device_id) is session:
                self._receivable.discard(session.device_id)
                self._remembered.discard(session.device_id)

    def c2d_written(self, session: MQTTSession, topic: str, qos: int,
                    packet_id: int | None) -> None:
        try:
            message_id = topics.parse_c2d_topic(topic).bag.system.message_id
        except topics.TopicError:
            return
        if message_id is None:
            return
        if qos == 0 or packet_id is None:  # at most once: delivered is settled
            self._settled(session.device_id, message_id, C2DOutcome.ACCEPTED)
        else:
            session.c2d_in_flight[packet_id] = message_id

    def c2d_acked(self, session: MQTTSession, packet_id: int, reason: int) -> None:
        message_id = session.c2d_in_flight.pop(packet_id, None)
        if message_id is not None:
            outcome = C2DOutcome.ACCEPTED if reason < 0x80 else C2DOutcome.REJECTED
            self._settled(session.device_id, message_id, outcome)

    def disconnected(self, session: MQTTSession) -> None:
        device = session.device_id
        with self._lock:
            if self._current.get(device) is not session:
                return
            del self._current[device]
            self._receivable.discard(device)
            if session.clean_start:
                self._remembered.discard(device)
        if session.clean_start:
            self._lose_in_flight(device)
        self.registry.count("mqtt.disconnections")  # also wakes `Hub.wait_for` callers

    def _settled(self, device_id: str, message_id: str, outcome: C2DOutcome) -> None:
        with self._lock:
            self._in_flight.get(device_id, set()).discard(message_id)
        self.registry.settle_c2d(message_id, outcome, Surface.MQTT)

    def connected_devices(self) -> list[str]:
        with self._lock:
            return sorted(self._current)

    # -- $iothub: twin and direct methods ---------------------------------------------------
    def _on_iothub(self, topic: str, payload: bytes) -> None:
        _, device, rest = topic.split("/", 2)
        path, _, query = rest.partition("/?")
        params = dict((k, v or "") for k, v in topics.decode_pairs(query))
        rid = params.get("$rid", "")
        self.registry.count("mqtt.iothub_requests")
        if path == "twin/GET" or path.startswith("twin/GET/"):
            twin = self._twin(device)
            self._reply(device, f"twin/res/200/?$rid={rid}", json.dumps(twin).encode())
        elif path.startswith("twin/PATCH/properties/reported"):
            try:
                patch = json.loads(payload or b"{}")
                if not isinstance(patch, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._reply(device, f"twin/res/400/?$rid={rid}", b"")
                return
            with self._lock:
                reported = self._twin(device)["reported"]
                _merge(reported, patch)
                reported["$version"] += 1
                version = reported["$version"]
            self._reply(device, f"twin/res/204/?$rid={rid}&$version={version}", b"")
        elif path.startswith("methods/res/"):
            with self._lock:
                pending = self._methods.get(rid)
                if pending is not None:
                    pending["status"] = int(path.split("/")[2])
                    pending["payload"] = payload
                    pending["event"].set()

    def _twin(self, device_id: str) -> dict[str, Any]:
        with self._lock:
            return self._twins.setdefault(
                device_id, {"desired": {"$version": 1}, "reported": {"$version": 1}})

    def _reply(self, device_id: str, subtopic: str, payload: bytes) -> None:
        self.client.publish(f"$iothub/{device_id}/{subtopic}", payload, qos=1)

    def invoke_method(self, device_id: str, name: str, payload: Any = None,
                      timeout: float = 30.0) -> tuple[int, Any]:
        """Call a direct method on an MQTT device: (status, decoded JSON payload or bytes)."""
        rid = uuid.uuid4().hex
        pending: dict[str, Any] = {"event": threading.Event()}
        with self._lock:
            self._methods[rid] = pending
        try:
            body = b"" if payload is None else json.dumps(payload).encode()
            self._reply(device_id, f"methods/POST/{name}/?$rid={rid}", body)
            if not pending["event"].wait(timeout):
                raise TimeoutError(f"device {device_id!r} did not answer method {name!r}")
        finally:
            with self._lock:
                self._methods.pop(rid, None)
        raw: bytes = pending["payload"]
        try:
            return pending["status"], json.loads(raw) if raw else None
        except ValueError:
            return pending["status"], raw

    def update_desired(self, device_id: str, patch: dict[str, Any]) -> int:
        """Apply a desired-properties patch and notify the device; returns the new version."""
        with self._lock:
            desired = self._twin(device_id)["desired"]
            _merge(desired, patch)
            desired["$version"] += 1
            version = desired["$version"]
            body = json.dumps({**patch, "$version": version}).encode()
        self._reply(device_id, f"twin/PATCH/properties/desired/?$version={version}", body)
        return version

    def twin(self, device_id: str) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._twin(device_id)))


def _c2d_topic(message: C2DMessage) -> str:
    system = SystemProperties(message_id=message.message_id,
                              correlation_id=message.correlation_id,
                              content_type=message.content_type,
                              content_encoding=message.content_encoding,
                              to=f"/devices/{message.device_id}/messages/devicebound",
                              ack=message.ack)
    return topics.c2d_topic(message.device_id, system=system, application=message.properties)


def _system_fields(system: SystemProperties) -> dict[str, str]:
    return {name: value for name in SystemProperties.__dataclass_fields__
            if (value := getattr(system, name)) is not None}


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if key == "$version":
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
