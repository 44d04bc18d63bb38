"""AMQP 1.0 message encoding and decoding for the common shapes, without proton's `Message`.

Building a proton `Message` and converting its fields through proton's `Data` objects costs
about a third of the reactor thread's time per message (see docs/benchmarks.md). Nearly every
message an agent sends or receives has one simple shape: a data section or an amqp-value
string (or nothing), plus application properties whose values are scalars. For those, this
module reads and writes the bytes directly:

- `encode` produces exactly the bytes proton's ``Message.encode()`` produces for the same
  message (a unit test compares them over generated messages), or returns None when the
  message needs proton (a non-str value body, an integer outside int64 ...);
- `decode` returns the `Message` that `codec.decode_message` would return, or None whenever
  anything about the bytes is not the plain case (an AMQP type imp does not map, a non-string
  property key, several body sections, a truncated value ...): those go through proton's
  decoder and the codec's checks, which also report what is wrong.

Section layout (AMQP 1.0, 3.2): each section is a described value, ``0x00 0x53 <code>``.
"""

from __future__ import annotations

import struct
from typing import Any

from bridge.contract.message import INT64_MAX, INT64_MIN, BodyKind, Message

# What proton writes for a message without header fields or message properties.
_HEADER = b"\x00\x53\x70\x45"  # header: an empty list
_HEADER_DURABLE = b"\x00\x53\x70\xc0\x02\x01\x41"  # header: [durable = true]
_NO_PROPERTIES = b"\x00\x53\x73\x45"  # properties: an empty list
_APPLICATION_PROPERTIES = b"\x00\x53\x74\xd1"  # map32 follows
_DATA = b"\x00\x53\x75"
_AMQP_VALUE = b"\x00\x53\x77"

_DOUBLE = struct.Struct(">d")
_FLOAT = struct.Struct(">f")

# More application properties than this: leave it to proton (whose own limit is 65,535 values).
_MAX_PROPERTIES = 1000


class _NeedsProton(Exception):  # control flow only: never leaves this module
    """The bytes or the message are not of the plain shape."""


# -- encoding ------------------------------------------------------------------------------------


def encode(message: Message, *, durable: bool = False) -> bytes | None:
    """Proton's encoding of *message*, or None if this module does not handle its shape."""
    out = bytearray(_HEADER_DURABLE if durable else _HEADER)
    out += _NO_PROPERTIES
    properties = message.properties()
    if properties:
        if len(properties) > _MAX_PROPERTIES:
            return None
        items = bytearray()
        for key, value in properties.items():
            if type(key) is not str or not _put_string(items, key) \
                    or not _put_scalar(items, value):
                return None
        out += _APPLICATION_PROPERTIES
        out += (len(items) + 4).to_bytes(4, "big")
        out += (2 * len(properties)).to_bytes(4, "big")
        out += items
    body = message.body()
    if message.kind is BodyKind.DATA:
        out += _DATA
        _put_binary(out, body if type(body) is bytes else bytes(body))
    elif body is None:
        pass  # proton writes no body section for a null value
    elif type(body) is str:
        out += _AMQP_VALUE
        if not _put_string(out, body):
            return None
    else:
        return None
    return bytes(out)


def _put_binary(out: bytearray, data: bytes) -> None:
    _put_sized(out, 0xA0, data)


def _put_string(out: bytearray, text: str) -> bool:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: proton's business (it refuses it)
        return False
    _put_sized(out, 0xA1, raw)
    return True


def _put_sized(out: bytearray, code8: int, raw: bytes) -> None:
    """A variable-width value: the one-byte-size constructor *code8* (binary 0xA0, string 0xA1)
    up to 255 bytes, else its four-byte-size twin (0xB0, 0xB1), as proton chooses."""
    if len(raw) < 256:
        out.append(code8)
        out.append(len(raw))
    else:
        out.append(code8 + 0x10)
        out += len(raw).to_bytes(4, "big")
    out += raw


def _put_scalar(out: bytearray, value: Any) -> bool:
    kind = type(value)
    if kind is bool:
        out += b"\x41" if value else b"\x42"
    elif kind is int:
        if -128 <= value <= 127:
            out += b"\x55"
            out += value.to_bytes(1, "big", signed=True)
        elif INT64_MIN <= value <= INT64_MAX:
            out += b"\x81"
            out += value.to_bytes(8, "big", signed=True)
        else:
            return False
    elif kind is float:
        out += b"\x82"
        out += _DOUBLE.pack(value)
    elif kind is str:
        return _put_string(out, value)
    elif kind is bytes:
        _put_binary(out, value)
    elif value is None:
        out += b"\x40"
    else:
        return False
    return True


# -- decoding ------------------------------------------------------------------------------------


def decode(raw: bytes) -> Message | None:
    """The received message, or None if it needs proton's decoder (see the module doc)."""
    try:
        return _decode(raw)
    except (_NeedsProton, IndexError, ValueError, struct.error):
        return None


def _decode(raw: bytes) -> Message:
    size = len(raw)
    pos = 0
    last = 0
    properties: dict[str, Any] = {}
    body: Any = None
    kind: BodyKind | None = None
    while pos < size:
        if raw[pos] != 0x00 or raw[pos + 1] != 0x53:
            raise _NeedsProton
        code = raw[pos + 2]
        pos += 3
        if code <= last or code > 0x78:  # out of order, repeated, or not a section
            raise _NeedsProton
        last = code
        if code in (0x70, 0x73):  # header, properties: lists nothing here reads
            pos = _skip_compound(raw, pos, (0x45, 0xC0, 0xD0))
        elif code in (0x71, 0x72, 0x78):  # annotations, footer: maps nothing here reads
            pos = _skip_compound(raw, pos, (0xC1, 0xD1))
        elif code == 0x74:
            pos = _read_properties(raw, pos, properties)
        elif code == 0x75 and kind is None:
            constructor = raw[pos]
            if constructor == 0xA0:
                length, pos = raw[pos + 1], pos + 2
            elif constructor == 0xB0:
                length, pos = int.from_bytes(raw[pos + 1:pos + 5], "big"), pos + 5
            else:
                raise _NeedsProton
            if pos + length > size:
                raise _NeedsProton
            body, kind = raw[pos:pos + length], BodyKind.DATA
            pos += length
        elif code == 0x77 and kind is None:
            body, pos = _read_scalar(raw, pos)
            kind = BodyKind.VALUE
        else:  # amqp-sequence, a second body section, an unknown code
            raise _NeedsProton
    if kind is None or pos != size:
        raise _NeedsProton  # no body section: the full path reports it
    return Message(bytes(body) if kind is BodyKind.DATA else body, properties, kind)


def _skip_compound(raw: bytes, pos: int, allowed: tuple[int, ...]) -> int:
    constructor = raw[pos]
    if constructor not in allowed:
        raise _NeedsProton
    if constructor == 0x45:  # list0
        return pos + 1
    if constructor in (0xC0, 0xC1):
        end = pos + 2 + raw[pos + 1]
    else:
        end = pos + 5 + int.from_bytes(raw[pos + 1:pos + 5], "big")
    if end > len(raw):
        raise _NeedsProton
    return end


def _read_properties(raw: bytes, pos: int, properties: dict[str, Any]) -> int:
    constructor = raw[pos]
    if constructor == 0xC1:
        end, count, pos = pos + 2 + raw[pos + 1], raw[pos + 2], pos + 3
    elif constructor == 0xD1:
        end = pos + 5 + int.from_bytes(raw[pos + 1:pos + 5], "big")
        count, pos = int.from_bytes(raw[pos + 5:pos + 9], "big"), pos + 9
    else:
        raise _NeedsProton
    if count % 2 or count > 2 * _MAX_PROPERTIES or end > len(raw):
        raise _NeedsProton
    for _ in range(count // 2):
        if raw[pos] not in (0xA1, 0xB1, 0xA3, 0xB3):  # a string or symbol key
            raise _NeedsProton
        key, pos = _read_scalar(raw, pos)
        value, pos = _read_scalar(raw, pos)
        if value is None:  # a null carries nothing (the last pair of a name decides)
            properties.pop(key, None)
        else:
            properties[key] = value
    if pos != end:
        raise _NeedsProton
    return end


def _read_scalar(raw: bytes, pos: int) -> tuple[Any, int]:
    """(value, next offset) of a scalar imp maps; _NeedsProton for anything else."""
    code = raw[pos]
    pos += 1
    reader = _FIXED.get(code)
    if reader is not None:
        width, read = reader
        if pos + width > len(raw):
            raise _NeedsProton
        return read(raw, pos), pos + width
    if code in (0xA0, 0xA1, 0xA3):
        length, pos = raw[pos], pos + 1
    elif code in (0xB0, 0xB1, 0xB3):
        length, pos = int.from_bytes(raw[pos:pos + 4], "big"), pos + 4
    else:
        raise _NeedsProton  # char, timestamp, uuid, decimal, list, map, array, described
    end = pos + length
    if end > len(raw):
        raise _NeedsProton
    chunk = raw[pos:end]
    if code in (0xA0, 0xB0):
        return bytes(chunk), end
    if code in (0xA3, 0xB3):
        return chunk.decode("ascii"), end  # ValueError (not ASCII): proton decides
    return chunk.decode("utf-8"), end  # ValueError (not UTF-8): proton decides


def _signed(width: int) -> Any:
    return lambda raw, pos: int.from_bytes(raw[pos:pos + width], "big", signed=True)


def _unsigned(width: int) -> Any:
    return lambda raw, pos: int.from_bytes(raw[pos:pos + width], "big")


# constructor -> (bytes after it, reader)
_FIXED: dict[int, tuple[int, Any]] = {
    0x40: (0, lambda raw, pos: None),
    0x41: (0, lambda raw, pos: True),
    0x42: (0, lambda raw, pos: False),
    0x56: (1, lambda raw, pos: raw[pos] != 0),
    0x43: (0, lambda raw, pos: 0),  # uint0
    0x44: (0, lambda raw, pos: 0),  # ulong0
    0x50: (1, _unsigned(1)),  # ubyte
    0x52: (1, _unsigned(1)),  # smalluint
    0x53: (1, _unsigned(1)),  # smallulong
    0x60: (2, _unsigned(2)),  # ushort
    0x70: (4, _unsigned(4)),  # uint
    0x80: (8, _unsigned(8)),  # ulong
    0x51: (1, _signed(1)),  # byte
    0x54: (1, _signed(1)),  # smallint
    0x55: (1, _signed(1)),  # smalllong
    0x61: (2, _signed(2)),  # short
    0x71: (4, _signed(4)),  # int
    0x81: (8, _signed(8)),  # long
    0x72: (4, lambda raw, pos: _FLOAT.unpack_from(raw, pos)[0]),
    0x82: (8, lambda raw, pos: _DOUBLE.unpack_from(raw, pos)[0]),
}
