"""SAS tokens: known-answer vectors, parsing, verification and the legacy v2.x shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

import pytest
from pydantic import SecretStr

from bridge.backends.iothub import sas
from bridge.backends.iothub.sas import (
    Failure,
    SASTokenError,
    SASVerificationError,
    audience_covers,
    generate_token,
    legacy_device_token,
    parse_token,
    verify_token,
)

KEY = "Zml4ZWQtdGVzdC1rZXktZm9yLWtub3duLWFuc3dlcg=="  # base64("fixed-test-key-for-known-answer")
OTHER_KEY = base64.b64encode(b"another key").decode()
HOST = "myhub.azure-devices.net"
DEVICE_URI = f"{HOST}/devices/dev1"
EXPIRY = 1795666923
NOW = EXPIRY - 3600


def _independent_token(uri: str, key_b64: str, expiry: int, skn: str | None = None) -> str:
    """The recipe from Microsoft's SAS article, written out step by step with the stdlib."""
    encoded_uri = urllib.parse.quote(uri, safe="")
    string_to_sign = (encoded_uri + "\n" + str(expiry)).encode("utf-8")
    digest = hmac.new(base64.b64decode(key_b64), string_to_sign, hashlib.sha256).digest()
    signature = urllib.parse.quote(base64.b64encode(digest).decode("ascii"), safe="")
    token = f"SharedAccessSignature sr={encoded_uri}&sig={signature}&se={expiry}"
    return token + (f"&skn={urllib.parse.quote(skn, safe='')}" if skn else "")


# ------------------------------------------------------------------ known answers

KNOWN_ANSWERS = [
    # (uri, key, expiry, skn, exact token) - pinned strings; the space in the id shows %20
    (f"{HOST}/devices/dev 1", KEY, EXPIRY, None,
     "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev%201"
     "&sig=1NExR2f%2BrpTysVEwzRHwAXTMNoZugfP20hzqvTDXjrU%3D&se=1795666923"),
    (f"{HOST}/devices/dev1/modules/m1", KEY, EXPIRY, "device",
     "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Fm1"
     "&sig=8119fvXm0AsVd2PyYeN1JPS46wRRgT5OT%2B8rn8NSlZM%3D&se=1795666923&skn=device"),
    # Azure IoT Node SDK's own test vector (azure-iot-common shared_access_signature tests):
    # key = base64("password"), resource "uri", expiry 12345.
    ("uri", base64.b64encode(b"password").decode(), 12345, None,
     "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345"),
]


@pytest.mark.parametrize(("uri", "key", "expiry", "skn", "expected"), KNOWN_ANSWERS)
def test_known_answer_tokens(uri: str, key: str, expiry: int, skn: str | None,
                             expected: str) -> None:
    token = generate_token(uri, key, expiry, key_name=skn)
    assert token == expected
    assert token == _independent_token(uri, key, expiry, skn)


def test_public_hmac_vector_from_node_sdk() -> None:
    # azure-iot-common authorization tests: hmacHash(base64("password"), "string-to-sign").
    key = base64.b64encode(b"password").decode()
    assert sas.sign("string-to-sign", key) == "o1n1hiIVgzVA2+krq9ty1Z4xsIJKJZP3dYT8MOi65Y4="


def test_node_sdk_skn_vector_parses_to_the_same_fields() -> None:
    # Node writes sr, sig, skn, se; we write sr, sig, se, skn. The fields must agree.
    node = ("SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D"
            "&skn=encode%28%27Me%27%29&se=12345")
    ours = generate_token("uri", base64.b64encode(b"password").decode(), 12345,
                          key_name="encode('Me')")
    assert ours.endswith("&se=12345&skn=encode%28%27Me%27%29")
    a, b = parse_token(node), parse_token(ours)
    assert (a.resource, a.expiry, a.key_name) == (b.resource, b.expiry, b.key_name)
    assert a.signature.get_secret_value() == b.signature.get_secret_value()
    assert a.key_name == "encode('Me')"


def test_device_token_uses_ttl() -> None:
    token = sas.generate_device_token(HOST, "dev1", KEY, ttl=60, now=1000.5)
    assert parse_token(token).expiry == 1060
    assert token == _independent_token(DEVICE_URI, KEY, 1060)


def test_legacy_v2_token_shape() -> None:
    # AzureIoTHub v2.x: sr = host + "/devices/" + urlencode(id), slashes literal, no skn,
    # and the HMAC covers that unencoded text.
    token = legacy_device_token(HOST, "dev1", KEY, EXPIRY)
    string_to_sign = f"{HOST}/devices/dev1\n{EXPIRY}".encode()
    sig = base64.b64encode(hmac.new(base64.b64decode(KEY), string_to_sign,
                                    hashlib.sha256).digest()).decode()
    assert token == (f"SharedAccessSignature sr={HOST}/devices/dev1"
                     f"&sig={urllib.parse.quote(sig, safe='')}&se={EXPIRY}")
    assert token == ("SharedAccessSignature sr=myhub.azure-devices.net/devices/dev1"
                     "&sig=etCvbzmEjhxgZudjPVQN%2F7xBTjWHs%2FKj%2BjKDjSX1BCw%3D&se=1795666923")
    parsed = verify_token(token, KEY, audience=DEVICE_URI, now=NOW)
    assert parsed.key_name is None and parsed.audience == DEVICE_URI


def test_legacy_token_encodes_the_device_id_once() -> None:
    token = legacy_device_token(HOST, "dev 1", KEY, EXPIRY)
    assert parse_token(token).resource == f"{HOST}/devices/dev%201"
    verify_token(token, KEY, audience=f"{HOST}/devices/dev 1", now=NOW)


# ------------------------------------------------------------------ parsing

GOOD = generate_token(DEVICE_URI, KEY, EXPIRY)
GOOD_SIG = GOOD.split("&sig=")[1].split("&")[0]


def test_parse_returns_fields() -> None:
    parsed = parse_token(GOOD)
    assert parsed.resource == "myhub.azure-devices.net%2Fdevices%2Fdev1"
    assert parsed.audience == DEVICE_URI
    assert parsed.expiry == EXPIRY and parsed.expiry_text == str(EXPIRY)
    assert parsed.key_name is None
    assert parsed.signature.get_secret_value() == urllib.parse.unquote(GOOD_SIG)
    assert GOOD_SIG not in repr(parsed)
    assert urllib.parse.unquote(GOOD_SIG) not in repr(parsed)


def test_field_order_does_not_matter() -> None:
    shuffled = f"SharedAccessSignature se={EXPIRY}&sig={GOOD_SIG}&sr={HOST}%2Fdevices%2Fdev1"
    assert parse_token(shuffled) == parse_token(GOOD)


@pytest.mark.parametrize(("token", "reason"), [
    ("sr=a&sig=b&se=1", "must start with 'SharedAccessSignature'"),
    ("sharedaccesssignature sr=a&sig=b&se=1", "must start with"),
    (f"SharedAccessSignature  sr=a&sig={GOOD_SIG}&se=1", "white space"),
    (f"SharedAccessSignature sr=a b&sig={GOOD_SIG}&se=1", "white space"),
    ("SharedAccessSignature ", "must start with"),  # stripped: no fields at all
    (f"SharedAccessSignature sr=a&sig={GOOD_SIG}", "missing field(s): se"),
    (f"SharedAccessSignature sig={GOOD_SIG}", "missing field(s): sr, se"),
    (f"SharedAccessSignature sr=a&sig={GOOD_SIG}&se=1&foo=2", "unknown field 'foo'"),
    (f"SharedAccessSignature sr=a&sr=b&sig={GOOD_SIG}&se=1", "'sr' appears more than once"),
    (f"SharedAccessSignature sr=&sig={GOOD_SIG}&se=1", "'sr' is empty"),
    (f"SharedAccessSignature sr=a&sig={GOOD_SIG}&se=1&skn=", "'skn' is empty"),
    (f"SharedAccessSignature sr=a&sig={GOOD_SIG}&se=-5", "se must be integer seconds"),
    (f"SharedAccessSignature sr=a&sig={GOOD_SIG}&se=1.5", "se must be integer seconds"),
    (f"SharedAccessSignature sr=a&sig={GOOD_SIG}&oops", "field 3 is not name=value"),
    ("SharedAccessSignature sr=a&sig=not*base64&se=1", "sig is not base64"),
    ("SharedAccessSignature sr=a&sig=YWJj&se=1", "sig is 3 bytes"),
])
def test_parse_errors_name_the_problem(token: str, reason: str) -> None:
    with pytest.raises(SASTokenError) as info:
        parse_token(token)
    assert reason in info.value.reason
    assert GOOD_SIG not in str(info.value)
    assert urllib.parse.unquote(GOOD_SIG) not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_rejects_non_str() -> None:
    with pytest.raises(SASTokenError, match="must be a str"):
        parse_token(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------ verification


def test_verify_accepts_a_good_token() -> None:
    parsed = verify_token(GOOD, KEY, audience=DEVICE_URI, now=NOW)
    assert parsed.expiry == EXPIRY
    # SecretStr keys and pre-parsed tokens work too
    verify_token(parse_token(GOOD), SecretStr(KEY), audience=DEVICE_URI, now=NOW)


@pytest.mark.parametrize(("token", "key", "audience", "key_name", "now", "failure"), [
    (GOOD, OTHER_KEY, DEVICE_URI, None, NOW, Failure.SIGNATURE),
    (GOOD.replace(f"se={EXPIRY}", f"se={EXPIRY + 1}"), KEY, DEVICE_URI, None, NOW,
     Failure.SIGNATURE),
    (GOOD.replace("dev1", "dev2"), KEY, f"{HOST}/devices/dev2", None, NOW, Failure.SIGNATURE),
    (GOOD, KEY, f"{HOST}/devices/dev2", None, NOW, Failure.AUDIENCE),
    (GOOD, KEY, f"{HOST}/devices/dev10", None, NOW, Failure.AUDIENCE),
    (GOOD, KEY, "other.azure-devices.net/devices/dev1", None, NOW, Failure.AUDIENCE),
    (GOOD, KEY, f"{HOST}/devices/DEV1", None, NOW, Failure.AUDIENCE),
    (GOOD, KEY, DEVICE_URI, None, EXPIRY, Failure.EXPIRED),
    (GOOD, KEY, DEVICE_URI, None, EXPIRY + 10, Failure.EXPIRED),
    (GOOD, KEY, DEVICE_URI, "iothubowner", NOW, Failure.KEY_NAME),
    (generate_token(HOST, KEY, EXPIRY, key_name="device"), KEY, DEVICE_URI, None, NOW,
     Failure.KEY_NAME),
])
def test_verify_refusals(token: str, key: str, audience: str, key_name: str | None, now: int,
                         failure: Failure) -> None:
    with pytest.raises(SASVerificationError) as info:
        verify_token(token, key, audience=audience, key_name=key_name, now=now)
    assert info.value.failure is failure
    assert KEY not in str(info.value)
    assert GOOD_SIG not in str(info.value)


def test_policy_token_covers_devices_below_it() -> None:
    hub_token = generate_token(HOST, KEY, EXPIRY, key_name="device")
    verify_token(hub_token, KEY, audience=DEVICE_URI, key_name="device", now=NOW)
    with pytest.raises(SASVerificationError) as info:
        verify_token(hub_token, KEY, audience=DEVICE_URI, key_name="device", now=NOW,
                     allow_prefix=False)
    assert info.value.failure is Failure.AUDIENCE


def test_module_token() -> None:
    uri = f"{HOST}/devices/dev1/modules/m1"
    verify_token(generate_token(uri, KEY, EXPIRY), KEY, audience=uri, now=NOW)
    with pytest.raises(SASVerificationError):
        verify_token(generate_token(uri, KEY, EXPIRY), KEY, audience=DEVICE_URI, now=NOW)


def test_signature_covers_sr_as_sent_so_lowercase_encodings_verify() -> None:
    # A signer that lower-cases its escapes (%2f) signs that text; verification must use it too.
    resource = "myhub.azure-devices.net%2fdevices%2fdev1"
    sig = sas.sign(f"{resource}\n{EXPIRY}", KEY)
    token = sas.format_token(resource, sig, EXPIRY)
    assert verify_token(token, KEY, audience=DEVICE_URI, now=NOW).audience == DEVICE_URI


@pytest.mark.parametrize(("granted", "required", "covers"), [
    (HOST, DEVICE_URI, True),
    (f"{HOST}/devices", DEVICE_URI, True),
    (DEVICE_URI, DEVICE_URI, True),
    (f"{DEVICE_URI}/", DEVICE_URI, True),
    ("MyHub.Azure-Devices.NET/devices/dev1", DEVICE_URI, True),
    (f"amqps://{DEVICE_URI}", DEVICE_URI, True),
    (DEVICE_URI, f"{HOST}/devices/dev10", False),
    (f"{HOST}/devices/dev", DEVICE_URI, False),
    (DEVICE_URI, HOST, False),
    (f"{HOST}/devices/Dev1", DEVICE_URI, False),
])
def test_audience_covers(granted: str, required: str, covers: bool) -> None:
    assert audience_covers(granted, required) is covers


@pytest.mark.parametrize("key", ["not base64!", "", "YWJj=x"])
def test_bad_signing_key(key: str) -> None:
    with pytest.raises(SASTokenError) as info:
        generate_token(DEVICE_URI, key, EXPIRY)
    assert "signing key" in info.value.reason
    if key:
        assert key not in str(info.value)


@pytest.mark.parametrize("expiry", [-1, 1.5, True, "10"])
def test_bad_expiry(expiry: object) -> None:
    with pytest.raises(SASTokenError, match="expiry"):
        generate_token(DEVICE_URI, KEY, expiry)  # type: ignore[arg-type]


def test_expired_helper() -> None:
    parsed = parse_token(GOOD)
    assert not parsed.expired(EXPIRY - 1)
    assert parsed.expired(EXPIRY)


def test_constants() -> None:
    assert sas.CBS_TOKEN_TYPE == "servicebus.windows.net:sastoken"
    assert sas.LEGACY_CBS_TOKEN_TYPE == "azure-devices.net:sastoken"
    assert sas.resource_uri(HOST) == HOST
    with pytest.raises(ValueError):
        sas.resource_uri(HOST, None, "m1")
