"""imp's http codecs and crypto digests: table-driven, against the rules in bridge.impenv."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from bridge.impenv import coding
from bridge.impenv.jsoncodec import jsondecode, jsonencode

ENCODE = [
    (None, None, "null"),
    (True, None, "true"),
    (False, None, "false"),
    (0, None, "0"),
    (-2147483648, None, "-2147483648"),
    (1.5, None, "1.5"),
    (20.100000381469727, None, "20.1"),           # a 32-bit float prints as Squirrel prints it
    (1e20, None, "1e+20"),
    ("a\"b\\c\n", None, '"a\\"b\\\\c\\n"'),
    ("h\u00e9", None, '"h\u00e9"'),
    ([], None, "[]"),
    ({}, None, "{}"),
    ([1, "x", None], None, '[ 1, "x", null ]'),
    ({"a": 1, "b": [True]}, None, '{ "a": 1, "b": [ true ] }'),
    ({"a": 1, "b": [True]}, {"compact": True}, '{"a":1,"b":[true]}'),
    ({"n": {"m": {}}}, {"compact": True}, '{"n":{"m":{}}}'),
]


@pytest.mark.parametrize(("value", "settings", "expected"), ENCODE)
def test_jsonencode(value: Any, settings: dict[str, Any] | None, expected: str) -> None:
    assert jsonencode(value, settings) == expected


@pytest.mark.parametrize(("value", "error", "names"), [
    (b"\x00", TypeError, "blob"),
    ({"a": [1, b"x"]}, TypeError, "$.a[1]"),
    ({1: 2}, TypeError, "key"),
    (math.inf, ValueError, "JSON"),
    (object(), TypeError, "object"),
    ({"f": len}, TypeError, "builtin_function_or_method"),
])
def test_jsonencode_refuses_what_imp_refused(value: Any, error: type[Exception],
                                             names: str) -> None:
    with pytest.raises(error, match=re.escape(names)):
        jsonencode(value)


@pytest.mark.parametrize(("text", "expected"), [
    ("null", None),
    ("true", True),
    ("12", 12),
    ("-2147483648", -2147483648),
    ("2147483648", 2147483648.0),   # past 32 bits: a float, as imp's integers are 32-bit
    ("1.25", 1.25),
    ("1e3", 1000.0),
    ('"\\u00e9"', "\u00e9"),
    ('{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
])
def test_jsondecode(text: str, expected: Any) -> None:
    result = jsondecode(text)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("text", ["{", "[1,]", "NaN", "{'a': 1}", ""])
def test_jsondecode_names_the_position_of_bad_json(text: str) -> None:
    with pytest.raises(ValueError, match=r"jsondecode: .* line 1 column"):
        jsondecode(text)


@pytest.mark.parametrize(("data", "encoded"), [
    (b"", ""), (b"f", "Zg=="), (b"fo", "Zm8="), (b"foo", "Zm9v"), ("h\u00e9", "aMOp"),
    (bytes(range(256))[:6], "AAECAwQF"),
])
def test_base64_round_trip(data: bytes | str, encoded: str) -> None:
    assert coding.base64encode(data) == encoded
    raw = data.encode() if isinstance(data, str) else data
    assert coding.base64decode(encoded) == raw
    assert coding.base64decode(encoded.rstrip("=")) == raw       # padding optional
    assert coding.base64decode(" " + encoded + "\n") == raw      # whitespace ignored


def test_base64decode_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not base64"):
        coding.base64decode("@@@@")


@pytest.mark.parametrize(("table", "encoded"), [
    ({}, ""),
    ({"s": "a b"}, "s=a%20b"),
    ({"s": "a/b?c=d&e"}, "s=a%2Fb%3Fc%3Dd%26e"),
    ({"s": "-_.~"}, "s=-_.~"),
    ({"s": "\u00e9"}, "s=%C3%A9"),
    ({"n": 1, "f": 1.5, "b": True, "z": None}, "n=1&f=1.5&b=true&z="),
    ({"device id": "d1"}, "device%20id=d1"),
])
def test_urlencode(table: dict[str, Any], encoded: str) -> None:
    assert coding.urlencode(table) == encoded


@pytest.mark.parametrize(("text", "table"), [
    ("", {}),
    ("a=1&b=2", {"a": "1", "b": "2"}),
    ("s=a%20b&t=c+d", {"s": "a b", "t": "c d"}),
    ("flag&x=", {"flag": "", "x": ""}),
    ("k=%C3%A9", {"k": "\u00e9"}),
])
def test_urldecode(text: str, table: dict[str, str]) -> None:
    assert coding.urldecode(text) == table


# Published vectors: FIPS 180-2 ("abc"), RFC 4231 test case 2 (HMAC-SHA256), RFC 2202.
@pytest.mark.parametrize(("name", "args", "hexdigest"), [
    ("sha256", ("abc",),
     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("sha1", ("abc",), "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("md5", ("abc",), "900150983cd24fb0d6963f7d28e17f72"),
    ("hmacsha256", ("what do ya want for nothing?", "Jefe"),
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("hmacsha1", ("what do ya want for nothing?", "Jefe"),
     "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    ("hmacmd5", ("what do ya want for nothing?", "Jefe"), "750c783e6ab0b503eaa86e310a5db738"),
])
def test_crypto_vectors(name: str, args: tuple[str, ...], hexdigest: str) -> None:
    assert coding.CRYPTO_FUNCTIONS[name](*args).hex() == hexdigest


def test_crypto_takes_bytes_and_names_a_wrong_argument() -> None:
    assert coding.hmacsha256(b"data", b"\x00\xff") == \
        coding.hmacsha256(b"data", bytearray(b"\x00\xff"))
    with pytest.raises(TypeError, match="key must be a string or blob"):
        coding.hmacsha256("data", 5)  # type: ignore[arg-type]
