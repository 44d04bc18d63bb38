"""IoT Hub MQTT topics and property bags: exact SDK forms, round trips, tolerant C2D parsing."""

from __future__ import annotations

import pytest

from bridge.backends.iothub import topics as t
from bridge.backends.iothub.topics import (
    PropertyBag,
    RouteKind,
    SystemProperties,
    TopicError,
    decode_property_bag,
    encode_property_bag,
)
from bridge.errors import AddressError

HOST = "myhub.azure-devices.net"
SDK_AGENT = "azure-iot-device-iothub-py/2.14.0(3.11.7;Linux 6.1;x86_64)"

# ------------------------------------------------------------------ CONNECT fields


@pytest.mark.parametrize(("kwargs", "expected"), [
    (dict(device_id="dev1"), f"{HOST}/dev1/?api-version=2021-04-12"),
    (dict(device_id="dev1", module_id="m1"), f"{HOST}/dev1/m1/?api-version=2021-04-12"),
    (dict(device_id="dev1", api_version=t.SDK_API_VERSION, device_client_type=SDK_AGENT),
     f"{HOST}/dev1/?api-version=2019-10-01&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0"
     "%283.11.7%3BLinux%206.1%3Bx86_64%29"),
    (dict(device_id="dev1", api_version=t.PNP_API_VERSION, device_client_type="x",
          model_id="dtmi:com:example;1"),
     f"{HOST}/dev1/?api-version=2020-09-30&DeviceClientType=x&model-id=dtmi%3Acom%3Aexample%3B1"),
    # ids are not URL-encoded in the username (the SDK's documented policy)
    (dict(device_id="a:b@c$"), f"{HOST}/a:b@c$/?api-version=2021-04-12"),
])
def test_username(kwargs: dict[str, str], expected: str) -> None:
    assert t.username(HOST, **kwargs) == expected
    parsed = t.parse_username(expected)
    assert (parsed.host, parsed.device_id, parsed.module_id) == (
        HOST, kwargs["device_id"], kwargs.get("module_id"))
    assert parsed.params["api-version"] == kwargs.get("api_version", t.DEFAULT_API_VERSION)
    if "device_client_type" in kwargs:
        assert parsed.params["DeviceClientType"] == kwargs["device_client_type"]


@pytest.mark.parametrize("text", ["hub/dev1?api-version=1", "hub/?api-version=1",
                                  "hub/a/b/c/?api-version=1", "hub/dev1/?x=1"])
def test_parse_username_refuses(text: str) -> None:
    with pytest.raises(TopicError):
        t.parse_username(text)


def test_client_id() -> None:
    assert t.client_id("dev1") == "dev1"
    assert t.client_id("dev1", "m1") == "dev1/m1"


@pytest.mark.parametrize(("device", "module", "bad"), [
    ("a+b", None, "'+'"), ("a#", None, "'#'"), ("a/b", None, "'/'"), ("", None, "non-empty"),
    ("d", "m#", "'#'"), ("d", "", "non-empty"),
])
def test_ids_that_break_topics_are_refused(device: str, module: str | None, bad: str) -> None:
    with pytest.raises(TopicError) as info:
        t.topic_base(device, module)
    assert bad in str(info.value)
    with pytest.raises(TopicError) as info:
        t.client_id(device, module)
    assert bad in str(info.value)


# ------------------------------------------------------------------ D2C


def test_d2c_topic_matches_what_the_sdk_was_seen_sending() -> None:
    # spec azure-iothub-protocols §2.3, observed from azure-iot-device 2.14.0
    system = SystemProperties(message_id="m-1", correlation_id="c-1",
                              content_type="application/json", content_encoding="utf-8",
                              expiry_time_utc="2030-01-01T00:00:00+00:00")
    topic = t.d2c_topic("dev1", system=system, application={"phase": "first", "a b": "c/d&e=f"})
    assert topic == (
        "devices/dev1/messages/events/%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson"
        "&%24.ce=utf-8&%24.exp=2030-01-01T00%3A00%3A00%2B00%3A00&a%20b=c%2Fd%26e%3Df"
        "&phase=first")


@pytest.mark.parametrize(("module", "expected"), [
    (None, "devices/dev1/messages/events/"),
    ("m1", "devices/dev1/modules/m1/messages/events/"),
])
def test_d2c_topic_empty_bag_keeps_trailing_slash(module: str | None, expected: str) -> None:
    assert t.d2c_topic("dev1", module) == expected


def test_system_property_order_is_the_sdks() -> None:
    system = SystemProperties(expiry_time_utc="e", interface_id="i", content_encoding="ce",
                              content_type="ct", user_id="u", correlation_id="c",
                              message_id="m", output_name="o")
    assert encode_property_bag(system) == (
        "%24.on=o&%24.mid=m&%24.cid=c&%24.uid=u&%24.ct=ct&%24.ce=ce&%24.ifid=i&%24.exp=e")


def test_application_properties_sorted_by_key_after_system() -> None:
    bag = encode_property_bag(SystemProperties(message_id="1"), {"b": "2", "a": "1", "B": "0"})
    assert bag == "%24.mid=1&B=0&a=1&b=2"


@pytest.mark.parametrize(("value", "text"), [
    ("s", "s"), (True, "true"), (False, "false"), (0, "0"), (-42, "-42"),
    (2**63 - 1, "9223372036854775807"), (1.5, "1.5"), (1e20, "1e+20"), (0.1, "0.1"),
    (float("inf"), "inf"), (None, None),
])
def test_property_text(value: object, text: str | None) -> None:
    assert t.property_text(value) == text  # type: ignore[arg-type]


def test_c2d_only_properties_refused_on_d2c() -> None:
    with pytest.raises(TopicError, match=r"\$.to, iothub-ack exist only on cloud-to-device"):
        t.d2c_topic("dev1", system=SystemProperties(to="/x", ack="full"))


@pytest.mark.parametrize(("application", "match"), [
    ({"$.mid": "x"}, "system properties"),
    ({"": "x"}, "non-empty"),
])
def test_bad_application_keys(application: dict[str, str], match: str) -> None:
    with pytest.raises(TopicError, match=match):
        encode_property_bag(None, application)


# ------------------------------------------------------------------ round trips

SPECIAL_VALUES = [
    "plain", "with space", "a&b", "k=v", "a/b", "100%", "%24.mid", "+plus+", "~tilde",
    "ünïcødé ✓", "日本語", "emoji 🚀", "", "?x=1", "#hash", "semi;colon", "quote\"'",
    "%", "%2", "%zz", "line\nbreak",
]


@pytest.mark.parametrize("text", SPECIAL_VALUES)
def test_special_characters_round_trip_in_names_and_values(text: str) -> None:
    name = f"n {text}" if text else "n"
    bag = encode_property_bag(None, {name: text, "other": "x"})
    assert " " not in bag and "+" not in bag.replace("%2B", "")  # %20 for spaces, never '+'
    assert "/" not in bag and "#" not in bag  # nothing that changes the topic structure
    decoded = decode_property_bag(bag)
    assert decoded.application == {name: text, "other": "x"}
    assert decoded.system == SystemProperties()


def test_system_properties_round_trip() -> None:
    system = SystemProperties(message_id="id/1 &=", correlation_id="ç", user_id="u",
                              content_type="application/json; charset=utf-8",
                              content_encoding="utf-8", expiry_time_utc="2030-01-01T00:00:00Z",
                              output_name="out", interface_id="urn:x", creation_time_utc="t",
                              component_name="c", diagnostic_id="d", diagnostic_context="ctx",
                              to="/devices/dev1/messages/devicebound", ack="full")
    decoded = decode_property_bag(encode_property_bag(system, {"k": "v"}))
    assert decoded == PropertyBag(system=system, application={"k": "v"})


def test_module_d2c_round_trip_through_module_input_topic() -> None:
    topic = t.d2c_topic("dev1", "m1", system=SystemProperties(output_name="o1"),
                        application={"x": "1"})
    assert topic.startswith("devices/dev1/modules/m1/messages/events/%24.on=o1&x=1")
    bag = topic.removeprefix("devices/dev1/modules/m1/messages/events/")
    parsed = t.parse_c2d_topic(f"devices/dev1/modules/m1/inputs/input%201/{bag}")
    assert (parsed.device_id, parsed.module_id, parsed.input_name) == ("dev1", "m1", "input 1")
    assert parsed.bag.system.output_name == "o1" and parsed.bag.application == {"x": "1"}


# ------------------------------------------------------------------ C2D as the hub sends it


@pytest.mark.parametrize(("topic", "system", "application"), [
    ("devices/dev1/messages/devicebound", SystemProperties(), {}),
    ("devices/dev1/messages/devicebound/", SystemProperties(), {}),
    ("devices/dev1/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2F"
     "devicebound&iothub-ack=full&k=v",
     SystemProperties(message_id="m1", to="/devices/dev1/messages/devicebound", ack="full"),
     {"k": "v"}),
    # the documented unencoded '$.' form is read the same way
    ("devices/dev1/messages/devicebound/$.mid=m1&$.cid=c1&$.ct=text%2Fplain&$.ce=utf-8",
     SystemProperties(message_id="m1", correlation_id="c1", content_type="text/plain",
                      content_encoding="utf-8"), {}),
    # bare key = null, "k=" = empty string, '+' is not a space, repeated key: last wins
    ("devices/dev1/messages/devicebound/nullkey&empty=&p=a+b&d=1&d=2",
     SystemProperties(), {"nullkey": None, "empty": "", "p": "a+b", "d": "2"}),
    # tolerated: '?' before the bag, empty segments, a raw '/' inside a value
    ("devices/dev1/messages/devicebound/?a=1&&b=x/y", SystemProperties(), {"a": "1", "b": "x/y"}),
    # unknown '$.' keys stay application properties (as azure-iot-device does)
    ("devices/dev1/messages/devicebound/%24.future=1", SystemProperties(), {"$.future": "1"}),
    ("devices/dev1/messages/deviceBound/a=1", SystemProperties(), {"a": "1"}),
])
def test_parse_c2d(topic: str, system: SystemProperties,
                   application: dict[str, str | None]) -> None:
    parsed = t.parse_c2d_topic(topic, device_id="dev1")
    assert parsed.device_id == "dev1" and parsed.module_id is None and parsed.input_name is None
    assert parsed.bag.system == system
    assert parsed.bag.application == application


@pytest.mark.parametrize(("topic", "match"), [
    ("devices/dev1/messages/events/a=1", "not a cloud-to-device topic"),
    ("$iothub/twin/res/200/?$rid=1", "not a cloud-to-device topic"),
    ("devices/dev2/messages/devicebound/", "for device 'dev2'"),
    ("devices//messages/devicebound/", "empty device id"),
    ("devices/dev1/modules/m2/inputs/i/", "for module 'm2'"),
    ("devices/dev1/modules/m1/inputs//a=1", "not a cloud-to-device topic"),
])
def test_parse_c2d_refuses(topic: str, match: str) -> None:
    with pytest.raises(TopicError, match=match):
        t.parse_c2d_topic(topic, device_id="dev1", module_id="m1")


def test_c2d_topic_builder_round_trips() -> None:
    system = SystemProperties(message_id="m 1", ack="positive")
    topic = t.c2d_topic("dev1", system=system, application={"a": "x y", "n": None, "i": 3})
    assert topic == "devices/dev1/messages/devicebound/%24.mid=m%201&iothub-ack=positive" \
                    "&a=x%20y&i=3&n"
    parsed = t.parse_c2d_topic(topic)
    assert parsed.bag.system == system
    assert parsed.bag.application == {"a": "x y", "n": None, "i": "3"}
    assert t.c2d_subscription("dev1") == "devices/dev1/messages/devicebound/#"
    assert t.module_input_subscription("dev1", "m1") == "devices/dev1/modules/m1/inputs/#"


# ------------------------------------------------------------------ contract properties & types


def test_to_message_properties_matches_what_amqp_exposed() -> None:
    bag = decode_property_bag("%24.mid=m&%24.to=%2Fx&iothub-ack=full&k=v&nullkey&n=5")
    props = t.to_message_properties(bag)
    assert props == {"k": "v", "nullkey": "", "n": "5", "iothub-ack": "full"}


def test_typed_properties_round_trip_between_bridges() -> None:
    app = {"i": 7, "neg": -(2**63), "f": 0.1, "big": 1e300, "b": True, "nb": False, "s": "7",
           "text": "true"}
    topic = t.d2c_topic("dev1", application=app, type_hints=True)
    bag = decode_property_bag(topic.removeprefix("devices/dev1/messages/events/"))
    restored = t.to_message_properties(bag, restore_types=True)
    assert restored == app
    assert {k: type(v) for k, v in restored.items()} == {k: type(v) for k, v in app.items()}
    # without the opt-in everything stays a string and the hint is visible as a property
    plain = t.to_message_properties(bag)
    assert plain["i"] == "7" and plain["b"] == "true" and t.TYPES_KEY in plain


def test_no_hint_when_everything_is_a_string() -> None:
    assert t.TYPES_KEY not in encode_property_bag(None, {"a": "1"}, type_hints=True)


@pytest.mark.parametrize(("bag", "expected"), [
    # broken JSON or unknown type names: the hint is ignored and left in place
    ("n=5&x-amqp-types=%7Bnope", {"n": "5", "x-amqp-types": "{nope"}),
    ("n=5&x-amqp-types=%7B%22n%22%3A%22date%22%7D", {"n": "5", "x-amqp-types": '{"n":"date"}'}),
    # a value that does not parse as its hinted type stays a string; others convert
    ("n=five&m=6&x-amqp-types=%7B%22n%22%3A%22int%22%2C%22m%22%3A%22int%22%7D",
     {"n": "five", "m": 6}),
    ("n=1_0&b=TRUE&f=1.50&x-amqp-types="
     "%7B%22n%22%3A%22int%22%2C%22b%22%3A%22bool%22%2C%22f%22%3A%22float%22%7D",
     {"n": "1_0", "b": "TRUE", "f": "1.50"}),
    ("n=99999999999999999999&x-amqp-types=%7B%22n%22%3A%22int%22%7D",
     {"n": "99999999999999999999"}),
    # a hint for a key that is absent is harmless
    ("a=1&x-amqp-types=%7B%22zz%22%3A%22int%22%7D", {"a": "1"}),
])
def test_restore_types_is_defensive(bag: str, expected: dict[str, object]) -> None:
    assert t.to_message_properties(decode_property_bag(bag), restore_types=True) == expected


def test_hint_key_is_reserved_only_when_hinting() -> None:
    with pytest.raises(TopicError, match="reserved"):
        encode_property_bag(None, {t.TYPES_KEY: "x", "n": 1}, type_hints=True)
    assert encode_property_bag(None, {t.TYPES_KEY: "x"}) == "x-amqp-types=x"


def test_hub_message_size() -> None:
    system = SystemProperties(message_id="abc", content_type="ü")  # 3 + 2 bytes
    size = t.hub_message_size(b"12345", system, {"key": "value", "n": 10, "nul": None})
    assert size == 5 + 3 + 2 + (3 + 5) + (1 + 2) + 3


# ------------------------------------------------------------------ legacy AMQP paths


@pytest.mark.parametrize(("role", "path", "kind", "device", "module", "topic"), [
    ("sender", "/devices/dev1/messages/events", RouteKind.TELEMETRY, "dev1", None,
     "devices/dev1/messages/events/"),
    ("sender", "devices/dev1/messages/events/", RouteKind.TELEMETRY, "dev1", None,
     "devices/dev1/messages/events/"),
    ("sender", "amqps://myhub.azure-devices.net/devices/dev1/messages/events",
     RouteKind.TELEMETRY, "dev1", None, "devices/dev1/messages/events/"),
    ("receiver", "/devices/dev1/messages/devicebound", RouteKind.C2D, "dev1", None,
     "devices/dev1/messages/devicebound/#"),
    ("receiver", "/devices/dev1/messages/deviceBound", RouteKind.C2D, "dev1", None,
     "devices/dev1/messages/devicebound/#"),
    ("sender", "/devices/dev1/modules/m1/messages/events", RouteKind.TELEMETRY, "dev1", "m1",
     "devices/dev1/modules/m1/messages/events/"),
    ("receiver", "/devices/dev1/modules/m1/messages/devicebound", RouteKind.MODULE_INPUT,
     "dev1", "m1", "devices/dev1/modules/m1/inputs/#"),
    ("receiver", "/devices/dev1/modules/m1/messages/events", RouteKind.MODULE_INPUT,
     "dev1", "m1", "devices/dev1/modules/m1/inputs/#"),
    ("sender", "$cbs", RouteKind.CBS, None, None, ""),
    ("receiver", "$cbs", RouteKind.CBS, None, None, ""),
])
def test_route_for_path(role: str, path: str, kind: RouteKind, device: str | None,
                        module: str | None, topic: str) -> None:
    route = t.route_for_path(role, path)
    assert (route.kind, route.device_id, route.module_id, route.topic) == (
        kind, device, module, topic)


@pytest.mark.parametrize(("role", "path", "why", "kwargs"), [
    ("receiver", "/devices/dev1/messages/events", "a receiver cannot attach", {}),
    ("sender", "/devices/dev1/messages/devicebound", "a sender cannot attach", {}),
    ("sender", "/devices/dev1/twin", "twins are not supported", {}),
    ("receiver", "/devices/dev1/methods/devicebound", "direct methods", {}),
    ("sender", "/messages/serviceBound/feedback", "not a device path", {}),
    ("sender", "/queue/x", "not a device path", {}),
    ("sender", "/devices/dev1/other", "unknown IoT Hub path", {}),
    ("sender", "https://hub/devices/dev1/messages/events", "scheme 'https'", {}),
    ("sender", "/devices/dev2/messages/events", "for device 'dev2'", {"device_id": "dev1"}),
    ("sender", "/devices/dev1/modules/m2/messages/events", "for module 'm2'",
     {"device_id": "dev1", "module_id": "m1"}),
    ("sender", "/devices/dev1/messages/events", "use the module path",
     {"device_id": "dev1", "module_id": "m1"}),
    ("sender", "/devices/a+b/messages/events", "cannot appear in an MQTT topic", {}),
    ("receiver", "/devices/dev#/messages/devicebound", "cannot appear in an MQTT topic", {}),
])
def test_route_refusals_name_the_supported_paths(role: str, path: str, why: str,
                                                 kwargs: dict[str, str]) -> None:
    with pytest.raises(AddressError) as info:
        t.route_for_path(role, path, **kwargs)
    text = str(info.value)
    assert why in text
    assert "/devices/{deviceId}/messages/events (sender)" in text
    assert "/devices/{deviceId}/messages/devicebound (receiver)" in text
    assert isinstance(info.value, ValueError)


def test_route_role_is_checked() -> None:
    with pytest.raises(ValueError, match="role"):
        t.route_for_path("publisher", "/devices/d/messages/events")
