"""IoT Hub connection strings: parse, validate and build them back, never leaking the secret.

Format: ``Key=Value`` pairs separated by ``;``; each pair is split on its *first* ``=`` because
base64 keys end in ``=``. The field names are the ones azure-iot-device accepts (case-sensitive):
``HostName``, ``DeviceId``, ``ModuleId``, ``GatewayHostName``, ``SharedAccessKey``,
``SharedAccessKeyName``, ``SharedAccessSignature`` and ``x509``.

Forms (spec azure-iothub-protocols §3.2):

============================  ===============================================================
device, symmetric key          ``HostName;DeviceId;SharedAccessKey``
module, symmetric key          the above plus ``ModuleId``
device via a policy key        ``HostName;DeviceId;SharedAccessKeyName;SharedAccessKey``
                               (the token then carries ``skn``; the policy needs DeviceConnect)
pre-made token                 ``HostName;DeviceId[;ModuleId];SharedAccessSignature=SharedAccess
                               Signature sr=...``
X.509                          ``HostName;DeviceId[;ModuleId];x509=true``
via a gateway / IoT Edge       any device form plus ``GatewayHostName`` (TCP/TLS goes there; the
                               SAS audience and the MQTT username keep ``HostName``)
service / policy               ``HostName;SharedAccessKeyName;SharedAccessKey`` (no device:
                               only accepted with ``allow_service=True``)
============================  ===============================================================

Every error is a `ConnectionStringError` (a `bridge.errors.ConfigError`, so a ``ValueError``)
listing each problem on its own line. Error text names fields and positions, never a value of
``SharedAccessKey`` or ``SharedAccessSignature``; the dataclass keeps both as ``SecretStr``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import SecretStr

from bridge.backends.iothub import sas
from bridge.errors import ConfigError

HOST_NAME = "HostName"
DEVICE_ID = "DeviceId"
MODULE_ID = "ModuleId"
GATEWAY_HOST_NAME = "GatewayHostName"
SHARED_ACCESS_KEY = "SharedAccessKey"
SHARED_ACCESS_KEY_NAME = "SharedAccessKeyName"
SHARED_ACCESS_SIGNATURE = "SharedAccessSignature"
X509 = "x509"

#: Order used by `format_connection_string` (the order the Azure portal shows).
FIELD_ORDER: tuple[str, ...] = (
    HOST_NAME, DEVICE_ID, MODULE_ID, SHARED_ACCESS_KEY_NAME, SHARED_ACCESS_KEY,
    SHARED_ACCESS_SIGNATURE, X509, GATEWAY_HOST_NAME,
)
_SECRET_FIELDS = frozenset({SHARED_ACCESS_KEY, SHARED_ACCESS_SIGNATURE})
_BY_LOWER = {name.lower(): name for name in FIELD_ORDER}

#: IoT Hub device and module ids: case-sensitive, 1-128 ASCII 7-bit alphanumerics plus
#: ``- : . + % _ # * ? ! ( ) , = @ ; $ '`` (Microsoft's device identity docs).
ID_SPECIALS = "-:.+%_#*?!(),=@;$'"
_ID_RE = re.compile(r"[A-Za-z0-9" + re.escape(ID_SPECIALS) + r"]{1,128}")
_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_NAME_SHOWN_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,23}")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")


class ConnectionStringError(ConfigError):
    """A connection string is malformed; ``problems`` lists every reason (no secrets in them)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__([f"IoT Hub connection string: {p}" for p in problems])


class AuthKind(StrEnum):
    """How the identity in a connection string authenticates."""

    SYMMETRIC_KEY = "symmetric-key"  # device or module key -> token without skn
    POLICY_KEY = "policy-key"  # shared access policy key -> token with skn
    TOKEN = "token"  # a pre-made SharedAccessSignature (cannot be renewed by us)
    X509 = "x509"  # TLS client certificate, empty MQTT password


@dataclass(frozen=True, slots=True)
class ConnectionString:
    """A validated connection string. ``repr``/``str`` mask the key and the signature."""

    host_name: str
    device_id: str | None = None
    module_id: str | None = None
    gateway_host_name: str | None = None
    shared_access_key_name: str | None = None
    shared_access_key: SecretStr | None = field(default=None, repr=False)
    shared_access_signature: SecretStr | None = field(default=None, repr=False)
    x509: bool = False

    @property
    def auth(self) -> AuthKind:
        if self.x509:
            return AuthKind.X509
        if self.shared_access_signature is not None:
            return AuthKind.TOKEN
        if self.shared_access_key_name is not None:
            return AuthKind.POLICY_KEY
        return AuthKind.SYMMETRIC_KEY

    @property
    def is_device(self) -> bool:
        """True for a device or module identity (False: a service/policy string)."""
        return self.device_id is not None

    @property
    def connect_host(self) -> str:
        """The host the TCP/TLS connection goes to: the gateway if there is one."""
        return self.gateway_host_name or self.host_name

    @property
    def audience(self) -> str:
        """The SAS resource URI (unencoded) this identity signs for."""
        return sas.resource_uri(self.host_name, self.device_id, self.module_id)

    def key_bytes(self) -> bytes:
        """The decoded signing key; `ConnectionStringError` if the string has none."""
        if self.shared_access_key is None:
            raise ConnectionStringError([f"{SHARED_ACCESS_KEY} is required to sign tokens"])
        return base64.b64decode(self.shared_access_key.get_secret_value())

    def generate_token(self, expiry: int) -> str:
        """A SAS token for `audience` valid until *expiry* (Unix seconds).

        Raises `ConnectionStringError` for an X.509 or pre-made-token string (nothing to sign
        with); a pre-made token is available as ``shared_access_signature``.
        """
        if self.shared_access_key is None:
            raise ConnectionStringError(
                [f"cannot sign a token: the string has no {SHARED_ACCESS_KEY} ({self.auth})"])
        return sas.generate_token(self.audience, self.shared_access_key.get_secret_value(),
                                  expiry, key_name=self.shared_access_key_name)

    def masked(self) -> str:
        """The connection string with the secret values replaced by ``***`` (safe to log)."""
        return format_connection_string(self, reveal=False)

    def __str__(self) -> str:
        return self.masked()


def parse_connection_string(text: str, *, allow_service: bool = False) -> ConnectionString:
    """Parse and validate *text*; see the module docstring for the accepted forms.

    *allow_service* also accepts a hub-level policy string without ``DeviceId``.
    """
    if not isinstance(text, str):
        raise ConnectionStringError([f"must be a str, got {type(text).__name__}"])
    stripped = text.strip()
    if not stripped:
        raise ConnectionStringError(["is empty"])
    segments = stripped.split(";")
    if segments[-1].strip() == "":
        segments.pop()  # one trailing ';' is harmless and common in copy-pasted strings
    problems: list[str] = []
    values: dict[str, str] = {}
    for position, raw in enumerate(segments, start=1):
        segment = raw.strip()
        if not segment:
            problems.append(f"segment {position} is empty (two ';' in a row?)")
            continue
        name, sep, value = segment.partition("=")
        name = name.strip()
        if not sep:
            # The text may be a fragment of a secret: say where, never what.
            problems.append(f"segment {position} is not Key=Value (no '=')")
            continue
        if name not in FIELD_ORDER:
            problems.append(_unknown_field(name, position))
            continue
        if name in values:
            problems.append(f"{name} is given more than once")
            continue
        if name not in _SECRET_FIELDS:
            value = value.strip()
        if value == "":
            problems.append(f"{name} is empty")
            continue
        values[name] = value
    if problems:
        raise ConnectionStringError(problems)
    result = _build(values, allow_service, problems)
    if problems or result is None:
        raise ConnectionStringError(problems)
    return result


def format_connection_string(cs: ConnectionString, *, reveal: bool = True) -> str:
    """Build the ``Key=Value;...`` text back (canonical field order, see `FIELD_ORDER`).

    ``reveal=False`` puts ``***`` in place of the key and the signature.
    """
    fields: dict[str, str | None] = {
        HOST_NAME: cs.host_name,
        DEVICE_ID: cs.device_id,
        MODULE_ID: cs.module_id,
        SHARED_ACCESS_KEY_NAME: cs.shared_access_key_name,
        SHARED_ACCESS_KEY: _secret(cs.shared_access_key, reveal),
        SHARED_ACCESS_SIGNATURE: _secret(cs.shared_access_signature, reveal),
        X509: "true" if cs.x509 else None,
        GATEWAY_HOST_NAME: cs.gateway_host_name,
    }
    return ";".join(f"{name}={fields[name]}" for name in FIELD_ORDER if fields[name] is not None)


def validate_id(kind: str, value: str) -> str | None:
    """Why *value* is not a valid IoT Hub device/module id (*kind* names it), or None."""
    if not 1 <= len(value) <= 128:
        return f"{kind} must be 1-128 characters long, got {len(value)}"
    if _ID_RE.fullmatch(value) is None:
        bad = next(ch for ch in value if not (ch.isascii() and (ch.isalnum() or ch in ID_SPECIALS)))
        return (f"{kind} {value!r} contains {bad!r}; allowed: ASCII letters, digits and "
                f"{' '.join(ID_SPECIALS)}")
    return None


def validate_topic_id(kind: str, value: str) -> str | None:
    """`validate_id`, and the ids may not hold what an MQTT topic level cannot: IoT Hub puts
    device and module ids into its topics unencoded."""
    why = validate_id(kind, value)
    if why is None and any(ch in value for ch in "/+#"):
        why = f"{kind} {value!r} contains '/', '+' or '#', which cannot appear in a topic"
    return why


def _is_host(value: str) -> bool:
    """A DNS name (or IPv4 / bracketed IPv6 literal): no scheme, port, path or spaces."""
    if _IPV6_RE.fullmatch(value):
        return True
    labels = value.removesuffix(".").split(".")
    return len(value) <= 253 and all(_LABEL_RE.fullmatch(label) for label in labels)


def _secret(value: SecretStr | None, reveal: bool) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if reveal else "***"


def _unknown_field(name: str, position: int) -> str:
    # A long or odd "name" is usually a secret pasted without its field name (base64 keys end
    # in '=', so they parse as a name): only short identifier-like names are shown.
    shown = repr(name) if _NAME_SHOWN_RE.fullmatch(name) else f"of {len(name)} characters"
    hint = _BY_LOWER.get(name.lower())
    suggestion = f" (did you mean {hint!r}? names are case-sensitive)" if hint else ""
    return (f"unknown field {shown} in segment {position}{suggestion}; known: "
            f"{', '.join(FIELD_ORDER)}")


def _build(values: dict[str, str], allow_service: bool,
           problems: list[str]) -> ConnectionString | None:
    host = values.get(HOST_NAME)
    device_id = values.get(DEVICE_ID)
    module_id = values.get(MODULE_ID)
    gateway = values.get(GATEWAY_HOST_NAME)
    key = values.get(SHARED_ACCESS_KEY)
    key_name = values.get(SHARED_ACCESS_KEY_NAME)
    token = values.get(SHARED_ACCESS_SIGNATURE)
    x509_text = values.get(X509)

    if host is None:
        problems.append(f"{HOST_NAME} is missing")
    for name, value in ((HOST_NAME, host), (GATEWAY_HOST_NAME, gateway)):
        if value is not None and not _is_host(value):
            problems.append(f"{name} {value!r} is not a host name (no scheme, port or path)")
    for name, value in ((DEVICE_ID, device_id), (MODULE_ID, module_id)):
        if value is not None and (why := validate_id(name, value)) is not None:
            problems.append(why)
    if module_id is not None and device_id is None:
        problems.append(f"{MODULE_ID} needs a {DEVICE_ID}")
    if key_name is not None and (not key_name.isprintable() or any(c.isspace() for c in key_name)):
        problems.append(f"{SHARED_ACCESS_KEY_NAME} contains white space or unprintable characters")

    x509 = False
    if x509_text is not None:
        if x509_text.lower() != "true":
            problems.append(f"{X509} must be 'true' when present, got {x509_text!r}")
        x509 = True
    credentials = [name for name, value in ((SHARED_ACCESS_KEY, key),
                                             (SHARED_ACCESS_SIGNATURE, token),
                                             (X509, x509_text)) if value is not None]
    if not credentials:
        problems.append(f"no credential: give one of {SHARED_ACCESS_KEY}, "
                        f"{SHARED_ACCESS_SIGNATURE} or {X509}=true")
    elif len(credentials) > 1:
        problems.append(f"mixed credentials: {' and '.join(credentials)} (give exactly one)")
    if key_name is not None and key is None:
        problems.append(f"{SHARED_ACCESS_KEY_NAME} needs a {SHARED_ACCESS_KEY}")

    if key is not None:
        try:
            decoded = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"{SHARED_ACCESS_KEY} is not valid base64")
        else:
            if not decoded:
                problems.append(f"{SHARED_ACCESS_KEY} decodes to zero bytes")
    if token is not None:
        try:
            sas.parse_token(token)
        except sas.SASTokenError as exc:
            problems.append(f"{SHARED_ACCESS_SIGNATURE}: {exc.reason}")

    if device_id is None and host is not None:
        if not allow_service:
            problems.append(f"{DEVICE_ID} is missing (a device or module connection string "
                            f"is needed; this looks like a service/policy string)")
        elif key_name is None:
            problems.append(f"a service connection string needs {SHARED_ACCESS_KEY_NAME}")
    if problems:
        return None
    assert host is not None  # checked above; narrows for the type checker
    return ConnectionString(
        host_name=host,
        device_id=device_id,
        module_id=module_id,
        gateway_host_name=gateway,
        shared_access_key_name=key_name,
        shared_access_key=SecretStr(key) if key is not None else None,
        shared_access_signature=SecretStr(token) if token is not None else None,
        x509=x509,
    )
