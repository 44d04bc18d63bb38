"""The iothub backend's pure parts: settings checks, identity/endpoint resolution, the CBS
request checks and replies, and the D2C / C2D codec."""

from __future__ import annotations

import base64
import time

import pytest

from bridge import Settings
from bridge.backends.iothub import cbs, codec, sas, topics
from bridge.backends.iothub.identity import Identity, mqtt_username, plan_for
from bridge.contract.message import BodyKind, Message
from bridge.errors import ConfigError
from tests.conftest import register_secret

KEY = register_secret(base64.b64encode(b"unit-test-device-key-32-bytes!!!").decode())
CS = register_secret(f"HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey={KEY}")
HOST = "hub.azure-devices.net"
DEV = Identity(HOST, "dev1")


def iothub(**values: object) -> Settings:
    return Settings(backend="iothub", iothub=values)


# -- settings ----------------------------------------------------------------------------------


def test_defaults_are_the_sdk_choices() -> None:
    s = iothub().iothub
    assert (s.keepalive, s.clean_session, s.token_ttl, s.api_version) == (60, False, 3600,
                                                                          "2021-04-12")
    assert (s.release, s.max_delivery_count, s.type_hints, s.reconnect) == ("redeliver", 10,
                                                                            False, "off")


@pytest.mark.parametrize(("values", "problem"), [
    ({"connection_string": "HostName=h;DeviceId=d"}, "no credential"),
    ({"connection_string": "HostName=h;DeviceId=d;x509=true"}, "X.509"),
    ({"connection_string": CS, "device_id": "d2"}, "not both"),
    ({"module_id": "m"}, "module_id needs device_id"),
    ({"shared_access_key": KEY}, "needs device_id"),
    ({"device_id": "d", "shared_access_key": "not base64!"}, "not valid base64"),
    ({"device_id": "d", "shared_access_key_name": "p"}, "needs shared_access_key"),
    ({"device_id": "a/b"}, "device_id"),
    ({"device_id": "d#"}, "device_id"),
    ({"hostname": "https://hub"}, "plain host name"),
    ({"gateway_host": "gw:8883"}, "plain host name"),
    ({"keepalive": 1200}, "keepalive"),
    ({"reconnect_min_delay": 5, "reconnect_max_delay": 1}, "reconnect_min_delay"),
])
def test_bad_settings_name_the_problem_and_never_the_secret(values: dict[str, object],
                                                            problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        iothub(**values)
    text = str(info.value)
    assert problem in text
    assert KEY not in text and "not base64!" not in text


def test_secrets_are_masked_in_repr() -> None:
    settings = iothub(connection_string=CS)
    assert KEY not in repr(settings) and KEY not in str(settings.iothub)


# -- identity and endpoint -----------------------------------------------------------------------


def test_plan_from_a_connection_string_with_gateway() -> None:
    settings = iothub(connection_string=CS + ";GatewayHostName=edge.local").iothub
    plan = plan_for(settings, "amqps://ignored.example")
    assert plan.host == HOST and plan.identity == DEV
    assert plan.self_auth and plan.can_sign and plan.key is not None
    assert (plan.endpoint.host, plan.endpoint.port, plan.endpoint.tls) == ("edge.local", 8883,
                                                                           True)
    assert KEY not in repr(plan)


def test_plan_for_cbs_takes_the_hub_from_the_url() -> None:
    plan = plan_for(iothub(gateway_host="localhost", port=18883).iothub, f"amqps://{HOST}")
    assert plan.host == HOST and plan.identity is None and not plan.self_auth
    assert (plan.endpoint.host, plan.endpoint.port) == ("localhost", 18883)


def test_plan_websockets_and_missing_host() -> None:
    plan = plan_for(iothub(hostname=HOST, websockets=True).iothub, "")
    assert (plan.endpoint.scheme, plan.endpoint.port, plan.endpoint.ws_path) == (
        "wss", 443, "/$iothub/websocket")
    with pytest.raises(ValueError, match="no IoT Hub host name"):
        plan_for(iothub().iothub, "amqps://user:pw@/x")


def test_plan_with_a_pre_made_token_cannot_sign() -> None:
    token = register_secret(sas.generate_token(DEV.audience, KEY, int(time.time()) + 60))
    cs = f"HostName={HOST};DeviceId=dev1;SharedAccessSignature={token}"
    plan = plan_for(iothub(connection_string=cs).iothub, "amqps://x")
    assert plan.self_auth and not plan.can_sign and plan.token is not None


def test_mqtt_username_and_client_id() -> None:
    settings = iothub(device_client_type="").iothub
    assert mqtt_username(Identity(HOST, "d1", "m1"), settings) == \
        f"{HOST}/d1/m1/?api-version=2021-04-12"
    assert Identity(HOST, "d1", "m1").client_id == "d1/m1"
    assert "DeviceClientType=amqp-mqtt-bridge%2F" in mqtt_username(DEV, iothub().iothub)


# -- CBS -----------------------------------------------------------------------------------------


def put(token: object, **props: object) -> Message:
    request = {"operation": "put-token", "type": sas.LEGACY_CBS_TOKEN_TYPE,
               "name": f"{HOST}/devices/dev1", **props}
    return Message(token, {k: v for k, v in request.items() if v is not None})


def test_a_valid_put_token_names_identity_and_expiry() -> None:
    expiry = int(time.time()) + 100
    token = sas.generate_token(DEV.audience, KEY, expiry)
    request = cbs.parse_put_token(put(token), host=HOST.upper())
    assert request.identity == DEV and request.expiry == expiry and request.text == token
    assert token not in repr(request)
    # the SDKs' token type, bytes bodies, module audiences and the legacy token shape pass too
    mod = sas.generate_token(f"{HOST}/devices/dev1/modules/m1", KEY, expiry)
    assert cbs.parse_put_token(put(mod.encode(), type=sas.CBS_TOKEN_TYPE,
                                   name=f"amqps://{HOST}/devices/dev1/modules/m1"),
                               host=HOST).identity == Identity(HOST, "dev1", "m1")
    legacy = sas.legacy_device_token(HOST, "dev1", KEY, expiry)
    assert cbs.parse_put_token(put(legacy), host=HOST).identity == DEV


@pytest.mark.parametrize(("message", "status", "text"), [
    (put("t", operation="delete-token"), 400, "only 'put-token'"),
    (put("t", operation=None), 400, "None"),
    (put("t", type="jwt"), 400, "token type"),
    (put("t", name=None), 400, "no 'name'"),
    (put("t", name=f"{HOST}/modules/x"), 400, "audience must be"),
    (put("t", name=f"{HOST}/devices/a+b"), 400, "'+'"),
    (put("t", name="other.example/devices/dev1"), 401, "names hub"),
    (put(42), 400, "body must be the SAS token"),
    (put("SharedAccessSignature sr=x"), 401, "missing field"),
])
def test_bad_put_tokens_are_refused_with_a_status(message: Message, status: int,
                                                  text: str) -> None:
    with pytest.raises(cbs.CBSError) as info:
        cbs.parse_put_token(message, host=HOST)
    assert info.value.status == status and text in info.value.description


def test_a_put_token_for_another_audience_or_expired_is_401() -> None:
    other = sas.generate_token(f"{HOST}/devices/dev10", KEY, int(time.time()) + 100)
    with pytest.raises(cbs.CBSError, match="not for") as info:
        cbs.parse_put_token(put(other), host=HOST)
    assert other not in info.value.description
    old = sas.generate_token(DEV.audience, KEY, int(time.time()) - 1)
    with pytest.raises(cbs.CBSError, match="expired"):
        cbs.parse_put_token(put(old), host=HOST)
    hub_wide = sas.generate_token(HOST, KEY, int(time.time()) + 100, key_name="device")
    assert cbs.parse_put_token(put(hub_wide), host=HOST).key_name == "device"


def test_replies_carry_int_status_and_str_description() -> None:
    reply = cbs.reply(200, "OK")
    assert reply.properties() == {"status-code": 200, "status-description": "OK"}
    assert type(reply.properties()["status-code"]) is int and reply.body() == ""
    assert [cbs.status_for_connack(c) for c in (0x86, 0x87, 0x88, 0x85, 0x99, None)] == [
        401, 401, 503, 400, 500, 500]


# -- codec ---------------------------------------------------------------------------------------


def test_d2c_bodies_and_properties_as_the_hub_gets_them() -> None:
    value = codec.encode_d2c(Message.value("héllo", {"n": 1, "ok": True, "r": 0.5}), DEV)
    assert value.topic == "devices/dev1/messages/events/n=1&ok=true&r=0.5"
    assert value.payload == "héllo".encode()
    data = codec.encode_d2c(Message.data(b"\x00\xff"), DEV)
    assert (data.topic, data.payload) == ("devices/dev1/messages/events/", b"\x00\xff")
    # a non-str AMQP value (relayed, not creatable by agent code) travels as JSON
    other = codec.encode_d2c(Message([1, {"a": None}]), Identity(HOST, "d", "m"))
    assert other.topic == "devices/d/modules/m/messages/events/%24.ct=application%2Fjson" \
                          "&%24.ce=utf-8"
    assert other.payload == b'[1,{"a":null}]'


def test_d2c_refusals() -> None:
    with pytest.raises(codec.HubCodecError, match="262144") as info:
        codec.encode_d2c(Message.data(b"x" * topics.MAX_D2C_SIZE, {"k": "v"}), DEV)
    assert info.value.condition == "amqp:link:message-size-exceeded"
    with pytest.raises(codec.HubCodecError, match="system properties") as info:
        codec.encode_d2c(Message.value("x", {"$.mid": "1"}), DEV)
    assert info.value.condition == "amqp:invalid-field"
    with pytest.raises(codec.HubCodecError, match="reserved"):
        codec.encode_d2c(Message.value("x", {"x-amqp-body": "v"}), DEV, type_hints=True)


def test_c2d_is_data_with_string_properties() -> None:
    topic = ("devices/dev1/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Fdev1"
             "&iothub-ack=full&n=5&bare&x-amqp-body=value")
    message = codec.decode_c2d(topic, b"cmd", DEV)
    assert message.kind is BodyKind.DATA and message.body() == b"cmd"
    assert message.properties() == {"n": "5", "bare": "", "x-amqp-body": "value",
                                    "iothub-ack": "full"}
    # unreadable topic (another device): the payload, no properties
    assert codec.decode_c2d("devices/dev2/messages/devicebound/a=1", b"x", DEV).properties() == {}


def test_type_hints_round_trip_types_and_body_kinds() -> None:
    for original in (Message.value("text", {"n": 7, "r": 1e20, "ok": False, "s": "7"}),
                     Message.data(b"\x01", {}), Message([1, "a"], {"k": "v"}),
                     Message({"k": 1}, {})):
        publish = codec.encode_d2c(original, DEV, type_hints=True)
        bag = publish.topic.partition("/messages/events/")[2]
        back = codec.decode_c2d(f"devices/dev1/messages/devicebound/{bag}", publish.payload,
                                DEV, type_hints=True)
        assert back == original, (original, back)
    unknown = codec.decode_c2d("devices/dev1/messages/devicebound/x-amqp-body=uuid", b"\x00",
                               DEV, type_hints=True)
    assert unknown.body() == "Unhandled message body type uuid"


def test_identity_of_rejects_and_decodes() -> None:
    assert cbs.identity_of(f"{HOST}%2Fdevices%2Fdev1") == DEV  # an sr value, as Node passes it
    with pytest.raises(cbs.CBSError):
        cbs.identity_of("/devices/d")
