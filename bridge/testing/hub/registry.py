"""The stand-in's state: device identities, SAS checks, the D2C store, C2D queues and counters.

One `Registry` is shared by both surfaces and the hub-side API; every method is thread-safe (one
lock, one condition that wakes waiters on any change). Surfaces never block under the lock and
listeners are called outside it.

C2D queue semantics follow IoT Hub (spec azure-iothub-protocols §1.7):

- a message is *enqueued* until a surface takes it for a device that can receive (an AMQP
  devicebound link with credit, or an MQTT connection subscribed to its devicebound topic);
  it is then *delivered* (locked) until settled;
- ``accepted`` completes it; ``rejected`` dead-letters it at once; ``released`` (abandon) puts it
  back with ``delivery_count + 1`` and dead-letters it once ``delivery_count`` reaches the hub's
  max delivery count; ``modified`` counts as released, or as rejected when
  ``undeliverable-here`` is set;
- losing the lock (the link or connection goes away before settlement) re-enqueues it without
  counting a delivery;
- there is no lock time-out: a delivery stays locked until settled or its link goes away;
- a message older than its TTL is dead-lettered (reason ``expired``) instead of delivered;
- at most ``max_queue`` messages per device may be pending (enqueued or delivered).
"""

from __future__ import annotations

import base64
import itertools
import logging
import os
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from pydantic import SecretStr

from bridge.backends.iothub import sas
from bridge.backends.iothub.connection_string import validate_id
from bridge.testing.hub.model import (
    AuthAttempt,
    AuthError,
    C2DMessage,
    C2DOutcome,
    C2DState,
    D2CMessage,
    Device,
    Grant,
    QueueFullError,
    Settlement,
    Surface,
)

__all__ = [
    "AuthAttempt",
    "AuthError",
    "C2DMessage",
    "C2DOutcome",
    "C2DState",
    "D2CMessage",
    "Device",
    "Grant",
    "QueueFullError",
    "Registry",
    "Settlement",
    "Surface",
]

log = logging.getLogger("bridge.testing.hub")

T = TypeVar("T")

DEFAULT_MAX_DELIVERY_COUNT = 10
DEFAULT_MAX_QUEUE = 50
DEFAULT_C2D_TTL = 3600.0
#: D2C messages kept per device (the oldest are dropped beyond that) and auth attempts kept.
DEFAULT_D2C_RETENTION = 100_000
AUTH_RETENTION = 10_000
#: Shared access policies every stand-in has; both grant DeviceConnect (as on a real hub).
DEFAULT_POLICIES = ("iothubowner", "device")

C2DListener = Callable[[str], None]


class Registry:
    """Devices, policies, D2C store, C2D queues and counters of one stand-in hub."""

    def __init__(self, host_name: str = "localhost", *, gateway_host_name: str | None = None,
                 max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
                 max_queue: int = DEFAULT_MAX_QUEUE,
                 d2c_retention: int = DEFAULT_D2C_RETENTION) -> None:
        if not 1 <= max_delivery_count <= 100:
            raise ValueError("max_delivery_count must be 1-100 (IoT Hub's range)")
        self.host_name = host_name
        self.gateway_host_name = gateway_host_name
        self.max_delivery_count = max_delivery_count
        self.max_queue = max_queue
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._devices: dict[str, Device] = {}
        self._policies: dict[str, SecretStr] = {name: _new_key() for name in DEFAULT_POLICIES}
        # bounded, so a demo hub left running under load keeps a steady footprint
        self._d2c_retention = d2c_retention
        self._d2c: dict[str, deque[D2CMessage]] = {}
        self._c2d: dict[str, C2DMessage] = {}
        self._queues: dict[str, list[str]] = {}  # device -> message ids in enqueue order
        self._auth: deque[AuthAttempt] = deque(maxlen=AUTH_RETENTION)
        self._counters: Counter[str] = Counter()
        self._sequence = itertools.count(1)
        self._listeners: list[C2DListener] = []

    # -- identities ---------------------------------------------------------------------------
    def register_device(self, device_id: str, key: str | None = None) -> Device:
        """Add a device (random 32-byte key unless *key*, base64, is given) and return it.
        Registering an existing id again returns it unchanged if the key matches or is None."""
        if (why := validate_id("device id", device_id)) is not None:
            raise ValueError(why)
        if "/" in device_id or "+" in device_id or "#" in device_id:
            raise ValueError(f"device id {device_id!r}: '/', '+' and '#' cannot be used in "
                             "MQTT topics, the stand-in refuses them")
        secret = SecretStr(key) if key is not None else _new_key()
        sas.sign("probe", secret)  # raises SASTokenError for a key that is not base64
        with self._lock:
            existing = self._devices.get(device_id)
            if existing is not None:
                if key is not None and existing.primary_key.get_secret_value() != key:
                    raise ValueError(f"device {device_id!r} is registered with another key")
                return existing
            device = Device(device_id, secret, self.host_name, self.gateway_host_name)
            self._devices[device_id] = device
            self._queues[device_id] = []
            self._d2c[device_id] = deque(maxlen=self._d2c_retention)
            self._changed.notify_all()
        return device

    def device(self, device_id: str) -> Device | None:
        with self._lock:
            return self._devices.get(device_id)

    def devices(self) -> list[Device]:
        with self._lock:
            return list(self._devices.values())

    def policy_key(self, name: str) -> SecretStr | None:
        with self._lock:
            return self._policies.get(name)

    def device_of_audience(self, audience: str) -> str | None:
        """The device id in ``{host}/devices/{id}`` (URL-encoded or not, with or without a
        scheme) when the host is this hub's; None otherwise."""
        text = unquote(audience.strip())
        if "://" in text:
            text = text.split("://", 1)[1]
        parts = [p for p in text.split("/") if p]
        if len(parts) == 3 and parts[1] == "devices" and self.is_hub_host(parts[0]):
            return parts[2]
        return None

    def authenticate(self, token: str, audience: str, surface: Surface) -> Grant:
        """Verify a SAS *token* presented for *audience*; `AuthError` says why not.

        A device-key token must be for exactly that device's audience; a policy token (with
        ``skn``) must be signed with a policy key and its ``sr`` must cover *audience*.
        Every attempt is recorded (`auth_attempts`) and counted.
        """
        device_id = self.device_of_audience(audience)
        try:
            grant = self._verify(token, audience, device_id)
        except AuthError as exc:
            self.record_auth(surface, device_id, False, exc.kind, exc.reason)
            raise
        self.record_auth(surface, device_id, True, "ok", "token accepted")
        return grant

    def _verify(self, token: str, audience: str, device_id: str | None) -> Grant:
        try:
            parsed = sas.parse_token(token)
        except sas.SASTokenError as exc:
            raise AuthError("malformed", exc.reason) from None
        canonical = unquote(audience.strip())
        if parsed.key_name is not None:
            key = self.policy_key(parsed.key_name)
            if key is None:
                raise AuthError("unknown-policy",
                                f"no shared access policy named {parsed.key_name!r}")
            if device_id is not None and self.device(device_id) is None:
                raise AuthError("unknown-device", f"device {device_id!r} is not registered")
            key_name: str | None = parsed.key_name
            allow_prefix = True
        else:
            if device_id is None:
                raise AuthError("audience", f"{canonical!r} is not a device of this hub "
                                            f"({self.host_name}/devices/{{deviceId}})")
            device = self.device(device_id)
            if device is None:
                raise AuthError("unknown-device", f"device {device_id!r} is not registered")
            key, key_name, allow_prefix = device.primary_key, None, False
        try:
            sas.verify_token(parsed, key, audience=canonical, key_name=key_name,
                             allow_prefix=allow_prefix)
        except sas.SASVerificationError as exc:
            raise AuthError(str(exc.failure), exc.reason) from None
        # The grant is for what was asked (put-token's name), never wider than the token.
        return Grant(audience=canonical, expiry=parsed.expiry,
                     device_id=device_id if key_name is None else None, key_name=key_name)

    def is_hub_host(self, host: str) -> bool:
        names = {self.host_name.lower()}
        if self.gateway_host_name:
            names.add(self.gateway_host_name.lower())
        return host.lower() in names

    def record_auth(self, surface: Surface, device_id: str | None, ok: bool, kind: str,
                     reason: str) -> None:
        with self._lock:
            self._auth.append(AuthAttempt(surface, device_id, ok, kind, reason, time.time()))
            self._counters[f"auth.{'ok' if ok else 'failed'}.{surface}"] += 1
            self._changed.notify_all()
        if not ok:
            log.info("hub %s: refused credentials for %s: %s", surface, device_id or "?", reason)

    def auth_attempts(self) -> list[AuthAttempt]:
        with self._lock:
            return list(self._auth)

    # -- counters and waiting ------------------------------------------------------------------
    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount
            self._changed.notify_all()

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def wait_for(self, predicate: Callable[[], T], timeout: float) -> T:
        """Block until *predicate()* (evaluated under the lock) is truthy; return its value.
        ``TimeoutError`` after *timeout* seconds."""
        with self._changed:
            result = self._changed.wait_for(predicate, timeout)
        if not result:
            raise TimeoutError(f"hub stand-in: condition not met within {timeout}s")
        return result

    # -- D2C -----------------------------------------------------------------------------------
    def add_d2c(self, device_id: str, body: Any, properties: dict[str, Any],
                system: dict[str, Any], surface: Surface) -> D2CMessage:
        now = time.time()
        # What IoT Hub stamps on every D2C message (devices cannot set these).
        stamped = {**system, "iothub-connection-device-id": device_id,
                   "iothub-enqueuedtime": now}
        with self._lock:
            message = D2CMessage(device_id, body, dict(properties), stamped, surface, now,
                                 next(self._sequence))
            self._d2c.setdefault(device_id, deque(maxlen=self._d2c_retention)).append(message)
            self._counters[f"d2c.{surface}"] += 1
            self._changed.notify_all()
        return message

    def d2c(self, device_id: str) -> list[D2CMessage]:
        with self._lock:
            return list(self._d2c.get(device_id, ()))

    def d2c_count(self, device_id: str) -> int:
        with self._lock:
            return len(self._d2c.get(device_id, ()))

    def d2c_after(self, sequence: int, device_ids: list[str] | None = None) -> list[D2CMessage]:
        """D2C messages (of *device_ids*, default all) with a sequence number above
        *sequence*, oldest first; cheap when few are new."""
        found: list[D2CMessage] = []
        with self._lock:
            for device_id in device_ids if device_ids is not None else list(self._d2c):
                for message in reversed(self._d2c.get(device_id, ())):
                    if message.sequence <= sequence:
                        break
                    found.append(message)
        return sorted(found, key=lambda m: m.sequence)

    # -- C2D -----------------------------------------------------------------------------------
    def add_c2d_listener(self, listener: C2DListener) -> None:
        """*listener(device_id)* is called (from any thread, outside the lock) whenever a
        message may have become available for that device."""
        with self._lock:
            self._listeners.append(listener)

    def remove_c2d_listener(self, listener: C2DListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def enqueue_c2d(self, device_id: str, body: bytes | str,
                    properties: dict[str, Any] | None = None, *, message_id: str | None = None,
                    correlation_id: str | None = None, content_type: str | None = None,
                    content_encoding: str | None = None, ack: str | None = None,
                    ttl: float = DEFAULT_C2D_TTL) -> C2DMessage:
        props = {str(k): (None if v is None else _text(v)) for k, v in (properties or {}).items()}
        with self._lock:
            if device_id not in self._devices:
                raise KeyError(f"device {device_id!r} is not registered")
            pending = sum(1 for mid in self._queues[device_id]
                          if self._c2d[mid].state in (C2DState.ENQUEUED, C2DState.DELIVERED))
            if pending >= self.max_queue:
                raise QueueFullError(f"device {device_id!r} already has {pending} pending "
                                     f"cloud-to-device messages (max {self.max_queue})")
            mid = message_id or str(uuid.uuid4())
            if mid in self._c2d:
                raise ValueError(f"message id {mid!r} was already used")
            now = time.time()
            message = C2DMessage(mid, device_id, body, props, correlation_id, content_type,
                                 content_encoding, ack, expires_at=now + ttl, enqueued_at=now,
                                 sequence_number=next(self._sequence))
            self._c2d[mid] = message
            self._queues[device_id].append(mid)
            self._counters["c2d.sent"] += 1
            self._changed.notify_all()
            snapshot = message.snapshot()
        self._notify(device_id)
        return snapshot

    def take_c2d(self, device_id: str, surface: Surface) -> C2DMessage | None:
        """The next enqueued message for *device_id*, now locked for *surface* (a snapshot
        carrying the delivery count before this delivery); None if there is none."""
        expired = False
        with self._lock:
            now = time.time()
            result = None
            for mid in self._queues.get(device_id, ()):
                message = self._c2d[mid]
                if message.state is not C2DState.ENQUEUED:
                    continue
                if now >= message.expires_at:
                    self._dead_letter(message, "expired")
                    expired = True
                    continue
                message.state = C2DState.DELIVERED
                message.surface = surface
                self._counters[f"c2d.delivered.{surface}"] += 1
                result = message.snapshot()
                break
            if expired or result is not None:
                self._changed.notify_all()
        return result

    def settle_c2d(self, message_id: str, outcome: C2DOutcome, surface: Surface, *,
                   undeliverable: bool = False) -> C2DState | None:
        """Apply a device's settlement; returns the new state (None: unknown or not locked,
        e.g. a late settlement after the lock was lost)."""
        with self._lock:
            message = self._c2d.get(message_id)
            if message is None or message.state is not C2DState.DELIVERED:
                return None
            requeue = False
            if outcome is C2DOutcome.ACCEPTED:
                message.state = C2DState.COMPLETED
                self._counters["c2d.completed"] += 1
            elif outcome is C2DOutcome.REJECTED or (
                    outcome is C2DOutcome.MODIFIED and undeliverable):
                self._counters["c2d.rejected"] += 1
                self._dead_letter(message, "rejected")
            elif outcome in (C2DOutcome.RELEASED, C2DOutcome.MODIFIED):
                message.delivery_count += 1
                self._counters["c2d.abandoned"] += 1
                if message.delivery_count >= self.max_delivery_count:
                    self._dead_letter(message, "delivery-count-exceeded")
                else:
                    message.state = C2DState.ENQUEUED
                    requeue = True
            elif outcome is C2DOutcome.LOCK_LOST:
                message.state = C2DState.ENQUEUED
                self._counters["c2d.lock_lost"] += 1
                requeue = True
            message.settlements.append(
                Settlement(outcome, surface, time.time(), message.delivery_count))
            state = message.state
            device_id = message.device_id
            self._changed.notify_all()
        if requeue:
            self._notify(device_id)
        return state

    def c2d(self, device_id: str | None = None) -> list[C2DMessage]:
        """Snapshots of every C2D message (of one device), in enqueue order."""
        with self._lock:
            return [m.snapshot() for m in sorted(self._c2d.values(),
                                                 key=lambda m: m.sequence_number)
                    if device_id is None or m.device_id == device_id]

    def c2d_message(self, message_id: str) -> C2DMessage | None:
        with self._lock:
            message = self._c2d.get(message_id)
            return message.snapshot() if message is not None else None

    def _dead_letter(self, message: C2DMessage, reason: str) -> None:
        message.state = C2DState.DEAD_LETTERED
        message.dead_letter_reason = reason
        self._counters["c2d.dead_lettered"] += 1

    def _notify(self, device_id: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(device_id)
            except Exception:  # one broken surface must not starve the other
                log.exception("hub stand-in: C2D listener failed")


def _new_key() -> SecretStr:
    return SecretStr(base64.b64encode(os.urandom(32)).decode("ascii"))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
