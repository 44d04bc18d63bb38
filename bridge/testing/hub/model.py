"""The stand-in's value types: identities, grants, D2C/C2D messages, outcomes, errors."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from bridge.backends.iothub import sas
from bridge.backends.iothub.connection_string import ConnectionString, format_connection_string


class Surface(StrEnum):
    AMQP = "amqp"
    MQTT = "mqtt"


class C2DState(StrEnum):
    ENQUEUED = "enqueued"
    DELIVERED = "delivered"  # handed to a device, not settled yet (locked)
    COMPLETED = "completed"
    DEAD_LETTERED = "dead-lettered"


class C2DOutcome(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RELEASED = "released"
    MODIFIED = "modified"
    LOCK_LOST = "lock-lost"  # link/connection gone before settlement: re-enqueued


class AuthError(Exception):
    """A SAS credential was refused. ``kind`` classifies it; ``reason`` is safe to show (no
    token or key text)."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(reason)


class QueueFullError(RuntimeError):
    """The device already has ``max_queue`` pending C2D messages (IoT Hub: 50)."""


@dataclass(frozen=True, slots=True)
class Device:
    """A registered identity. ``repr`` hides the key; `connection_string` reveals it."""

    device_id: str
    primary_key: SecretStr = field(repr=False)
    host_name: str
    gateway_host_name: str | None = None

    @property
    def connection_string(self) -> str:
        """``HostName=...;DeviceId=...;SharedAccessKey=...`` (plus ``GatewayHostName`` when
        the hub's host name is not one the TLS connection can dial)."""
        return format_connection_string(ConnectionString(
            host_name=self.host_name, device_id=self.device_id,
            gateway_host_name=self.gateway_host_name, shared_access_key=self.primary_key))

    @property
    def audience(self) -> str:
        return sas.resource_uri(self.host_name, self.device_id)

    def token(self, ttl: float = sas.DEFAULT_TTL, *, now: float | None = None) -> str:
        """A SAS token for this device valid for *ttl* seconds (negative: already expired)."""
        expiry = int((time.time() if now is None else now) + ttl)
        return sas.generate_token(self.audience, self.primary_key, max(expiry, 0))


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows: every device under ``audience`` until ``expiry``."""

    audience: str
    expiry: int
    device_id: str | None  # the device a device-key token was signed for; None: a policy
    key_name: str | None = None

    def covers_device(self, host_name: str, device_id: str) -> bool:
        return sas.audience_covers(self.audience, sas.resource_uri(host_name, device_id))

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expiry


@dataclass(frozen=True, slots=True)
class D2CMessage:
    """A device-to-cloud message as the hub received it.

    ``body``: bytes for MQTT and AMQP ``data`` bodies, the decoded value (usually str) for an
    AMQP ``amqp-value`` body. ``properties``: application properties (MQTT: strings from the
    property bag, a bare key as None; AMQP: typed values). ``system``: message-id,
    correlation-id, content-type, ... under their AMQP names (``message-id``,
    ``correlation-id``, ``content-type``, ``content-encoding``, ``user-id``, ...).
    """

    device_id: str
    body: Any
    properties: dict[str, Any]
    system: dict[str, Any]
    surface: Surface
    received_at: float
    sequence: int

    def text(self) -> str:
        """The body as text (bytes decoded as UTF-8)."""
        if isinstance(self.body, bytes | bytearray | memoryview):
            return bytes(self.body).decode("utf-8")
        return str(self.body)


@dataclass(frozen=True, slots=True)
class Settlement:
    outcome: C2DOutcome
    surface: Surface
    at: float
    delivery_count: int  # after this settlement


@dataclass(slots=True)
class C2DMessage:
    """One cloud-to-device message and its queue state (mutated only under the registry
    lock; read it through `Registry.c2d` snapshots or `Hub` waits)."""

    message_id: str
    device_id: str
    body: bytes | str
    properties: dict[str, str | None]
    correlation_id: str | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    ack: str | None = None
    expires_at: float = 0.0
    enqueued_at: float = 0.0
    sequence_number: int = 0
    state: C2DState = C2DState.ENQUEUED
    delivery_count: int = 0
    surface: Surface | None = None  # where it was (last) delivered
    dead_letter_reason: str | None = None
    settlements: list[Settlement] = field(default_factory=list)

    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)

    def snapshot(self) -> C2DMessage:
        return replace(self, properties=dict(self.properties),
                       settlements=list(self.settlements))


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    surface: Surface
    device_id: str | None
    ok: bool
    kind: str  # "ok" or an AuthError kind
    reason: str
    at: float
