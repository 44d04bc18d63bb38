"""The bridge's IoT Hub codecs against the official azure-iot-device client, on the same broker.

The SDK (2.14.0, paho 1.x, in its own venv: tests/support/sdk_env.py) connects through a TLS
capture proxy to a private Mosquitto. We compare, field by field, what it puts on the wire with
what `bridge.backends.iothub` builds for the same logical message: the CONNECT client id,
username and SAS password, the SUBSCRIBE filter, the D2C topic/property bag/payload; and what
the SDK derives from C2D publishes with what our C2D parser derives from the same topics.

If the SDK venv cannot be built this FAILS (it is a requirement of the wire format, not an
optional extra).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.backends.iothub import sas, topics
from bridge.backends.iothub.connection_string import parse_connection_string
from bridge.backends.iothub.topics import SystemProperties
from tests.integration.iothub.conftest import RawClient, TLSFiles
from tests.integration.iothub.connect_capture import TlsCaptureProxy
from tests.support.sdk_env import SDK_VERSION, ProbeProcess, SdkEnvError, ensure_sdk_env

pytestmark = pytest.mark.integration

HUB = "myhub.azure-devices.net"
KEY = base64.b64encode(b"wire-format-comparison-key-32by!").decode()

D2C_SYSTEM = dict(message_id="msg-1 ü", correlation_id="corr/1&x=y", user_id="user-1",
                  content_type="application/json", content_encoding="utf-8",
                  expiry_time_utc="2030-01-01T00:00:00+00:00")
D2C_CUSTOM: dict[str, Any] = {"a b": "c/d&e=f", "phase": "first", "pct": "100%", "plus": "a+b",
                              "unicode ✓": "ü€", "eq": "x=y", "count": 5, "ratio": 0.25,
                              "semi;colon": "~tilde"}
D2C_PAYLOAD = '{"temperature": 21.5, "unit": "°C"}'


def sdk_python() -> Path:
    try:
        return ensure_sdk_env()
    except SdkEnvError as exc:
        pytest.fail(f"cannot build the azure-iot-device {SDK_VERSION} comparison environment "
                    f"(separate venv, see tests/support/sdk_env.py): {exc}", pytrace=False)


def c2d_cases(device: str) -> list[tuple[str, bytes]]:
    """C2D publishes as a hub sends them, plus the documented '$.' spelling and a bare topic."""
    hub_style = topics.c2d_topic(
        device,
        system=SystemProperties(message_id="c2d-1", correlation_id="corr 2",
                                user_id="svc", content_type="text/plain; charset=utf-8",
                                content_encoding="utf-8",
                                expiry_time_utc="2030-01-01T00:00:00.0000000Z",
                                to=f"/devices/{device}/messages/devicebound", ack="full"),
        application={"k 1": "v&1", "path": "a/b", "uni ✓": "ü", "empty": "", "nul": None,
                     "pct": "100%", "plus": "1+1"})
    return [
        (hub_style, b"hello \xe2\x9c\x93"),
        (f"devices/{device}/messages/devicebound/$.mid=lit-1&$.ct=text%2Fplain&flag&x=%24.y",
         b"second"),
        (f"devices/{device}/messages/devicebound", b""),
    ]


def run_probe(tmp_path: Path, capture_proxy: TlsCaptureProxy, tls_files: TLSFiles,
              connection_string: str, messages: list[dict[str, Any]],
              publishes: list[tuple[str, bytes]], raw_hub: RawClient,
              module: bool = False) -> dict[str, Any]:
    probe = ProbeProcess(sdk_python(), {
        "connection_string": connection_string, "ca_file": str(tls_files.ca_file),
        "port": capture_proxy.port, "module": module, "messages": messages,
        "receive": len(publishes), "timeout": 20,
    }, tmp_path)
    try:
        ready = probe.expect("ready", timeout=60)
        probe.expect("connected")
        sent = [probe.expect("sent") for _ in messages]
        d2c = [raw_hub.next_message() for _ in messages]
        probe.expect("subscribed")
        received = []
        for topic, payload in publishes:
            raw_hub.publish(topic, payload)
            received.append(probe.expect("received")["message"])
        probe.expect("done")
        assert probe.close() == 0, probe.stderr_tail()
    except BaseException:
        probe.kill()
        raise
    finally:
        probe.close()
    return {"ready": ready, "sent": sent, "d2c": d2c, "received": received}


def assert_connect(capture_proxy: TlsCaptureProxy, ready: dict[str, Any], device: str,
                   module: str | None) -> None:
    connect = capture_proxy.wait_connect()
    assert (connect.protocol_name, connect.protocol_level) == ("MQTT", 4)  # 3.1.1
    assert connect.client_id == topics.client_id(device, module)
    assert connect.clean_session is False
    assert connect.keepalive == 60
    assert connect.will_topic is None
    # Username: byte-for-byte, given the SDK's api-version and user agent.
    assert connect.username == topics.username(
        HUB, device, module, api_version=topics.SDK_API_VERSION,
        device_client_type=ready["user_agent"])
    parsed_user = topics.parse_username(connect.username)
    assert (parsed_user.host, parsed_user.device_id, parsed_user.module_id) == (
        HUB, device, module)
    # Password: a SAS token for the hub-named audience; with the SDK's expiry ours is identical.
    assert connect.password is not None
    token = sas.parse_token(connect.password)
    audience = sas.resource_uri(HUB, device, module)
    assert token.resource == sas.encode(audience) and token.key_name is None
    assert abs(token.expiry - (time.time() + sas.DEFAULT_TTL)) < 120
    assert connect.password == sas.generate_token(audience, KEY, token.expiry)
    sas.verify_token(connect.password, KEY, audience=audience, allow_prefix=False)


def test_device_client_matches_our_codecs(tmp_path: Path, capture_proxy: TlsCaptureProxy,
                                          tls_files: TLSFiles, raw_hub: RawClient) -> None:
    device = f"dev-{uuid.uuid4().hex[:8]}"
    connection_string = (f"HostName={HUB};DeviceId={device};SharedAccessKey={KEY};"
                         f"GatewayHostName=localhost")
    cs = parse_connection_string(connection_string)
    assert cs.connect_host == "localhost" and cs.audience == f"{HUB}/devices/{device}"
    raw_hub.subscribe(f"devices/{device}/messages/events/#")
    publishes = c2d_cases(device)
    result = run_probe(tmp_path, capture_proxy, tls_files, connection_string,
                       [{"payload": D2C_PAYLOAD, **D2C_SYSTEM,
                         "custom_properties": D2C_CUSTOM}], publishes, raw_hub)
    assert result["ready"]["sdk_version"] == SDK_VERSION
    assert result["ready"]["paho_version"].startswith("1.")

    assert_connect(capture_proxy, result["ready"], device, None)
    # C2D subscription: our filter, QoS 1.
    assert capture_proxy.wait_packet("subscribe") == [(topics.c2d_subscription(device), 1)]

    # D2C: same topic (prefix, decoded bag, then byte for byte), same payload, QoS 1.
    [d2c] = result["d2c"]
    ours = topics.d2c_topic(device, system=SystemProperties(**D2C_SYSTEM), application=D2C_CUSTOM)
    prefix = f"devices/{device}/messages/events/"
    assert d2c.topic.startswith(prefix)
    sdk_bag = topics.decode_property_bag(d2c.topic.removeprefix(prefix))
    our_bag = topics.decode_property_bag(ours.removeprefix(prefix))
    assert sdk_bag == our_bag
    assert sdk_bag.system == SystemProperties(**D2C_SYSTEM)
    assert sdk_bag.application == {k: topics.property_text(v) for k, v in D2C_CUSTOM.items()}
    assert d2c.topic == ours
    assert d2c.payload == D2C_PAYLOAD.encode()
    assert capture_proxy.wait_packet("publish") == (d2c.topic, 1)

    # C2D: what the SDK derives == what our parser derives from the same topic.
    for (topic, payload), sdk in zip(publishes, result["received"], strict=True):
        parsed = topics.parse_c2d_topic(topic, device_id=device)
        system = parsed.bag.system
        assert sdk["data"] == payload.decode() and sdk["data_is_bytes"]
        assert sdk["message_id"] == system.message_id
        assert sdk["correlation_id"] == system.correlation_id
        assert sdk["user_id"] == system.user_id
        assert sdk["content_type"] == system.content_type
        assert sdk["content_encoding"] == system.content_encoding
        assert sdk["expiry_time_utc"] == system.expiry_time_utc
        assert sdk["ack"] == system.ack
        assert sdk["input_name"] is None and parsed.input_name is None
        assert sdk["custom_properties"] == parsed.bag.application
    # The SDK drops $.to; we keep it (a receiver may want it), and nothing else differs.
    first = topics.parse_c2d_topic(publishes[0][0]).bag
    assert first.system.to == f"/devices/{device}/messages/devicebound"
    assert result["received"][0]["custom_properties"] == {
        "k 1": "v&1", "path": "a/b", "uni ✓": "ü", "empty": "", "nul": None, "pct": "100%",
        "plus": "1+1"}
    assert topics.to_message_properties(first)["nul"] == ""


def test_module_client_matches_our_codecs(tmp_path: Path, capture_proxy: TlsCaptureProxy,
                                          tls_files: TLSFiles, raw_hub: RawClient) -> None:
    device, module = f"dev-{uuid.uuid4().hex[:8]}", "mod-1"
    connection_string = (f"HostName={HUB};DeviceId={device};ModuleId={module};"
                         f"SharedAccessKey={KEY};GatewayHostName=localhost")
    base = f"devices/{device}/modules/{module}"
    raw_hub.subscribe(f"{base}/messages/events/#")
    input_bag = topics.encode_property_bag(SystemProperties(message_id="in-1"), {"k": "v w"})
    publishes = [(f"{base}/inputs/input%201/{input_bag}", b"to module")]
    custom = {"zone": "a/b", "n": 1}
    result = run_probe(tmp_path, capture_proxy, tls_files, connection_string,
                       [{"payload": "m", "message_id": "mm-1", "output_name": "out 1",
                         "custom_properties": custom}], publishes, raw_hub, module=True)

    assert_connect(capture_proxy, result["ready"], device, module)
    assert capture_proxy.wait_packet("subscribe") == [
        (topics.module_input_subscription(device, module), 1)]

    [d2c] = result["d2c"]
    ours = topics.d2c_topic(device, module,
                            system=SystemProperties(output_name="out 1", message_id="mm-1"),
                            application=custom)
    assert d2c.topic == ours
    assert d2c.topic.startswith(f"{base}/messages/events/%24.on=out%201&%24.mid=mm-1&")
    assert topics.route_for_path("sender", f"/{base}/messages/events").topic == \
        f"{base}/messages/events/"

    [sdk] = result["received"]
    parsed = topics.parse_c2d_topic(publishes[0][0], device_id=device, module_id=module)
    assert sdk["input_name"] == parsed.input_name == "input 1"
    assert sdk["message_id"] == parsed.bag.system.message_id == "in-1"
    assert sdk["custom_properties"] == parsed.bag.application == {"k": "v w"}
    assert sdk["data"] == "to module"


def test_probe_reports_versions_in_json() -> None:
    # Guards the harness itself: the SDK venv holds the pinned SDK and paho 1.x, and the bridge's
    # own environment still has paho 2 (the SDK never downgrades it).
    import importlib.metadata as metadata

    python = sdk_python()
    assert python.exists()
    assert metadata.version("paho-mqtt").startswith("2.")
    marker = json.loads((python.parent.parent / "bridge-sdk-env.json").read_text())
    assert f"azure-iot-device=={SDK_VERSION}" in marker["requirements"]
