"""Squirrel/imp ``blob``: a resizable byte buffer with a read/write position."""

from __future__ import annotations

import struct
from typing import Any

from bridge.squirrel.runtime.values import SquirrelError

_FORMATS = {"c": "<b", "b": "<B", "s": "<h", "w": "<H", "i": "<i", "l": "<q", "f": "<f",
            "d": "<d"}


def _format(kind: Any) -> struct.Struct:
    code = chr(kind) if type(kind) is int else kind
    if code not in _FORMATS:
        raise SquirrelError(f"invalid type {code!r} for a blob read/write")
    return struct.Struct(_FORMATS[code])


class blob:
    """``blob([size])``: ``size`` zero bytes; also built from bytes (a message body)."""

    _sq_blob = True

    def __init__(self, size: int | bytes | bytearray = 0) -> None:
        self._data = bytearray(size)  # an int: that many zero bytes; bytes: a copy
        self._pos = 0

    # -- element access (b[i]) --------------------------------------------------------------
    def __getitem__(self, idx: int) -> int:
        if type(idx) is not int or not 0 <= idx < len(self._data):
            raise SquirrelError("index out of range")
        return self._data[idx]

    def __setitem__(self, idx: int, value: int) -> None:
        if type(idx) is not int or not 0 <= idx < len(self._data):
            raise SquirrelError("index out of range")
        self._data[idx] = value & 0xFF

    def __len__(self) -> int:
        return len(self._data)

    def __bytes__(self) -> bytes:
        return bytes(self._data)

    def tobytes(self) -> bytes:
        return bytes(self._data)

    def _sq_tostring(self) -> str:
        return self._data.decode("utf-8", "surrogateescape")

    # -- the blob methods ------------------------------------------------------------------
    def len(self) -> int:
        return len(self._data)

    def tell(self) -> int:
        return self._pos

    def eos(self) -> bool:
        return self._pos >= len(self._data)

    def seek(self, offset: int, origin: Any = "b") -> int:
        code = chr(origin) if type(origin) is int else origin
        base = {"b": 0, "c": self._pos, "e": len(self._data)}.get(code)
        if base is None or not 0 <= base + offset <= len(self._data):
            raise SquirrelError("seek failed")
        self._pos = base + offset
        return 0

    def resize(self, size: int) -> None:
        if size < len(self._data):
            del self._data[size:]
            self._pos = min(self._pos, size)
        else:
            self._data.extend(bytes(size - len(self._data)))

    def _write(self, data: bytes) -> None:
        end = self._pos + len(data)
        if end > len(self._data):
            self._data.extend(bytes(end - len(self._data)))
        self._data[self._pos:end] = data
        self._pos = end

    def writen(self, value: Any, kind: Any) -> None:
        fmt = _format(kind)
        number = value if fmt.format[-1] in "fd" else int(value) & ((1 << (8 * fmt.size)) - 1)
        if fmt.format[-1] in "bhiq" and fmt.format[-1] != "f":
            bits = 8 * fmt.size
            number = number - (1 << bits) if number >= 1 << (bits - 1) else number
        self._write(fmt.pack(number))

    def readn(self, kind: Any) -> Any:
        fmt = _format(kind)
        if self._pos + fmt.size > len(self._data):
            raise SquirrelError("io error")
        (value,) = fmt.unpack_from(self._data, self._pos)
        self._pos += fmt.size
        return value

    def writestring(self, text: str) -> None:
        self._write(text.encode("utf-8", "surrogateescape"))

    def readstring(self, count: int) -> str:
        data = self._data[self._pos:self._pos + count]
        self._pos += len(data)
        return bytes(data).decode("utf-8", "surrogateescape")

    def writeblob(self, other: Any) -> None:
        self._write(bytes(other))

    def readblob(self, count: int) -> blob:
        data = self._data[self._pos:self._pos + count]
        self._pos += len(data)
        return blob(bytes(data))

    def tostring(self) -> str:
        return self._sq_tostring()

    def swap2(self) -> None:
        for i in range(0, len(self._data) - 1, 2):
            self._data[i], self._data[i + 1] = self._data[i + 1], self._data[i]

    def swap4(self) -> None:
        for i in range(0, len(self._data) - 3, 4):
            self._data[i:i + 4] = self._data[i:i + 4][::-1]

    def flush(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"blob({bytes(self._data)!r})"


__all__ = ["blob"]
