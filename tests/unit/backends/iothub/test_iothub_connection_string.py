"""Connection strings: every accepted form, every refusal, and no secret in any text."""

from __future__ import annotations

import base64

import pytest

from bridge.backends.iothub import sas
from bridge.backends.iothub.connection_string import (
    AuthKind,
    ConnectionString,
    ConnectionStringError,
    format_connection_string,
    parse_connection_string,
)
from bridge.errors import ConfigError

KEY = base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()  # ends in '='
TOKEN = sas.generate_token("hub.azure-devices.net/devices/dev1", KEY, 2_000_000_000)
HUB = "HostName=hub.azure-devices.net"


@pytest.mark.parametrize(("text", "expected"), [
    (f"{HUB};DeviceId=dev1;SharedAccessKey={KEY}",
     dict(host_name="hub.azure-devices.net", device_id="dev1", auth=AuthKind.SYMMETRIC_KEY,
          audience="hub.azure-devices.net/devices/dev1", connect_host="hub.azure-devices.net")),
    (f"{HUB};DeviceId=dev1;ModuleId=mod-a;SharedAccessKey={KEY}",
     dict(module_id="mod-a", audience="hub.azure-devices.net/devices/dev1/modules/mod-a")),
    (f"{HUB};DeviceId=dev1;SharedAccessKey={KEY};GatewayHostName=localhost",
     dict(gateway_host_name="localhost", connect_host="localhost",
          audience="hub.azure-devices.net/devices/dev1")),
    (f"{HUB};DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey={KEY}",
     dict(shared_access_key_name="device", auth=AuthKind.POLICY_KEY)),
    (f"{HUB};DeviceId=dev1;SharedAccessSignature={TOKEN}",
     dict(auth=AuthKind.TOKEN, shared_access_key=None)),
    (f"{HUB};DeviceId=dev1;x509=true", dict(auth=AuthKind.X509, x509=True)),
    (f"{HUB};DeviceId=dev1;x509=True", dict(x509=True)),
    # white space around pairs and one trailing ';' are tolerated
    (f"  {HUB} ; DeviceId = dev1 ;SharedAccessKey={KEY};  ", dict(device_id="dev1")),
    # field order does not matter; '=' inside a device id is legal (split on the first '=')
    (f"SharedAccessKey={KEY};DeviceId=a=b;{HUB}", dict(device_id="a=b")),
    (f"{HUB};DeviceId=x:y.z+w%_#*?!(),=@$';SharedAccessKey={KEY}",
     dict(device_id="x:y.z+w%_#*?!(),=@$'")),
    ("HostName=127.0.0.1;DeviceId=d;SharedAccessKey=" + KEY, dict(host_name="127.0.0.1")),
])
def test_accepted_forms(text: str, expected: dict[str, object]) -> None:
    cs = parse_connection_string(text)
    for name, value in expected.items():
        assert getattr(cs, name) == value, name
    assert cs.is_device


def test_key_keeps_trailing_equals_and_decodes() -> None:
    cs = parse_connection_string(f"{HUB};DeviceId=dev1;SharedAccessKey={KEY}")
    assert cs.shared_access_key is not None
    assert cs.shared_access_key.get_secret_value() == KEY
    assert cs.key_bytes() == b"0123456789abcdef0123456789abcdef"


def test_service_string_only_when_allowed() -> None:
    text = f"{HUB};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"
    with pytest.raises(ConnectionStringError, match="DeviceId is missing"):
        parse_connection_string(text)
    cs = parse_connection_string(text, allow_service=True)
    assert not cs.is_device and cs.auth is AuthKind.POLICY_KEY
    assert cs.audience == "hub.azure-devices.net"


@pytest.mark.parametrize(("text", "problem"), [
    ("", "is empty"),
    ("   ", "is empty"),
    (f"DeviceId=dev1;SharedAccessKey={KEY}", "HostName is missing"),
    (f"{HUB};SharedAccessKey={KEY}", "DeviceId is missing"),
    (f"{HUB};DeviceId=dev1", "no credential"),
    (f"{HUB};DeviceId=dev1;SharedAccessKey={KEY};x509=true", "mixed credentials"),
    (f"{HUB};DeviceId=dev1;SharedAccessKey={KEY};SharedAccessSignature={TOKEN}",
     "mixed credentials"),
    (f"{HUB};DeviceId=dev1;DeviceId=dev2;SharedAccessKey={KEY}",
     "DeviceId is given more than once"),
    (f"{HUB};DeviceId=;SharedAccessKey={KEY}", "DeviceId is empty"),
    (f"{HUB};DeviceId=dev1;SharedAccessKey=", "SharedAccessKey is empty"),
    (f"{HUB};;DeviceId=dev1;SharedAccessKey={KEY}", "segment 2 is empty"),
    (f"{HUB};DeviceId=dev1;SharedAccessKey={KEY};Foo=bar", "unknown field 'Foo' in segment 4"),
    (f"hostname=h;DeviceId=dev1;SharedAccessKey={KEY}", "did you mean 'HostName'?"),
    (f"{HUB};DeviceId=dev1;SharedAccessKey=not*base64!", "SharedAccessKey is not valid base64"),
    (f"{HUB};DeviceId=dev1;SharedAccessKey=abc", "SharedAccessKey is not valid base64"),
    (f"{HUB};DeviceId=dev1;SharedAccessKey={KEY};x509=false", "x509 must be 'true'"),
    (f"{HUB};ModuleId=m;SharedAccessKey={KEY}", "ModuleId needs a DeviceId"),
    (f"{HUB};DeviceId=dev/1;SharedAccessKey={KEY}", "DeviceId 'dev/1' contains '/'"),
    (f"{HUB};DeviceId={'d' * 129};SharedAccessKey={KEY}", "1-128 characters"),
    (f"{HUB};DeviceId=dév;SharedAccessKey={KEY}", "contains 'é'"),
    (f"HostName=mqtts://hub:8883;DeviceId=d;SharedAccessKey={KEY}", "is not a host name"),
    (f"{HUB};DeviceId=d;SharedAccessKey={KEY};GatewayHostName=gw/x", "GatewayHostName"),
    (f"{HUB};DeviceId=d;SharedAccessKeyName=p q;SharedAccessKey={KEY}", "white space"),
    (f"{HUB};DeviceId=d;SharedAccessKeyName=p;x509=true", "SharedAccessKeyName needs a"),
    (f"{HUB};DeviceId=d;SharedAccessSignature=sr=x&sig=y", "SharedAccessSignature: must start"),
    (f"{HUB};DeviceId=d;SharedAccessKey", "segment 3 is not Key=Value"),
])
def test_refused_with_a_clear_reason(text: str, problem: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(text)
    assert problem in str(info.value)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string("DeviceId=d/x;x509=maybe")
    text = str(info.value)
    assert "HostName is missing" in text and "contains '/'" in text and "x509 must" in text
    assert len(info.value.problems) == 3


SECRET_KEY = base64.b64encode(b"s3cr3t-key-material-that-must-not-leak").decode()
SECRET_FRAGMENT = SECRET_KEY[:20]


@pytest.mark.parametrize("text", [
    f"{HUB};DeviceId=dev1;SharedAccessKey={SECRET_KEY};Bogus=1",
    f"{HUB};DeviceId=dev1;SharedAccessKey={SECRET_KEY};x509=true",
    f"{HUB};DeviceId=dev1;SharedAccessKey={SECRET_KEY[:-3]}!!",
    f"{HUB};DeviceId=dev1;SharedAccessKey={SECRET_KEY};SharedAccessKey={SECRET_KEY}",
    f"{HUB};DeviceId=dev1;{SECRET_KEY}",  # a key pasted without its field name
    f"{HUB};DeviceId=dev1;SharedAccessSignature=SharedAccessSignature "
    f"sr=x&sig={SECRET_KEY}&se=notanumber",
    f"{HUB};DeviceId=dev1;SharedAccessSignature=SharedAccessSignature "
    f"sr=x&sig={SECRET_KEY}&se=1&zz=1",
])
def test_errors_never_contain_secrets(text: str) -> None:
    with pytest.raises(ConnectionStringError) as info:
        parse_connection_string(text)
    assert SECRET_FRAGMENT not in str(info.value)
    assert SECRET_FRAGMENT not in repr(info.value)


@pytest.mark.parametrize("text", [
    f"{HUB};DeviceId=dev1;SharedAccessKey={SECRET_KEY}",
    f"{HUB};DeviceId=dev1;SharedAccessSignature="
    + sas.generate_token("hub.azure-devices.net/devices/dev1", SECRET_KEY, 2_000_000_000),
])
def test_repr_and_str_mask_secrets(text: str) -> None:
    cs = parse_connection_string(text)
    secret = (cs.shared_access_key or cs.shared_access_signature)
    assert secret is not None
    value = secret.get_secret_value()
    for shown in (repr(cs), str(cs), cs.masked(), f"{cs}", repr([cs])):
        assert value not in shown
        assert SECRET_FRAGMENT not in shown
    assert "***" in str(cs)


@pytest.mark.parametrize("text", [
    f"{HUB};DeviceId=dev1;SharedAccessKey={KEY}",
    f"{HUB};DeviceId=dev1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=edge.local",
    f"{HUB};DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey={KEY}",
    f"{HUB};DeviceId=dev1;SharedAccessSignature={TOKEN}",
    f"{HUB};DeviceId=dev1;x509=true",
])
def test_build_back_round_trips(text: str) -> None:
    cs = parse_connection_string(text)
    rebuilt = format_connection_string(cs)
    assert parse_connection_string(rebuilt) == cs
    assert rebuilt == text  # inputs are already in the canonical field order


def test_build_uses_canonical_order() -> None:
    cs = parse_connection_string(f"SharedAccessKey={KEY};ModuleId=m;DeviceId=d;{HUB}")
    assert format_connection_string(cs) == f"{HUB};DeviceId=d;ModuleId=m;SharedAccessKey={KEY}"


def test_generate_token_signs_for_the_identity() -> None:
    cs = parse_connection_string(
        f"{HUB};DeviceId=dev1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=localhost")
    token = cs.generate_token(2_000_000_000)
    assert token == sas.generate_token("hub.azure-devices.net/devices/dev1/modules/m1", KEY,
                                       2_000_000_000)
    parsed = sas.verify_token(token, KEY, audience=cs.audience, now=0)
    assert parsed.audience == "hub.azure-devices.net/devices/dev1/modules/m1"


def test_policy_token_carries_skn() -> None:
    cs = parse_connection_string(
        f"{HUB};DeviceId=d;SharedAccessKeyName=device;SharedAccessKey={KEY}")
    assert sas.parse_token(cs.generate_token(2_000_000_000)).key_name == "device"


@pytest.mark.parametrize("text", [
    f"{HUB};DeviceId=dev1;x509=true",
    f"{HUB};DeviceId=dev1;SharedAccessSignature={TOKEN}",
])
def test_cannot_sign_without_a_key(text: str) -> None:
    cs = parse_connection_string(text)
    with pytest.raises(ConnectionStringError, match="cannot sign"):
        cs.generate_token(1)
    with pytest.raises(ConnectionStringError):
        cs.key_bytes()


def test_is_frozen() -> None:
    cs = parse_connection_string(f"{HUB};DeviceId=dev1;SharedAccessKey={KEY}")
    with pytest.raises(AttributeError):
        cs.device_id = "other"  # type: ignore[misc]
    assert isinstance(cs, ConnectionString)


def test_not_a_str() -> None:
    with pytest.raises(ConnectionStringError, match="must be a str"):
        parse_connection_string(b"HostName=x")  # type: ignore[arg-type]
