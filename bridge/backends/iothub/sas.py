"""IoT Hub shared access signature (SAS) tokens: create, parse and verify.

Token: ``SharedAccessSignature sr={resource}&sig={signature}&se={expiry}[&skn={policy}]``
(spec azure-iothub-protocols §3.1):

- ``sr`` is the resource URI without a scheme (``{hub}/devices/{id}``,
  ``{hub}/devices/{id}/modules/{mid}``, or a prefix of it for policy tokens), URL-encoded the
  way azure-iot-device does it: ``urllib.parse.quote(uri, safe="")`` (upper-case ``%2F``, no
  lower-casing, ``%20`` never ``+``);
- ``sig`` = base64(HMAC-SHA256(base64decode(key), ``sr`` + ``"\\n"`` + ``se``)), URL-encoded
  the same way. The HMAC covers the ``sr`` text *exactly as it stands in the token*: signers
  differ in how (or whether) they encode it, and the hub checks what it is given;
- ``se`` is the expiry in integer seconds since the Unix epoch (UTC);
- ``skn`` names the shared access policy, only for tokens signed with a policy key.

`generate_token` emits the fields in azure-iot-device's order (sr, sig, se, skn). Parsing accepts
any order. The legacy Electric Imp AzureIoTHub library (v2.x, AMQP) built the same shape without
``skn`` but with an *unencoded* resource (``{host}/devices/{urlencode(deviceId)}``, literal
slashes); `legacy_device_token` reproduces it and `verify_token` accepts both, because it signs
the raw ``sr`` text.

Errors are `SASTokenError` (a ``ValueError``) whose ``reason`` names what is wrong; a signature
or key is never part of any message or ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote, unquote

from pydantic import SecretStr

from bridge.errors import BridgeError

TOKEN_PREFIX = "SharedAccessSignature "
#: ``type`` application property of a CBS put-token for a SAS token (Node and C SDKs).
CBS_TOKEN_TYPE = "servicebus.windows.net:sastoken"
#: The ``type`` the legacy AzureIoTHub v2.x library sent instead; a hub stand-in accepts both.
LEGACY_CBS_TOKEN_TYPE = "azure-devices.net:sastoken"
#: azure-iot-device's default token lifetime (``sastoken_ttl``), and how long before expiry it
#: reconnects with a fresh token.
DEFAULT_TTL = 3600
RENEW_MARGIN = 120

REQUIRED_FIELDS = ("sr", "sig", "se")
OPTIONAL_FIELDS = ("skn",)
_HMAC_SHA256_LEN = 32


class SASTokenError(BridgeError, ValueError):
    """A token (or a signing key) is unusable; ``reason`` says why without echoing secrets."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid SAS token: {reason}")


class Failure(StrEnum):
    """Why `verify_token` refused a well-formed token."""

    SIGNATURE = "signature"
    AUDIENCE = "audience"
    EXPIRED = "expired"
    KEY_NAME = "key-name"


class SASVerificationError(SASTokenError):
    """A well-formed token failed verification; ``failure`` classifies it."""

    def __init__(self, failure: Failure, reason: str) -> None:
        self.failure = failure
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class SASToken:
    """The fields of a parsed token. ``resource`` and ``expiry_text`` are verbatim (still
    URL-encoded) because the signature covers them as sent; ``signature`` is decoded base64."""

    resource: str
    signature: SecretStr = field(repr=False)
    expiry: int
    expiry_text: str
    key_name: str | None = None

    @property
    def audience(self) -> str:
        """The resource URI with its URL-encoding removed (what the token grants access to)."""
        return unquote(self.resource)

    def expired(self, now: float | None = None) -> bool:
        """True once *now* (default: the current time) has reached ``se``."""
        return (time.time() if now is None else now) >= self.expiry


def resource_uri(host: str, device_id: str | None = None, module_id: str | None = None) -> str:
    """The unencoded resource URI for a hub, a device or a module (ids are not encoded)."""
    if module_id is not None and device_id is None:
        raise ValueError("a module resource needs a device id")
    uri = host
    if device_id is not None:
        uri += f"/devices/{device_id}"
    if module_id is not None:
        uri += f"/modules/{module_id}"
    return uri


def encode(text: str) -> str:
    """URL-encode as azure-iot-device does: every reserved character, ``%20`` for a space."""
    return quote(text, safe="")


def sign(string_to_sign: str, key: str | SecretStr) -> str:
    """base64(HMAC-SHA256(base64decode(*key*), UTF-8 of *string_to_sign*)), not URL-encoded."""
    digest = hmac.new(_decode_key(key), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def format_token(resource: str, signature: str, expiry: int | str,
                 key_name: str | None = None) -> str:
    """Assemble a token from already-encoded ``sr`` text and a raw base64 *signature*."""
    token = f"{TOKEN_PREFIX}sr={resource}&sig={encode(signature)}&se={expiry}"
    if key_name:
        token += f"&skn={encode(key_name)}"
    return token


def generate_token(uri: str, key: str | SecretStr, expiry: int, *,
                   key_name: str | None = None) -> str:
    """A token for the unencoded resource *uri*, valid until *expiry* (Unix seconds).

    Byte-for-byte what azure-iot-device 2.14's ``RenewableSasToken`` produces.
    """
    if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry < 0:
        raise SASTokenError("expiry must be a non-negative int (Unix seconds)")
    resource = encode(uri)
    return format_token(resource, sign(f"{resource}\n{expiry}", key), expiry, key_name)


def generate_device_token(host: str, device_id: str, key: str | SecretStr, *,
                          module_id: str | None = None, key_name: str | None = None,
                          ttl: int = DEFAULT_TTL, now: float | None = None) -> str:
    """A token for a device (or module) that expires *ttl* seconds from *now*."""
    expiry = int((time.time() if now is None else now) + ttl)
    return generate_token(resource_uri(host, device_id, module_id), key, expiry,
                          key_name=key_name)


def legacy_device_token(host: str, device_id: str, key: str | SecretStr, expiry: int) -> str:
    """The token the Electric Imp AzureIoTHub v2.x library put on ``$cbs``.

    ``sr`` = ``{host}/devices/{urlencode(deviceId)}`` with literal slashes (the library never
    encoded the whole URI), signed as it stands, no ``skn``. For ids made only of letters,
    digits, ``-``, ``.`` and ``_`` the device id part is unchanged by the encoding; how imp's
    ``http.urlencode`` encodes other characters is not known, so this uses `encode`.
    """
    resource = f"{host}/devices/{encode(device_id)}"
    return format_token(resource, sign(f"{resource}\n{expiry}", key), expiry)


def parse_token(text: str) -> SASToken:
    """Split a token into its fields, checking that each one is present and well formed."""
    if not isinstance(text, str):
        raise SASTokenError(f"must be a str, got {type(text).__name__}")
    body = text.strip()
    if not body.startswith(TOKEN_PREFIX):
        raise SASTokenError(f"must start with {TOKEN_PREFIX.strip()!r} and one space")
    body = body[len(TOKEN_PREFIX):]
    if not body or body[0].isspace() or any(ch.isspace() for ch in body):
        raise SASTokenError("white space inside the field list")
    fields: dict[str, str] = {}
    for position, part in enumerate(body.split("&"), start=1):
        name, sep, value = part.partition("=")
        if not sep:
            raise SASTokenError(f"field {position} is not name=value")
        if name not in REQUIRED_FIELDS and name not in OPTIONAL_FIELDS:
            shown = name if len(name) <= 20 else name[:17] + "..."
            raise SASTokenError(f"unknown field {shown!r}; allowed: sr, sig, se, skn")
        if name in fields:
            raise SASTokenError(f"field {name!r} appears more than once")
        if value == "":
            raise SASTokenError(f"field {name!r} is empty")
        fields[name] = value
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise SASTokenError(f"missing field(s): {', '.join(missing)}")
    expiry_text = fields["se"]
    if not (expiry_text.isascii() and expiry_text.isdigit()):
        raise SASTokenError("se must be integer seconds since the Unix epoch")
    signature = unquote(fields["sig"])
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise SASTokenError("sig is not base64 (after URL-decoding)") from None
    if len(raw) != _HMAC_SHA256_LEN:
        raise SASTokenError(f"sig is {len(raw)} bytes; an HMAC-SHA256 has 32")
    skn = fields.get("skn")
    return SASToken(resource=fields["sr"], signature=SecretStr(signature),
                    expiry=int(expiry_text), expiry_text=expiry_text,
                    key_name=unquote(skn) if skn is not None else None)


def audience_covers(granted: str, required: str) -> bool:
    """True when a token for *granted* may be used for *required* (both unencoded URIs).

    IoT Hub matches segment by segment, so ``hub/devices`` covers ``hub/devices/d1`` but
    ``hub/devices/d1`` does not cover ``hub/devices/d10``. Host names compare case-insensitively,
    device and module ids case-sensitively.
    """
    granted_parts = _audience_parts(granted)
    required_parts = _audience_parts(required)
    if len(granted_parts) > len(required_parts):
        return False
    return required_parts[: len(granted_parts)] == granted_parts


def verify_token(token: str | SASToken, key: str | SecretStr, *, audience: str,
                 key_name: str | None = None, now: float | None = None,
                 allow_prefix: bool = True) -> SASToken:
    """Check *token* against *key* and return its fields, or raise `SASVerificationError`.

    - the signature must be the HMAC of the token's own ``sr`` and ``se`` text under *key*
      (compared in constant time);
    - ``skn`` must equal *key_name* (None: a device/module key, the token must carry no ``skn``);
    - the token's audience must cover *audience* (the unencoded URI the caller is connecting
      as); ``allow_prefix=False`` demands equality instead of a segment prefix;
    - ``se`` must be later than *now* (default: the current time).

    A malformed token raises plain `SASTokenError`.
    """
    parsed = parse_token(token) if isinstance(token, str) else token
    expected = hmac.new(_decode_key(key), f"{parsed.resource}\n{parsed.expiry_text}".encode(),
                        hashlib.sha256).digest()
    given = base64.b64decode(parsed.signature.get_secret_value())
    if not hmac.compare_digest(expected, given):
        raise SASVerificationError(Failure.SIGNATURE,
                                   "signature does not match the key (or sr/se were altered)")
    if parsed.key_name != key_name:
        want = f"skn={key_name!r}" if key_name is not None else "no skn (device key)"
        raise SASVerificationError(Failure.KEY_NAME, f"key name mismatch: expected {want}")
    granted = parsed.audience
    ok = (audience_covers(granted, audience) if allow_prefix
          else _audience_parts(granted) == _audience_parts(audience))
    if not ok:
        raise SASVerificationError(Failure.AUDIENCE,
                                   f"token is for {granted!r}, not for {audience!r}")
    current = time.time() if now is None else now
    if parsed.expired(current):
        raise SASVerificationError(Failure.EXPIRED,
                                   f"token expired at {parsed.expiry} (now {int(current)})")
    return parsed


def _audience_parts(uri: str) -> tuple[str, ...]:
    text = uri.strip()
    for scheme in ("amqps://", "https://", "http://", "mqtts://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
            break
    parts = [p for p in text.split("/") if p]
    if not parts:
        return ()
    return (parts[0].lower(), *parts[1:])


def _decode_key(key: str | SecretStr) -> bytes:
    text = key.get_secret_value() if isinstance(key, SecretStr) else key
    if not isinstance(text, str):
        raise SASTokenError("the signing key must be base64 text")
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SASTokenError("the signing key is not valid base64") from None
    if not decoded:
        raise SASTokenError("the signing key is empty")
    return decoded
