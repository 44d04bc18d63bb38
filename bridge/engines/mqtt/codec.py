"""Message <-> MQTT payload and properties: pure functions, exact round trips between bridges.

MQTT 5 (``encode_v5`` / ``decode_v5``): the payload is the raw body, so ``mosquitto_sub`` shows
it; every application property travels as a user property with a string value a plain client
can read; two reserved user properties restore what strings lose:

- ``x-amqp-body``: ``value`` (a str body, UTF-8 payload), ``data`` (bytes payload) or ``json``
  (any other AMQP value - list, dict, int, None, bytes ... - as tagged JSON, see `to_json`);
- ``x-amqp-types``: JSON ``{"key": "int" | "float" | "bool" | "jstr"}`` for every property whose
  value is not a plain str (``jstr``: a str MQTT cannot carry verbatim - NUL or a lone surrogate
  - sent JSON-escaped).

A user property whose name starts with ``x-amqp-`` is the bridge's: an application property
with such a key is sent as ``x-amqp-esc-<key>`` and restored on receipt.

A message from a plain client (no ``x-amqp-body``) arrives as a data body (bytes), or as a str
value body when its Payload Format Indicator says UTF-8; its user properties become str
properties. A foreign ``x-amqp-body`` kind the bridge does not know gives the body
``"Unhandled message body type <kind>"`` (imp's behaviour); a property whose declared type
cannot be converted is left out (statement 30).

MQTT 3.1.1 has no properties: ``encode_envelope`` wraps kind, body and properties in one JSON
object (``{"x-amqp-envelope": 1, ...}``) that any client can parse; ``encode_raw`` sends the bare
body and drops properties (the caller logs that). ``decode_v311`` recognises the envelope and
treats anything else as a plain client's data body.

Decoding never raises. What it had to drop or guess on a message that claims to come from a
bridge (bad reserved properties, a body that does not match its kind, a broken envelope) is
noted as a *problem* while `collect_problems` is active, so the receiving side can report
malformed traffic (a warning and a counter) without the codec logging anything itself.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.contract.message import BodyKind, Message, Properties
from bridge.engines.problems import collect_problems as collect_problems  # re-exported
from bridge.engines.problems import note as _problem

RESERVED_PREFIX = "x-amqp-"
BODY_KEY = "x-amqp-body"
TYPES_KEY = "x-amqp-types"
ESCAPE_PREFIX = "x-amqp-esc-"
ENVELOPE_KEY = "x-amqp-envelope"
_ENVELOPE_START = b'{"' + ENVELOPE_KEY.encode() + b'":'

KIND_VALUE = "value"
KIND_DATA = "data"
KIND_JSON = "json"


# What bad JSON can raise: RecursionError for nesting deeper than the interpreter allows.
_BAD_JSON = (ValueError, TypeError, RecursionError)


def _why(exc: BaseException) -> str:
    """What was wrong with received JSON, in a few words (never the offending text)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at character {exc.pos}"
    if isinstance(exc, binascii.Error):
        return "invalid base64"
    if isinstance(exc, KeyError):
        return f"no {exc} field"
    return type(exc).__name__


class CodecError(ValueError):
    """A message cannot be put on MQTT as it is (the text says why)."""


@dataclass(slots=True)
class Encoded:
    """What goes into one PUBLISH."""

    payload: bytes
    user_properties: list[tuple[str, str]] = field(default_factory=list)

    @property
    def properties_size(self) -> int:
        """Bytes the user properties take in the PUBLISH (each: identifier, two lengths)."""
        return sum(utf8_length(name) + utf8_length(value) + 5
                   for name, value in self.user_properties)


def utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


# -- tagged JSON for non-str value bodies --------------------------------------------------------


def to_json(value: Any) -> Any:
    """A JSON-able form of an AMQP value that `from_json` turns back into an equal value.

    Plain JSON is kept where it is exact (str, int, finite float, bool, None, lists, dicts with
    str keys); the rest is tagged: ``{"$bytes": base64}``, ``{"$float": "nan"}``,
    ``{"$map": [[k, v], ...]}`` (non-str keys, or keys starting with ``$``). Tuples become lists;
    any other type becomes ``{"$str": str(value)}`` (documented loss: such values cannot be
    created by agent code).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: to_json(v) for k, v in value.items()}
        return {"$map": [[to_json(k), to_json(v)] for k, v in value.items()]}
    return {"$str": str(value)}


def from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag == "$bytes" and isinstance(inner, str):
                return base64.b64decode(inner, validate=True)
            if tag == "$float" and isinstance(inner, str):
                return float(inner)
            if tag == "$str" and isinstance(inner, str):
                return inner
            if tag == "$map" and isinstance(inner, list):
                return {_hashable(from_json(k)): from_json(v) for k, v in inner}
        return {k: from_json(v) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    if isinstance(key, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in key.items()))
    return key


def dumps(value: Any) -> bytes:
    # ensure_ascii keeps lone surrogates and NULs representable; allow_nan is never needed
    return json.dumps(to_json(value), ensure_ascii=True, separators=(",", ":"),
                      allow_nan=False).encode("ascii")


def loads(payload: bytes | bytearray) -> Any:
    return from_json(json.loads(payload))


# -- bodies -----------------------------------------------------------------------------------


def _mqtt_safe(text: str) -> bool:
    """Can *text* travel as an MQTT UTF-8 string (no NUL, no lone surrogates)?"""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def body_payload(message: Message) -> tuple[str, bytes]:
    """(kind marker, payload bytes) for a message body."""
    body = message.body()
    if message.kind is BodyKind.DATA:
        return KIND_DATA, bytes(body)
    if isinstance(body, str):
        try:
            return KIND_VALUE, body.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: only JSON escaping keeps them
            return KIND_JSON, dumps(body)
    return KIND_JSON, dumps(body)


def body_from(kind: str, payload: bytes | bytearray) -> tuple[Any, BodyKind]:
    """The body for a kind marker; never raises (bad input gives the imp warning string)."""
    if kind == KIND_DATA:
        return bytes(payload), BodyKind.DATA
    if kind == KIND_VALUE:
        try:
            return payload.decode("utf-8"), BodyKind.VALUE
        except UnicodeDecodeError:
            _problem(f"{BODY_KEY} = {KIND_VALUE} but the payload is not UTF-8: delivered as "
                     f"a data body")
            return bytes(payload), BodyKind.DATA
    if kind == KIND_JSON:
        try:
            return loads(payload), BodyKind.VALUE
        except _BAD_JSON as exc:
            _problem(f"{BODY_KEY} = {KIND_JSON} but the payload is not tagged JSON "
                     f"({_why(exc)}): delivered as a data body")
            return bytes(payload), BodyKind.DATA
    _problem(f"unknown {BODY_KEY} kind {kind[:40]!r}: body given as the imp warning string")
    return f"Unhandled message body type {kind}", BodyKind.VALUE


# -- properties ------------------------------------------------------------------------------


def render_value(value: Any) -> tuple[str, str | None]:
    """(string form, type tag or None for a plain str)."""
    if isinstance(value, bool):
        return ("true" if value else "false"), "bool"
    if isinstance(value, int):
        return str(value), "int"
    if isinstance(value, float):
        return repr(value), "float"
    text = str(value)
    if _mqtt_safe(text):
        return text, None
    return json.dumps(text, ensure_ascii=True), "jstr"


def parse_value(text: str, tag: str | None) -> Any:
    """The typed value, or raises ValueError if it cannot be converted."""
    if tag is None:
        return text
    if tag == "int":
        return int(text)
    if tag == "float":
        return float(text)
    if tag == "bool":
        if text in ("true", "false"):
            return text == "true"
        raise ValueError(f"not a bool: {text!r}")
    if tag == "jstr":
        value = json.loads(text)
        if isinstance(value, str):
            return value
    raise ValueError(f"unknown property type {tag!r}")


def property_name(key: str) -> str:
    if not _mqtt_safe(key):
        raise CodecError(f"property key {key!r} contains a NUL character or a lone surrogate, "
                         f"which MQTT user property names cannot carry")
    return ESCAPE_PREFIX + key if key.startswith(RESERVED_PREFIX) else key


def encode_v5(message: Message) -> Encoded:
    """Payload and user properties for an MQTT 5 PUBLISH. Raises `CodecError`."""
    kind, payload = body_payload(message)
    # A data body is what a plain client sends too, so it needs no marker: every user property
    # costs paho real time on both sides (see docs/benchmarks.md).
    props: list[tuple[str, str]] = [] if kind == KIND_DATA else [(BODY_KEY, kind)]
    types: dict[str, str] = {}
    for key, value in message.properties().items():
        name = property_name(key)
        text, tag = render_value(value)
        props.append((name, text))
        if tag is not None:
            types[name] = tag
    if types:
        props.append((TYPES_KEY, _types_table(tuple(types.items()))))
    return Encoded(payload, props)


@functools.lru_cache(maxsize=256)
def _types_table(types: tuple[tuple[str, str], ...]) -> str:
    # An application sends the same few property layouts over and over: JSON-encoding the
    # table for each message was a tenth of the sending thread's time.
    return json.dumps(dict(types), ensure_ascii=True, separators=(",", ":"))


def decode_v5(payload: bytes | bytearray, user_properties: Iterable[tuple[str, str]] | None,
              payload_format: int | None = None) -> Message:
    """The message a bridge encoded, or a plain client's message as data (see module doc)."""
    pairs = list(user_properties or ())
    reserved = {name: value for name, value in pairs if name.startswith(RESERVED_PREFIX)
                and not name.startswith(ESCAPE_PREFIX)}
    kind = reserved.get(BODY_KEY)
    if kind is None and TYPES_KEY in reserved:
        kind = KIND_DATA  # a bridge's data body with typed properties
    body: Any
    if kind is None:
        if payload_format == 1:
            try:
                body, body_kind = payload.decode("utf-8"), BodyKind.VALUE
            except UnicodeDecodeError:
                _problem("the Payload Format Indicator says UTF-8 but the payload is not: "
                         "delivered as a data body")
                body, body_kind = bytes(payload), BodyKind.DATA
        else:
            body, body_kind = bytes(payload), BodyKind.DATA
        # a plain client's user properties: str values (the last of a repeated name wins)
        plain = {name: value for name, value in pairs if name not in reserved}
        return Message(body, {_unescape(k): v for k, v in plain.items()}, body_kind)
    body, body_kind = body_from(kind, payload)
    try:
        types = json.loads(reserved.get(TYPES_KEY, "{}"))
        if not isinstance(types, dict):
            _problem(f"{TYPES_KEY} is not a JSON object: property types ignored")
            types = {}
    except _BAD_JSON:
        _problem(f"{TYPES_KEY} is not valid JSON: property types ignored")
        types = {}
    properties: Properties = {}
    for name, text in pairs:
        if name in reserved:
            continue
        tag = types.get(name)
        try:
            properties[_unescape(name)] = parse_value(text, tag)
        except _BAD_JSON:
            # statement 30: a value that cannot be converted is left out
            _problem(f"property {name[:64]!r} declared {str(tag)[:20]!r} cannot be converted: "
                     f"left out")
    return Message(body, properties, body_kind)


def _unescape(name: str) -> str:
    return name[len(ESCAPE_PREFIX):] if name.startswith(ESCAPE_PREFIX) else name


# -- MQTT 3.1.1 ----------------------------------------------------------------------------------


def encode_envelope(message: Message) -> bytes:
    """One JSON object carrying kind, body and typed properties (MQTT 3.1.1 has no properties)."""
    kind, payload = body_payload(message)
    if kind == KIND_VALUE:
        body: Any = message.body()
    elif kind == KIND_DATA:
        body = base64.b64encode(payload).decode("ascii")
    else:
        body = to_json(message.body())
    envelope = {ENVELOPE_KEY: 1, "kind": kind, "body": body,
                "properties": {k: to_json(v) for k, v in message.properties().items()}}
    return json.dumps(envelope, ensure_ascii=True, separators=(",", ":"),
                      allow_nan=False).encode("ascii")


def encode_raw(message: Message) -> bytes:
    """Only the body: what a plain MQTT 3.1.1 client expects (properties are not carried)."""
    return body_payload(message)[1]


def decode_v311(payload: bytes | bytearray) -> Message:
    """An envelope back into the message; anything else is a plain client's data body."""
    if payload.startswith(_ENVELOPE_START):
        try:
            envelope = json.loads(payload)
            kind = envelope["kind"]
            raw = envelope["body"]
            if kind == KIND_DATA:
                body: Any = base64.b64decode(raw, validate=True)
                body_kind = BodyKind.DATA
            elif kind == KIND_VALUE and isinstance(raw, str):
                body, body_kind = raw, BodyKind.VALUE
            elif kind == KIND_JSON:
                body, body_kind = from_json(raw), BodyKind.VALUE
            else:
                _problem(f"envelope of kind {str(kind)[:40]!r} with a {type(raw).__name__} "
                         f"body: body given as the imp warning string")
                body, body_kind = f"Unhandled message body type {kind}", BodyKind.VALUE
            found = envelope.get("properties") or {}
            if not isinstance(found, dict):
                _problem("envelope properties are not a JSON object: none delivered")
                found = {}
            properties: Properties = {}
            for key, value in found.items():
                value = from_json(value)
                if isinstance(value, bool | int | float | str):
                    properties[key] = value
                else:
                    _problem(f"envelope property {key[:64]!r} of type {type(value).__name__} "
                             f"left out")
            return Message(body, properties, body_kind)
        except (*_BAD_JSON, KeyError, AttributeError) as exc:
            # not ours after all: hand it over untouched
            _problem(f"payload starts like a bridge envelope but is not one "
                     f"({_why(exc)}): delivered as a data body")
    return Message(bytes(payload), {}, BodyKind.DATA)
