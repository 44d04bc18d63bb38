"""The MQTT surface's TLS front: authenticate the CONNECT like IoT Hub, then splice to Mosquitto.

Per connection:

1. TLS with the stand-in's certificate; the first packet must be a CONNECT (10 s).
2. The CONNECT is checked as IoT Hub does (spec azure-iothub-protocols §2.2); a refusal is a
   CONNACK with the code below, then the socket is closed:

   =========================================================  ==========  =============
   problem                                                    3.1.1 code  5.0 reason
   =========================================================  ==========  =============
   protocol level other than 4 (3.1.1) or 5                   1           0x84
   client id is not the username's device id                 2           0x85
   no username, username not ``{host}/{device}/?api-version``  4           0x86
   (or for another hub), no password, malformed SAS token
   token refused: wrong key/signature, expired, audience or   5           0x87
   key name mismatch, unknown device or policy, module id
   =========================================================  ==========  =============

   MQTT 5 refusals carry the reason as the CONNACK's Reason String.
3. Accepted: the CONNECT is forwarded unchanged to the private Mosquitto (loopback, plain) and
   packets are relayed both ways. The front watches them to report C2D deliveries and PUBACKs
   to the MQTT surface, and enforces the device's scope the way IoT Hub does, by closing the
   connection (MQTT 5: after a DISCONNECT with 0x87) when the device publishes outside
   ``devices/{id}/messages/events/`` or ``$iothub/``, subscribes outside
   ``devices/{id}/messages/devicebound/`` or ``$iothub/``, or publishes with QoS 2.
   ``$iothub/...`` topics are rewritten to ``$iothub/{id}/...`` towards the broker (and back),
   so twin and method topics, which carry no device id, stay private to each device.
4. When the token's ``se`` passes, the front closes the connection (IoT Hub cuts MQTT
   connections whose token expired; spec §3.1). Renewal therefore means reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Protocol

from bridge.backends.iothub import sas, topics
from bridge.testing.hub import mqtt_wire as wire
from bridge.testing.hub.registry import AuthError, Grant, Registry, Surface

log = logging.getLogger("bridge.testing.hub.mqtt")

CONNECT_TIMEOUT = 10.0
IOTHUB_PREFIX = "$iothub/"
_DISCONNECT_NOT_AUTHORIZED = bytes([0xE0, 0x02, 0x87, 0x00])  # MQTT 5 server DISCONNECT


@dataclass(eq=False)
class MQTTSession:
    """One accepted device connection (identity compared, not value)."""

    device_id: str
    level: int
    clean_start: bool
    expiry: int
    peer: str
    started: float = field(default_factory=time.time)
    close_reason: str | None = None
    #: SUBSCRIBE packet id -> True when it asked for the device's devicebound topic
    pending_subscribes: dict[int, bool] = field(default_factory=dict)
    #: packet id of a C2D PUBLISH sent to the device -> C2D message id
    c2d_in_flight: dict[int, str] = field(default_factory=dict)
    _closer: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self._closer.set()


class FrontEvents(Protocol):
    """What the front reports to the MQTT surface (called on the front's loop thread)."""

    def connected(self, session: MQTTSession) -> None: ...
    def session_present(self, session: MQTTSession, present: bool) -> None: ...
    def subscribed(self, session: MQTTSession) -> None: ...
    def unsubscribed(self, session: MQTTSession) -> None: ...
    def c2d_written(self, session: MQTTSession, topic: str, qos: int,
                    packet_id: int | None) -> None: ...
    def c2d_acked(self, session: MQTTSession, packet_id: int, reason: int) -> None: ...
    def disconnected(self, session: MQTTSession) -> None: ...


class Refused(Exception):
    def __init__(self, code: int, reason: str, *, recorded: bool = False) -> None:
        self.code = code
        self.reason = reason
        self.recorded = recorded
        super().__init__(reason)


class MQTTFront:
    """TLS listener on 127.0.0.1 in front of the broker at *broker_port*."""

    def __init__(self, registry: Registry, context: ssl.SSLContext | None, broker_port: int,
                 events: FrontEvents) -> None:
        self.registry = registry
        self.context = context
        self.broker_port = broker_port
        self.events = events
        self.port = 0
        #: open streams (the `FrontLoop` aborts them on stop); set by the owner
        self.writers: set[asyncio.StreamWriter] = set()
        self.sessions: set[MQTTSession] = set()

    async def start(self, port: int = 0) -> asyncio.base_events.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", port, ssl=self.context,
                                            ssl_handshake_timeout=CONNECT_TIMEOUT)
        self.port = server.sockets[0].getsockname()[1]
        return server

    # -- authentication --------------------------------------------------------------------
    def authenticate(self, connect: wire.Connect) -> tuple[str, Grant]:
        """(device id, grant) or `Refused` with the CONNACK code (see the module docstring)."""
        if connect.level not in (wire.MQTT_311, wire.MQTT_5):
            raise Refused(wire.RC_BAD_PROTOCOL, f"protocol level {connect.level} is not "
                          "supported; IoT Hub speaks MQTT 3.1.1 (the stand-in also 5.0)")
        if not connect.username:
            raise Refused(wire.RC_BAD_CREDENTIALS, "no username; expected "
                          "{hub}/{deviceId}/?api-version=...")
        try:
            user = topics.parse_username(connect.username)
        except topics.TopicError as exc:
            raise Refused(wire.RC_BAD_CREDENTIALS, f"bad username: {exc}") from None
        if not self.registry.is_hub_host(user.host):
            raise Refused(wire.RC_BAD_CREDENTIALS,
                          f"username is for hub {user.host!r}, this is {self.registry.host_name!r}")
        if user.module_id is not None:
            raise Refused(wire.RC_NOT_AUTHORIZED, "module identities are not supported by "
                                                  "the stand-in")
        if connect.client_id != user.device_id:
            raise Refused(wire.RC_IDENTIFIER_REJECTED,
                          f"client id {connect.client_id!r} must equal the device id "
                          f"{user.device_id!r}")
        if not connect.password:
            raise Refused(wire.RC_BAD_CREDENTIALS, "no password: a SAS token is required "
                                                   "(X.509 is not supported by the stand-in)")
        try:
            token = connect.password.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(wire.RC_BAD_CREDENTIALS, "password is not UTF-8 text") from None
        audience = sas.resource_uri(self.registry.host_name, user.device_id)
        try:
            grant = self.registry.authenticate(token, audience, Surface.MQTT)
        except AuthError as exc:
            code = wire.RC_BAD_CREDENTIALS if exc.kind == "malformed" else wire.RC_NOT_AUTHORIZED
            raise Refused(code, f"SAS token refused ({exc.kind}): {exc.reason}",
                          recorded=True) from None
        return user.device_id, grant

    # -- one connection --------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            await self._serve(reader, writer)
        finally:
            self.writers.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        try:
            first = await asyncio.wait_for(wire.read_packet(reader), CONNECT_TIMEOUT)
            connect = wire.parse_connect(first)
        except (asyncio.IncompleteReadError, TimeoutError, wire.WireError, OSError) as exc:
            log.debug("hub mqtt: %s sent no usable CONNECT (%s)", peer, exc)
            await _close(writer)
            return
        try:
            device_id, grant = self.authenticate(connect)
        except Refused as refusal:
            if not refusal.recorded:  # registry.authenticate records the ones it made
                self.registry.record_auth(Surface.MQTT, connect.client_id or None, False,
                                          f"connack-{refusal.code}", refusal.reason)
            log.info("hub mqtt: refused %s (client id %r): CONNACK %d, %s", peer,
                     connect.client_id, refusal.code, refusal.reason)
            self.registry.count(f"mqtt.connack.{refusal.code}")
            with contextlib.suppress(OSError):
                writer.write(wire.connack(connect.level, refusal.code, refusal.reason))
                await writer.drain()
            await _close(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        except OSError as exc:
            log.warning("hub mqtt: broker unreachable: %s", exc)
            with contextlib.suppress(OSError):
                writer.write(wire.connack(connect.level, 3, "broker unavailable"))
                await writer.drain()
            await _close(writer)
            return
        session = MQTTSession(device_id, connect.level, connect.clean_start, grant.expiry, peer)
        self.writers.add(up_writer)
        try:
            await self._run_session(session, first, reader, writer, up_reader, up_writer)
        finally:
            self.writers.discard(up_writer)

    async def _run_session(self, session: MQTTSession, first: bytes,
                           reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           up_reader: asyncio.StreamReader,
                           up_writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self.sessions.add(session)
        self.registry.count("mqtt.connections")
        self.events.connected(session)
        expiry = loop.call_later(max(0.0, session.expiry - time.time()), self._expire, session)
        up_writer.write(first)
        pumps = [asyncio.create_task(self._device_to_broker(session, reader, writer, up_writer)),
                 asyncio.create_task(self._broker_to_device(session, up_reader, writer)),
                 asyncio.create_task(session._closer.wait())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expiry.cancel()
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            await asyncio.gather(_close(up_writer), _close(writer))
            self.sessions.discard(session)
            log.info("hub mqtt: device %s disconnected (%s)", session.device_id,
                     session.close_reason or "connection closed")
            self.events.disconnected(session)

    def _expire(self, session: MQTTSession) -> None:
        log.info("hub mqtt: SAS token of %s expired: closing its connection", session.device_id)
        self.registry.count("mqtt.expired")
        session.close("token expired")

    async def _device_to_broker(self, session: MQTTSession, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter,
                                up_writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
            while True:
                packet = await wire.read_packet(reader)
                try:
                    forward = self._from_device(session, packet)
                except (ScopeViolation, wire.WireError) as exc:
                    log.info("hub mqtt: closing %s: %s", session.device_id, exc)
                    self.registry.count("mqtt.scope_violations")
                    if session.level == wire.MQTT_5:
                        writer.write(_DISCONNECT_NOT_AUTHORIZED)
                        await writer.drain()
                    session.close(str(exc))
                    return
                up_writer.write(forward)
                await up_writer.drain()
        session.close(session.close_reason or "device closed the connection")

    async def _broker_to_device(self, session: MQTTSession, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, OSError):
            while True:
                packet = await wire.read_packet(reader)
                writer.write(self._from_broker(session, packet))
                await writer.drain()
        session.close(session.close_reason or "broker closed the connection")

    # -- packet inspection -----------------------------------------------------------------
    def _from_device(self, session: MQTTSession, packet: bytes) -> bytes:
        kind = wire.packet_type(packet)
        device = session.device_id
        if kind == wire.PUBLISH:
            publish = wire.parse_publish(packet)
            if publish.qos == 2:
                raise ScopeViolation("QoS 2 PUBLISH (IoT Hub closes the connection)")
            if publish.topic.startswith(IOTHUB_PREFIX):
                return wire.with_publish_topic(packet, _scoped(device, publish.topic))
            if not publish.topic.startswith(f"devices/{device}/messages/events/") and \
                    publish.topic != f"devices/{device}/messages/events":
                raise ScopeViolation(f"PUBLISH to {publish.topic[:100]!r} is outside "
                                     f"devices/{device}/messages/events/")
            return packet
        if kind in (wire.SUBSCRIBE, wire.UNSUBSCRIBE):
            subscription = wire.parse_subscribe(packet, session.level)
            filters: list[tuple[str, int]] = []
            devicebound = False
            for topic_filter, options in subscription.filters:
                if topic_filter.startswith(IOTHUB_PREFIX):
                    filters.append((_scoped(device, topic_filter), options))
                    continue
                if not topic_filter.startswith(f"devices/{device}/messages/devicebound/"):
                    raise ScopeViolation(f"{'UN' if kind == wire.UNSUBSCRIBE else ''}SUBSCRIBE "
                                         f"to {topic_filter[:100]!r} is outside "
                                         f"devices/{device}/messages/devicebound/")
                devicebound = True
                filters.append((topic_filter, options))
            if kind == wire.SUBSCRIBE:
                session.pending_subscribes[subscription.packet_id] = devicebound
            elif devicebound:
                self.events.unsubscribed(session)
            return wire.build_subscribe(packet, wire.SubscribeRequest(
                subscription.packet_id, filters, subscription.props))
        if kind == wire.PUBACK:
            packet_id, reason = wire.parse_puback(packet)
            self.events.c2d_acked(session, packet_id, reason)
        return packet

    def _from_broker(self, session: MQTTSession, packet: bytes) -> bytes:
        kind = wire.packet_type(packet)
        if kind == wire.PUBLISH:
            publish = wire.parse_publish(packet)
            own = f"{IOTHUB_PREFIX}{session.device_id}/"
            if publish.topic.startswith(own):
                return wire.with_publish_topic(
                    packet, IOTHUB_PREFIX + publish.topic[len(own):])
            if "/messages/devicebound" in publish.topic:
                self.events.c2d_written(session, publish.topic, publish.qos, publish.packet_id)
        elif kind == wire.SUBACK:
            packet_id, codes = wire.parse_suback(packet, session.level)
            if session.pending_subscribes.pop(packet_id, False) and all(c < 0x80 for c in codes):
                self.events.subscribed(session)
        elif kind == wire.CONNACK:
            present, code = wire.parse_connack(packet)
            if code == 0:
                self.events.session_present(session, present)
        return packet


class ScopeViolation(Exception):
    """The device used a topic IoT Hub would not allow it (the front closes the connection)."""


def _scoped(device_id: str, topic: str) -> str:
    return f"{IOTHUB_PREFIX}{device_id}/{topic[len(IOTHUB_PREFIX):]}"


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2)


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername") or ("?", "?")
    return f"{address[0]}:{address[1]}"
