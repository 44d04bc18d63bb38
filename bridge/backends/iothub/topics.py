"""IoT Hub's MQTT device surface as pure functions: CONNECT fields, topics and property bags.

What goes on the wire is what azure-iot-device 2.14 sends (verified against the real SDK by
tests/integration/iothub/test_sdk_wire_format.py); spec azure-iothub-protocols §2:

- client id ``{deviceId}`` or ``{deviceId}/{moduleId}``; username
  ``{hub}/{clientId}/?api-version=...[&DeviceClientType=...][&model-id=...]`` where host and ids
  are *not* URL-encoded and the query values are;
- D2C: ``devices/{d}[/modules/{m}]/messages/events/{bag}`` (trailing ``/`` even for an empty bag);
- C2D: subscribe ``devices/{d}/messages/devicebound/#``; messages arrive on
  ``devices/{d}/messages/devicebound/{bag}``; module inputs on
  ``devices/{d}/modules/{m}/inputs/{input}/{bag}``;
- property bag: ``key=value&...``, keys and values URL-encoded with ``quote(safe="")`` (``%20``
  for a space, never ``+``); system properties first under ``$.`` keys written ``%24.mid`` etc.,
  then application properties sorted by key. ``null`` is a bare key, ``""`` is ``key=``.

Property values on IoT Hub are strings. Outgoing int/float/bool values are written as text
(`property_text`); incoming values stay strings unless both ends opt in to the ``x-amqp-types``
hint (see docs/backends/iothub.md, "Property types").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from urllib.parse import quote, unquote, urlencode

from bridge.contract.message import INT64_MAX, INT64_MIN, Properties, PropertyValue
from bridge.errors import AddressError

#: api-version azure-iot-device 2.14 sends (2020-09-30 when a dtmi model id is given).
SDK_API_VERSION = "2019-10-01"
PNP_API_VERSION = "2020-09-30"
#: The version Microsoft's MQTT documentation asks for; the bridge's default.
DEFAULT_API_VERSION = "2021-04-12"
MQTT_PORT = 8883
#: Hub limits (bytes, counted as in `hub_message_size`).
MAX_D2C_SIZE = 256 * 1024
MAX_C2D_SIZE = 64 * 1024
#: Application property carrying the opt-in type hints (same name and JSON shape as the MQTT
#: backend's user property): ``{"key": "int" | "float" | "bool"}``.
TYPES_KEY = "x-amqp-types"
ACK_KEY = "iothub-ack"
SYSTEM_PREFIX = "$."


class TopicError(ValueError):
    """A topic or property bag is not one this module can read or build (the text says why)."""


@dataclass(frozen=True, slots=True)
class SystemProperties:
    """IoT Hub system properties; the metadata ``key`` is the MQTT property-bag key.

    Field order is the order azure-iot-device writes them on D2C, followed by the keys only the
    C SDK writes, then the two that exist only on C2D (``to`` and ``ack``).
    """

    output_name: str | None = field(default=None, metadata={"key": "$.on"})
    message_id: str | None = field(default=None, metadata={"key": "$.mid"})
    correlation_id: str | None = field(default=None, metadata={"key": "$.cid"})
    user_id: str | None = field(default=None, metadata={"key": "$.uid"})
    content_type: str | None = field(default=None, metadata={"key": "$.ct"})
    content_encoding: str | None = field(default=None, metadata={"key": "$.ce"})
    interface_id: str | None = field(default=None, metadata={"key": "$.ifid"})
    expiry_time_utc: str | None = field(default=None, metadata={"key": "$.exp"})
    creation_time_utc: str | None = field(default=None, metadata={"key": "$.ctime"})
    component_name: str | None = field(default=None, metadata={"key": "$.sub"})
    diagnostic_id: str | None = field(default=None, metadata={"key": "$.diagid"})
    diagnostic_context: str | None = field(default=None, metadata={"key": "$.diagctx"})
    to: str | None = field(default=None, metadata={"key": "$.to", "c2d_only": True})
    ack: str | None = field(default=None, metadata={"key": ACK_KEY, "c2d_only": True})

    def items(self) -> list[tuple[str, str]]:
        """``(bag key, value)`` for every property that is set, in wire order."""
        return [(f.metadata["key"], value) for f in fields(self)
                if (value := getattr(self, f.name)) is not None]


_FIELD_BY_KEY = {f.metadata["key"]: f.name for f in fields(SystemProperties)}
_C2D_ONLY = frozenset(f.metadata["key"] for f in fields(SystemProperties)
                      if f.metadata.get("c2d_only"))


@dataclass(frozen=True, slots=True)
class PropertyBag:
    """A decoded bag: system properties and application properties (``None`` = bare key)."""

    system: SystemProperties = field(default_factory=SystemProperties)
    application: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CloudMessageTopic:
    """What a C2D (or module input) topic says: who it is for, the input name, the bag."""

    device_id: str
    module_id: str | None
    input_name: str | None
    bag: PropertyBag


# --------------------------------------------------------------------------- CONNECT fields


def client_id(device_id: str, module_id: str | None = None) -> str:
    """MQTT client id: the device id, or ``{deviceId}/{moduleId}`` for a module."""
    _check_id("device id", device_id)
    if module_id is None:
        return device_id
    _check_id("module id", module_id)
    return f"{device_id}/{module_id}"


def username(host: str, device_id: str, module_id: str | None = None, *,
             api_version: str = DEFAULT_API_VERSION, device_client_type: str | None = None,
             model_id: str | None = None) -> str:
    """MQTT username; the SAS ``HostName`` goes here even when connecting via a gateway.

    With ``api_version=SDK_API_VERSION`` and the SDK's user agent as *device_client_type* this
    is exactly what azure-iot-device sends.
    """
    params = [("api-version", api_version)]
    if device_client_type:
        params.append(("DeviceClientType", device_client_type))
    if model_id:
        params.append(("model-id", model_id))
    return f"{host}/{client_id(device_id, module_id)}/?{urlencode(params, quote_via=quote)}"


@dataclass(frozen=True, slots=True)
class Username:
    host: str
    device_id: str
    module_id: str | None
    params: dict[str, str]


def parse_username(text: str) -> Username:
    """Split an IoT Hub MQTT username (for a hub stand-in and for comparing clients)."""
    head, sep, query = text.partition("/?")
    if not sep:
        raise TopicError("username has no '/?' before its query (expected "
                         "{host}/{deviceId}[/{moduleId}]/?api-version=...)")
    parts = head.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise TopicError("username must be {host}/{deviceId}[/{moduleId}]/?api-version=...")
    bag = decode_pairs(query)
    params = {key: value if value is not None else "" for key, value in bag}
    if "api-version" not in params:
        raise TopicError("username has no api-version")
    return Username(host=parts[0], device_id=parts[1],
                    module_id=parts[2] if len(parts) == 3 else None, params=params)


# --------------------------------------------------------------------------- topics


def topic_base(device_id: str, module_id: str | None = None) -> str:
    """``devices/{d}`` or ``devices/{d}/modules/{m}``; ids are never URL-encoded."""
    _check_id("device id", device_id)
    if module_id is None:
        return f"devices/{device_id}"
    _check_id("module id", module_id)
    return f"devices/{device_id}/modules/{module_id}"


def d2c_topic(device_id: str, module_id: str | None = None, *,
              system: SystemProperties | None = None,
              application: Mapping[str, PropertyValue] | None = None,
              type_hints: bool = False) -> str:
    """The PUBLISH topic for one device-to-cloud message (bag included)."""
    system = system or SystemProperties()
    c2d_only = [key for key, _ in system.items() if key in _C2D_ONLY]
    if c2d_only:
        raise TopicError(f"{', '.join(c2d_only)} exist only on cloud-to-device messages")
    bag = encode_property_bag(system, application, type_hints=type_hints)
    return f"{topic_base(device_id, module_id)}/messages/events/{bag}"


def c2d_topic(device_id: str, *, system: SystemProperties | None = None,
              application: Mapping[str, PropertyValue | None] | None = None) -> str:
    """A topic as the hub publishes C2D messages (for a hub stand-in and for tests)."""
    bag = encode_property_bag(system, application)
    return f"{topic_base(device_id)}/messages/devicebound/{bag}"


def c2d_subscription(device_id: str) -> str:
    """The SUBSCRIBE filter for cloud-to-device messages."""
    return f"{topic_base(device_id)}/messages/devicebound/#"


def module_input_subscription(device_id: str, module_id: str) -> str:
    """The SUBSCRIBE filter for IoT Edge module inputs (what azure-iot-device uses)."""
    return f"{topic_base(device_id, module_id)}/inputs/#"


def parse_c2d_topic(topic: str, *, device_id: str | None = None,
                    module_id: str | None = None) -> CloudMessageTopic:
    """Read a C2D or module-input topic; tolerant of what a real hub sends.

    Accepted: ``devices/{d}/messages/devicebound`` with or without a trailing ``/`` and bag,
    and ``devices/{d}/modules/{m}/inputs/{input}[/{bag}]``. The bag is everything after that
    prefix, so a stray unencoded ``/`` in it does not lose properties. Given *device_id* /
    *module_id*, a topic for another identity is refused.
    """
    parts = topic.split("/")
    if len(parts) >= 4 and parts[0] == "devices" and parts[2] == "messages" \
            and parts[3].lower() == "devicebound":
        dev, mod, input_name, rest = parts[1], None, None, parts[4:]
    elif len(parts) >= 6 and parts[0] == "devices" and parts[2] == "modules" \
            and parts[4] == "inputs" and parts[5]:
        dev, mod, input_name, rest = parts[1], parts[3], unquote(parts[5]), parts[6:]
    else:
        raise TopicError(
            f"not a cloud-to-device topic: {_shorten(topic)!r}; expected "
            "devices/{deviceId}/messages/devicebound/{bag} or "
            "devices/{deviceId}/modules/{moduleId}/inputs/{input}/{bag}")
    if not dev:
        raise TopicError("cloud-to-device topic has an empty device id")
    if device_id is not None and dev != device_id:
        raise TopicError(f"topic is for device {dev!r}, this connection is {device_id!r}")
    if module_id is not None and mod is not None and mod != module_id:
        raise TopicError(f"topic is for module {mod!r}, this connection is {module_id!r}")
    return CloudMessageTopic(device_id=dev, module_id=mod, input_name=input_name,
                             bag=decode_property_bag("/".join(rest)))


# --------------------------------------------------------------------------- property bags


def property_text(value: PropertyValue | None) -> str | None:
    """How a property value is written into a bag: str as is, bool as ``true``/``false``
    (what imp's Squirrel printed), int in decimal, float as Python's shortest round-trip
    ``repr`` (``1.5``, ``1e+20``, ``inf``, ``nan``). ``None`` stays None (a bare key)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    raise TypeError(f"property values must be str, int, float or bool, got {type(value).__name__}")


def encode_property_bag(system: SystemProperties | None = None,
                        application: Mapping[str, PropertyValue | None] | None = None, *,
                        type_hints: bool = False) -> str:
    """``key=value&...``: system properties in wire order, then application ones sorted by key.

    Application keys must be non-empty and must not start with ``$.`` (the system namespace).
    *type_hints* adds ``x-amqp-types`` naming every non-str value's type so another bridge
    can restore it with ``decode(..., restore_types=True)``.
    """
    pairs: list[tuple[str, str | None]] = list((system or SystemProperties()).items())
    app = dict(application or {})
    for key in app:
        if not isinstance(key, str) or key == "":
            raise TopicError("application property names must be non-empty str")
        if key.startswith(SYSTEM_PREFIX):
            raise TopicError(f"application property {key!r}: names starting with '$.' are "
                             "IoT Hub system properties")
    if type_hints:
        if TYPES_KEY in app:
            raise TopicError(f"{TYPES_KEY!r} is reserved for the bridge's type hints")
        hints = {key: _type_name(value) for key, value in app.items()
                 if value is not None and not isinstance(value, str)}
        if hints:
            app[TYPES_KEY] = json.dumps(hints, separators=(",", ":"), sort_keys=True,
                                        ensure_ascii=False)
    pairs.extend(sorted((key, property_text(value)) for key, value in app.items()))
    return "&".join(quote(key, safe="") if value is None
                    else f"{quote(key, safe='')}={quote(value, safe='')}"
                    for key, value in pairs)


def decode_pairs(bag: str) -> list[tuple[str, str | None]]:
    """Split ``k=v&k2&k3=`` into URL-decoded pairs (bare key -> None), in order.

    ``+`` stays ``+`` (IoT Hub never form-encodes), empty segments are skipped, a leading ``?``
    is ignored and only the first ``=`` of a pair separates key from value.
    """
    text = bag[1:] if bag.startswith("?") else bag
    pairs: list[tuple[str, str | None]] = []
    for segment in text.split("&"):
        if not segment:
            continue
        key, sep, value = segment.partition("=")
        pairs.append((unquote(key), unquote(value) if sep else None))
    return pairs


def decode_property_bag(bag: str) -> PropertyBag:
    """Read a bag: known ``$.`` keys (``$.mid`` or ``%24.mid``) and ``iothub-ack`` become
    system properties, everything else (unknown ``$.`` keys too, as azure-iot-device does) an
    application property. A repeated key keeps its last value."""
    system: dict[str, str | None] = {}
    application: dict[str, str | None] = {}
    for key, value in decode_pairs(bag):
        name = _FIELD_BY_KEY.get(key)
        if name is not None:
            system[name] = value if value is not None else ""
        else:
            application[key] = value
    return PropertyBag(system=replace(SystemProperties(), **system), application=application)


def to_message_properties(bag: PropertyBag, *, restore_types: bool = False) -> Properties:
    """The application properties an AMQP receiver would have seen (contract `Properties`).

    Over AMQP, ``iothub-ack`` was an application property and the other system properties sat
    in the AMQP properties section, which imp's ``message.properties()`` did not expose; so
    ``ack`` is added back and the rest is left out. A bare key (``null``) becomes ``""``
    because contract property values cannot be None. With *restore_types*, a valid
    ``x-amqp-types`` hint converts the values it names and is removed; an invalid hint, or a
    value that does not parse as its hinted type, leaves the value as a string.
    """
    props: Properties = {key: ("" if value is None else value)
                         for key, value in bag.application.items()}
    if bag.system.ack is not None:
        props[ACK_KEY] = bag.system.ack
    if restore_types and TYPES_KEY in props:
        hints = _parse_hints(str(props[TYPES_KEY]))
        if hints is not None:
            del props[TYPES_KEY]
            for key, type_name in hints.items():
                if key in props:
                    props[key] = _convert(str(props[key]), type_name)
    return props


def hub_message_size(payload: bytes, system: SystemProperties | None = None,
                     application: Mapping[str, PropertyValue | None] | None = None) -> int:
    """Bytes the hub counts against the 256 KB / 64 KB limits: the body, the system property
    values and the names and values of the application properties (UTF-8)."""
    size = len(payload)
    size += sum(len(value.encode()) for _, value in (system or SystemProperties()).items())
    for key, value in (application or {}).items():
        size += len(key.encode()) + len((property_text(value) or "").encode())
    return size


# --------------------------------------------------------------------------- AMQP link paths


class RouteKind(StrEnum):
    TELEMETRY = "telemetry"  # sender: device-to-cloud
    C2D = "c2d"  # receiver: cloud-to-device
    MODULE_INPUT = "module-input"  # receiver: IoT Edge module input
    CBS = "cbs"  # $cbs put-token node: emulated by the backend, nothing on MQTT


@dataclass(frozen=True, slots=True)
class HubRoute:
    """Where an AMQP link path lands on MQTT. ``topic`` is the D2C topic prefix (bag goes
    after it) for TELEMETRY, the subscription filter for C2D / MODULE_INPUT, "" for CBS."""

    kind: RouteKind
    device_id: str | None
    module_id: str | None
    topic: str


SUPPORTED_PATHS = (
    "$cbs (sender and receiver: put-token, answered by the bridge)",
    "/devices/{deviceId}/messages/events (sender)",
    "/devices/{deviceId}/messages/devicebound (receiver)",
    "/devices/{deviceId}/modules/{moduleId}/messages/events (sender: module output)",
    "/devices/{deviceId}/modules/{moduleId}/messages/devicebound or .../messages/events "
    "(receiver: module inputs)",
)


def route_for_path(role: str, path: str, *, device_id: str | None = None,
                   module_id: str | None = None) -> HubRoute:
    """Map an AMQP link address (path, or ``amqps://host/path``) to its MQTT topic.

    *role* is ``"sender"`` or ``"receiver"``. Given *device_id* (and *module_id*), a path for
    another identity is refused: MQTT allows one identity per connection. Every refusal is an
    `AddressError` that names the supported paths.
    """
    if role not in ("sender", "receiver"):
        raise ValueError(f"role must be 'sender' or 'receiver', got {role!r}")
    text = path.strip()
    if text == "$cbs":
        return HubRoute(RouteKind.CBS, device_id, module_id, "")
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() not in ("amqps", "amqp"):
            _refuse(path, f"scheme {scheme!r} is not amqps")
        text = "/" + rest.partition("/")[2]
    parts = [p for p in text.strip("/").split("/")]
    if len(parts) < 2 or parts[0] != "devices" or not parts[1]:
        _refuse(path, "not a device path")
    dev = parts[1]
    mod: str | None = None
    tail = parts[2:]
    if len(tail) >= 2 and tail[0] == "modules":
        mod, tail = tail[1], tail[2:]
        if not mod:
            _refuse(path, "empty module id")
    leaf = "/".join(tail).lower()
    try:
        if device_id is not None and dev != device_id:
            _refuse(path, f"it is for device {dev!r} but this connection authenticates as "
                          f"{device_id!r} (one identity per MQTT connection)")
        if mod is not None and module_id is not None and mod != module_id:
            _refuse(path, f"it is for module {mod!r} but this connection is module "
                          f"{module_id!r}")
        if mod is None and module_id is not None:
            _refuse(path, f"this connection is module {module_id!r}; use the module path")
        if leaf == "messages/events" and role == "sender":
            return HubRoute(RouteKind.TELEMETRY, dev, mod,
                            f"{topic_base(dev, mod)}/messages/events/")
        if leaf == "messages/devicebound" and role == "receiver" and mod is None:
            return HubRoute(RouteKind.C2D, dev, None, c2d_subscription(dev))
        if leaf in ("messages/devicebound", "messages/events") and role == "receiver" and mod:
            return HubRoute(RouteKind.MODULE_INPUT, dev, mod, module_input_subscription(dev, mod))
    except TopicError as exc:
        _refuse(path, str(exc))
    if leaf in ("messages/events", "messages/devicebound"):
        _refuse(path, f"a {role} cannot attach to it")
    if leaf in ("methods/devicebound", "twin"):
        _refuse(path, "direct methods and twins are not supported by the bridge")
    _refuse(path, "unknown IoT Hub path")
    raise AssertionError("unreachable")  # _refuse always raises


# --------------------------------------------------------------------------- helpers


def _refuse(path: str, why: str) -> None:
    raise AddressError(f"IoT Hub path {_shorten(path)!r}: {why}. Supported: "
                       + "; ".join(SUPPORTED_PATHS))


def _check_id(kind: str, value: str) -> None:
    # Ids are put into topics unencoded (as the hub requires), so anything that changes the
    # topic structure or is a wildcard must be refused here rather than mis-route.
    if not isinstance(value, str) or value == "":
        raise TopicError(f"{kind} must be a non-empty str")
    bad = next((ch for ch in value if ch in "/+#\x00"), None)
    if bad is not None:
        raise TopicError(f"{kind} {value!r} contains {bad!r}, which cannot appear in an MQTT "
                         "topic level")


def _type_name(value: PropertyValue) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    raise TypeError(f"property values must be str, int, float or bool, got {type(value).__name__}")


def _parse_hints(text: str) -> dict[str, str] | None:
    try:
        hints = json.loads(text)
    except ValueError:
        return None
    if not isinstance(hints, dict) or not all(
            isinstance(k, str) and v in ("int", "float", "bool") for k, v in hints.items()):
        return None
    return hints


def _convert(text: str, type_name: str) -> PropertyValue:
    try:
        if type_name == "int":
            number = int(text, 10)
            # int() also takes "1_0", " 1" and "+1": only accept what property_text writes,
            # and only values the contract can carry (signed 64-bit).
            ok = str(number) == text and INT64_MIN <= number <= INT64_MAX
            return number if ok else text
        if type_name == "float":
            real = float(text)
            # float() also takes "1_0" and " 1"; only accept what property_text writes.
            return real if repr(real) == text or math.isnan(real) else text
        if type_name == "bool" and text in ("true", "false"):
            return text == "true"
    except ValueError:
        pass
    return text


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
