"""Just enough of the MQTT 3.1.1 / 5.0 wire format for the stand-in's TLS front.

The front relays whole packets and only looks inside the few it must understand: CONNECT (to
authenticate), CONNACK (session present), PUBLISH / PUBACK (C2D settlement), SUBSCRIBE / SUBACK
/ UNSUBSCRIBE (who listens for C2D) and, for the per-device ``$iothub`` scoping, it rewrites the
topic of PUBLISH, SUBSCRIBE and UNSUBSCRIBE packets. Everything else passes through untouched.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

MQTT_311 = 4
MQTT_5 = 5

# CONNACK return codes (3.1.1) and reason codes (5.0).
RC_ACCEPTED = 0
RC_BAD_PROTOCOL = 1
RC_IDENTIFIER_REJECTED = 2
RC_BAD_CREDENTIALS = 4
RC_NOT_AUTHORIZED = 5
RC5_UNSUPPORTED_PROTOCOL = 0x84
RC5_BAD_CLIENT_ID = 0x85
RC5_BAD_CREDENTIALS = 0x86
RC5_NOT_AUTHORIZED = 0x87

#: The 3.1.1 return code -> the 5.0 reason code with the same meaning.
V5_REASON = {RC_BAD_PROTOCOL: RC5_UNSUPPORTED_PROTOCOL, RC_IDENTIFIER_REJECTED: RC5_BAD_CLIENT_ID,
             RC_BAD_CREDENTIALS: RC5_BAD_CREDENTIALS, RC_NOT_AUTHORIZED: RC5_NOT_AUTHORIZED}

MAX_PACKET = 1024 * 1024  # far above IoT Hub's 256 KB message limit


class WireError(ValueError):
    """A packet is malformed or not what the front expected."""


def packet_type(packet: bytes) -> int:
    return packet[0] >> 4


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decode_varint(data: bytes, offset: int) -> tuple[int, int]:
    """(value, offset after it) of MQTT's variable byte integer at *offset*."""
    value, shift = 0, 0
    for index in range(offset, min(offset + 4, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise WireError("malformed variable byte integer")


async def read_packet(reader: asyncio.StreamReader, max_size: int = MAX_PACKET) -> bytes:
    """One whole packet (fixed header included); ``IncompleteReadError`` at end of stream."""
    raw = bytearray(await reader.readexactly(2))
    while raw[-1] & 0x80:
        if len(raw) >= 5:
            raise WireError("remaining length longer than 4 bytes")
        raw += await reader.readexactly(1)
    length, _ = decode_varint(bytes(raw), 1)
    if length > max_size:
        raise WireError(f"packet of {length} bytes exceeds {max_size}")
    return bytes(raw) + await reader.readexactly(length)


def _body(packet: bytes) -> tuple[bytes, int]:
    length, start = decode_varint(packet, 1)
    body = packet[start:start + length]
    if len(body) != length:
        raise WireError("truncated packet")
    return body, start


def _string(body: bytes, cursor: int) -> tuple[bytes, int]:
    if cursor + 2 > len(body):
        raise WireError("truncated string length")
    (size,) = struct.unpack_from("!H", body, cursor)
    end = cursor + 2 + size
    if end > len(body):
        raise WireError("truncated string")
    return body[cursor + 2:end], end


def _skip_properties(body: bytes, cursor: int) -> int:
    length, cursor = decode_varint(body, cursor)
    if cursor + length > len(body):
        raise WireError("truncated properties")
    return cursor + length


def encode_string(value: str | bytes) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + encode_varint(len(body)) + body


# --------------------------------------------------------------------------- CONNECT / CONNACK


@dataclass(frozen=True, slots=True)
class Connect:
    protocol_name: str
    level: int
    clean_start: bool
    keepalive: int
    client_id: str
    will_topic: str | None
    username: str | None
    password: bytes | None = None

    def __repr__(self) -> str:  # never show the password (a SAS token)
        return (f"Connect(level={self.level}, client_id={self.client_id!r}, "
                f"username={self.username!r}, clean_start={self.clean_start})")


def parse_connect(packet: bytes) -> Connect:
    """Decode a CONNECT (MQTT 3.1, 3.1.1 or 5.0); `WireError` if it is anything else."""
    if not packet or packet[0] != 0x10:
        raise WireError("the first packet is not CONNECT")
    body, _ = _body(packet)
    try:
        name, cursor = _string(body, 0)
        if cursor + 4 > len(body):
            raise WireError("truncated CONNECT header")
        level, flags = body[cursor], body[cursor + 1]
        (keepalive,) = struct.unpack_from("!H", body, cursor + 2)
        cursor += 4
        if level == MQTT_5:
            cursor = _skip_properties(body, cursor)
        client_id, cursor = _string(body, cursor)
        will_topic = None
        if flags & 0x04:
            if level == MQTT_5:
                cursor = _skip_properties(body, cursor)
            topic, cursor = _string(body, cursor)
            will_topic = topic.decode("utf-8")
            _, cursor = _string(body, cursor)  # will payload
        username = password = None
        if flags & 0x80:
            raw_user, cursor = _string(body, cursor)
            username = raw_user.decode("utf-8")
        if flags & 0x40:
            password, cursor = _string(body, cursor)
        return Connect(name.decode("utf-8"), level, bool(flags & 0x02), keepalive,
                       client_id.decode("utf-8"), will_topic, username, password)
    except UnicodeDecodeError:
        raise WireError("CONNECT contains invalid UTF-8") from None


def connack(level: int, code: int, reason: str | None = None,
            session_present: bool = False) -> bytes:
    """A CONNACK refusing (or accepting) with the 3.1.1 *code*; for MQTT 5 the code is mapped
    to its reason code and *reason* is sent as the Reason String property."""
    flags = 1 if session_present and code == RC_ACCEPTED else 0
    if level != MQTT_5:
        return _packet(0x20, bytes([flags, code]))
    props = b""
    if reason:
        props = b"\x1f" + encode_string(reason[:200])
    return _packet(0x20, bytes([flags, V5_REASON.get(code, code)]) + encode_varint(len(props))
                   + props)


def parse_connack(packet: bytes) -> tuple[bool, int]:
    """(session present, return/reason code)."""
    body, _ = _body(packet)
    if len(body) < 2:
        raise WireError("truncated CONNACK")
    return bool(body[0] & 1), body[1]


# --------------------------------------------------------------------------- PUBLISH / PUBACK


@dataclass(frozen=True, slots=True)
class PublishPacket:
    topic: str
    qos: int
    packet_id: int | None
    dup: bool
    rest_offset: int  # offset in the body just after the topic


def parse_publish(packet: bytes) -> PublishPacket:
    body, _ = _body(packet)
    qos = (packet[0] >> 1) & 0x03
    raw_topic, cursor = _string(body, 0)
    packet_id = None
    if qos:
        if cursor + 2 > len(body):
            raise WireError("truncated PUBLISH packet id")
        (packet_id,) = struct.unpack_from("!H", body, cursor)
    try:
        topic = raw_topic.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("PUBLISH topic is not UTF-8") from None
    return PublishPacket(topic, qos, packet_id, bool(packet[0] & 0x08), cursor)


def with_publish_topic(packet: bytes, topic: str) -> bytes:
    """The same PUBLISH with another topic name (packet id, properties, payload kept)."""
    body, _ = _body(packet)
    _, cursor = _string(body, 0)
    return _packet(packet[0], encode_string(topic) + body[cursor:])


def parse_puback(packet: bytes) -> tuple[int, int]:
    """(packet id, reason code: 0 unless an MQTT 5 PUBACK carries one)."""
    body, _ = _body(packet)
    if len(body) < 2:
        raise WireError("truncated PUBACK")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    return packet_id, body[2] if len(body) > 2 else 0


# --------------------------------------------------------------------------- SUBSCRIBE & co


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    packet_id: int
    filters: list[tuple[str, int]]  # (filter, options byte; for UNSUBSCRIBE always 0)
    props: bytes  # MQTT 5 properties, verbatim (with their length prefix)


def parse_subscribe(packet: bytes, level: int) -> SubscribeRequest:
    """SUBSCRIBE or UNSUBSCRIBE: packet id, [properties], then the filters."""
    body, _ = _body(packet)
    unsubscribe = packet_type(packet) == UNSUBSCRIBE
    if len(body) < 2:
        raise WireError("truncated SUBSCRIBE")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    cursor = 2
    props = b""
    if level == MQTT_5:
        end = _skip_properties(body, cursor)
        props, cursor = body[cursor:end], end
    filters: list[tuple[str, int]] = []
    while cursor < len(body):
        raw, cursor = _string(body, cursor)
        options = 0
        if not unsubscribe:
            if cursor >= len(body):
                raise WireError("SUBSCRIBE filter without options")
            options, cursor = body[cursor], cursor + 1
        try:
            filters.append((raw.decode("utf-8"), options))
        except UnicodeDecodeError:
            raise WireError("topic filter is not UTF-8") from None
    if not filters:
        raise WireError("SUBSCRIBE/UNSUBSCRIBE without a filter")
    return SubscribeRequest(packet_id, filters, props)


def build_subscribe(packet: bytes, subscription: SubscribeRequest) -> bytes:
    """Re-encode a (possibly rewritten) SUBSCRIBE/UNSUBSCRIBE with the original fixed header."""
    unsubscribe = packet_type(packet) == UNSUBSCRIBE
    body = struct.pack("!H", subscription.packet_id) + subscription.props
    for topic_filter, options in subscription.filters:
        body += encode_string(topic_filter)
        if not unsubscribe:
            body += bytes([options])
    return _packet(packet[0], body)


def parse_suback(packet: bytes, level: int) -> tuple[int, list[int]]:
    """(packet id, granted QoS / reason code per filter)."""
    body, _ = _body(packet)
    if len(body) < 2:
        raise WireError("truncated SUBACK")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    cursor = 2
    if level == MQTT_5:
        cursor = _skip_properties(body, cursor)
    return packet_id, list(body[cursor:])
