"""Hand-built AMQP 1.0 message bytes for bad-input tests: layouts and values proton's own
`Message` will not produce (several body sections, a map keyed by a list, maps past proton's
value limit, lists nested thousands deep)."""

from __future__ import annotations

from typing import Any

from proton import Data


def sections(*sections: tuple[int, Any]) -> bytes:
    """Described sections ``(code, value)`` in the given order (0x74 application properties,
    0x75 data, 0x76 amqp-sequence, 0x77 amqp-value ...), with nothing checked."""
    data = Data()
    for code, value in sections:
        data.put_described()
        data.enter()
        data.put_ulong(code)
        data.put_object(value)
        data.exit()
    return data.encode()


def list_key_map(value: int) -> bytes:
    """An amqp-value holding ``{[1]: value}``: legal AMQP, but no Python dict can hold it."""
    data = Data()
    data.put_described()
    data.enter()
    data.put_ulong(0x77)
    data.put_map()
    data.enter()
    data.put_list()
    data.enter()
    data.put_int(1)
    data.exit()
    data.put_int(value)
    data.exit()
    data.exit()
    return data.encode()


def map_value(entries: int) -> bytes:
    """An amqp-value holding a map32 of *entries* str -> smallint pairs, encoded by hand
    (proton's encoder refuses maps that large)."""
    pairs = b"".join(b"\xa1" + bytes([len(key)]) + key + b"\x54" + bytes([i % 100])
                     for i in range(entries) for key in [f"k{i}".encode()])
    inner = (2 * entries).to_bytes(4, "big") + pairs
    return b"\x00\x53\x77\xd1" + len(inner).to_bytes(4, "big") + inner


def deep_list(depth: int) -> bytes:
    """An amqp-value of *depth* nested one-element list32s around a null."""
    inner = b"\x40"
    for _ in range(depth):
        inner = b"\xd0" + (len(inner) + 4).to_bytes(4, "big") + (1).to_bytes(4, "big") + inner
    return b"\x00\x53\x77" + inner
