"""imp's ``http.base64encode`` / ``base64decode`` / ``urlencode`` / ``urldecode`` and
``crypto`` digests, as pure functions (bytes in, bytes or str out).

Strings are UTF-8 byte strings (imp's Squirrel strings are bytes), so ``str`` arguments are
encoded as UTF-8 first. ``urlencode`` follows imp: a table becomes ``k=v&k2=v2`` with every
byte outside ``A-Z a-z 0-9 - _ . ~`` percent-encoded (a space as ``%20``); ``urldecode`` also
takes ``+`` as a space, and gives a table of strings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote_plus

Bytes = bytes | bytearray | memoryview | str


def as_bytes(value: Bytes, name: str = "value") -> bytes:
    """*value* as bytes (a string as UTF-8); a clear error naming *name* otherwise."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{name} must be a string or blob, got {type(value).__name__}")


def base64encode(data: Bytes) -> str:
    return base64.b64encode(as_bytes(data, "data")).decode("ascii")


def base64decode(text: Bytes) -> bytes:
    """Padding is optional and whitespace ignored (imp decoded what people pasted)."""
    raw = b"".join(as_bytes(text, "text").split())
    raw += b"=" * (-len(raw) % 4)
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"base64decode: not base64 ({exc})") from None


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def urlencode(table: Mapping[str, Any]) -> str:
    if not isinstance(table, Mapping):
        raise TypeError(f"urlencode: expected a table, got {type(table).__name__}")
    return "&".join(f"{quote(str(key), safe='-_.~')}={quote(_scalar_text(value), safe='-_.~')}"
                    for key, value in table.items())


def urldecode(text: str) -> dict[str, str]:
    if not isinstance(text, str):
        raise TypeError(f"urldecode: expected a string, got {type(text).__name__}")
    result: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        result[unquote_plus(key)] = unquote_plus(value)
    return result


# -- crypto (imp: each returns a blob of the raw digest) -------------------------------------
def sha256(data: Bytes) -> bytes:
    return hashlib.sha256(as_bytes(data, "data")).digest()


def sha1(data: Bytes) -> bytes:
    return hashlib.sha1(as_bytes(data, "data")).digest()


def md5(data: Bytes) -> bytes:
    return hashlib.md5(as_bytes(data, "data")).digest()


def sha512(data: Bytes) -> bytes:
    return hashlib.sha512(as_bytes(data, "data")).digest()


def hmacsha256(data: Bytes, key: Bytes) -> bytes:
    """``crypto.hmacsha256(dataToSign, key)``: imp's argument order, data first."""
    return hmac.new(as_bytes(key, "key"), as_bytes(data, "data"), hashlib.sha256).digest()


def hmacsha1(data: Bytes, key: Bytes) -> bytes:
    return hmac.new(as_bytes(key, "key"), as_bytes(data, "data"), hashlib.sha1).digest()


def hmacsha512(data: Bytes, key: Bytes) -> bytes:
    return hmac.new(as_bytes(key, "key"), as_bytes(data, "data"), hashlib.sha512).digest()


def hmacmd5(data: Bytes, key: Bytes) -> bytes:
    return hmac.new(as_bytes(key, "key"), as_bytes(data, "data"), hashlib.md5).digest()


CRYPTO_FUNCTIONS = {"sha256": sha256, "sha1": sha1, "sha512": sha512, "md5": md5,
                    "hmacsha256": hmacsha256, "hmacsha1": hmacsha1, "hmacsha512": hmacsha512,
                    "hmacmd5": hmacmd5}


class Digests:
    """imp's ``crypto`` and ``http.hash`` (the same functions under two names on imp): digests
    as raw ``bytes`` (imp returned blobs)."""

    __slots__ = ()

    sha256 = staticmethod(sha256)
    sha1 = staticmethod(sha1)
    sha512 = staticmethod(sha512)
    md5 = staticmethod(md5)
    hmacsha256 = staticmethod(hmacsha256)
    hmacsha1 = staticmethod(hmacsha1)
    hmacsha512 = staticmethod(hmacsha512)
    hmacmd5 = staticmethod(hmacmd5)

