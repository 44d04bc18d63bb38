"""The ``$cbs`` node the ``iothub`` backend emulates: put-token requests and replies (pure).

A request (spec azure-iothub-protocols §1.3) is a message on a ``$cbs`` sender whose
application properties are ``operation = "put-token"``, ``type`` = the SAS token type
(``servicebus.windows.net:sastoken``, or ``azure-devices.net:sastoken`` as the legacy
AzureIoTHub library sent) and ``name`` = the audience ``{hub}/devices/{id}[/modules/{m}]``,
and whose body is the token. `parse_put_token` checks all of that locally (what it can without
the key) and raises `CBSError` with the status the reply carries; the signature is checked by
IoT Hub when the token becomes the MQTT password (or locally, when the settings carry the key).

A reply is a message on the ``$cbs`` receiver(s) with the application properties
``status-code`` (int: 200 accepted, 400 bad request, 401 unauthorized, 503 unavailable) and
``status-description`` (str: exactly ``"OK"`` on success, else the reason). Descriptions never
contain the token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

from pydantic import SecretStr

from bridge.backends.iothub import sas
from bridge.backends.iothub.connection_string import validate_topic_id
from bridge.backends.iothub.identity import Identity
from bridge.contract.message import Message

NODE = "$cbs"
OPERATION = "put-token"
TOKEN_TYPES = (sas.CBS_TOKEN_TYPE, sas.LEGACY_CBS_TOKEN_TYPE)
OK, BAD_REQUEST, UNAUTHORIZED, SERVER_ERROR, UNAVAILABLE = 200, 400, 401, 500, 503

# CONNACK reason (paho gives MQTT 5 codes, also for 3.1.1 return codes) -> CBS status
_CONNACK_STATUS = {
    0x84: BAD_REQUEST,  # 3.1.1 rc 1: unacceptable protocol version
    0x85: BAD_REQUEST,  # 3.1.1 rc 2: identifier rejected
    0x86: UNAUTHORIZED,  # 3.1.1 rc 4: bad user name or password
    0x87: UNAUTHORIZED,  # 3.1.1 rc 5: not authorized
    0x88: UNAVAILABLE,  # 3.1.1 rc 3: server unavailable
}


class CBSError(Exception):
    """A put-token that is refused: *status* and *description* go into the reply."""

    def __init__(self, status: int, description: str) -> None:
        self.status = status
        self.description = description
        super().__init__(f"{status} {description}")


@dataclass(frozen=True, slots=True)
class PutToken:
    """A well-formed put-token request for one identity."""

    identity: Identity
    token: SecretStr = field(repr=False)
    expiry: int  # the token's se (Unix seconds)
    key_name: str | None = None

    @property
    def text(self) -> str:
        return self.token.get_secret_value()


def parse_put_token(message: Message, *, host: str, now: float | None = None) -> PutToken:
    """Check a request message against the connection's hub *host*; `CBSError` if refused."""
    props = message.properties()
    operation = props.get("operation")
    if operation != OPERATION:
        raise CBSError(BAD_REQUEST, f"unsupported CBS operation {operation!r}: this node "
                                    f"implements only {OPERATION!r}")
    token_type = props.get("type")
    if token_type not in TOKEN_TYPES:
        raise CBSError(BAD_REQUEST, f"unsupported token type {token_type!r}; expected "
                                    f"{sas.CBS_TOKEN_TYPE!r} (or {sas.LEGACY_CBS_TOKEN_TYPE!r})")
    name = props.get("name")
    if not isinstance(name, str) or not name:
        raise CBSError(BAD_REQUEST, "the request has no 'name' (the audience "
                                    "{hub}/devices/{deviceId}[/modules/{moduleId}])")
    identity = identity_of(name)
    if identity.host.lower() != host.lower():
        raise CBSError(UNAUTHORIZED, f"the audience {name!r} names hub {identity.host!r}; this "
                                     f"connection is to {host!r}")
    body = message.body()
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            body = None
    if not isinstance(body, str):
        raise CBSError(BAD_REQUEST, "the request body must be the SAS token as a string")
    try:
        parsed = sas.parse_token(body)
    except sas.SASTokenError as exc:
        raise CBSError(UNAUTHORIZED, f"Unauthorized: {exc.reason}") from None
    if not sas.audience_covers(parsed.audience, identity.audience):
        raise CBSError(UNAUTHORIZED, f"Unauthorized: the token is for {parsed.audience!r}, "
                                     f"not for {identity.audience!r}")
    current = time.time() if now is None else now
    if parsed.expired(current):
        raise CBSError(UNAUTHORIZED, f"Unauthorized: the token expired at "
                                     f"{iso_time(parsed.expiry)}")
    return PutToken(identity, SecretStr(body.strip()), parsed.expiry, parsed.key_name)


def identity_of(name: str) -> Identity:
    """The identity a put-token ``name`` (audience) names; `CBSError` 400 if it names none."""
    text = name.strip()
    if "/" not in text and "%2f" in text.lower():
        text = unquote(text)  # the token's sr value, as the Node SDK passes it
    if "://" in text:
        text = text.partition("://")[2]
    parts = text.strip("/").split("/")
    expected = "the audience must be {hub}/devices/{deviceId}[/modules/{moduleId}]"
    if len(parts) not in (3, 5) or parts[1] != "devices" or (len(parts) == 5
                                                             and parts[3] != "modules"):
        raise CBSError(BAD_REQUEST, f"name {name!r}: {expected}")
    host, device_id = parts[0], unquote(parts[2])
    module_id = unquote(parts[4]) if len(parts) == 5 else None
    for kind, value in (("device id", device_id), ("module id", module_id)):
        if value is None:
            continue
        why = validate_topic_id(kind, value)
        if why is not None:
            raise CBSError(BAD_REQUEST, f"name {name!r}: {why}")
    if not host:
        raise CBSError(BAD_REQUEST, f"name {name!r}: {expected}")
    return Identity(host, device_id, module_id)


def status_for_connack(code: int | None) -> int:
    """The CBS status for a refused CONNACK reason code."""
    if code is None:
        return SERVER_ERROR
    return _CONNACK_STATUS.get(code, SERVER_ERROR)


def reply(status: int, description: str) -> Message:
    """A CBS response: empty body, ``status-code`` (int) and ``status-description`` (str)."""
    return Message("", {"status-code": int(status), "status-description": str(description)})


def ok() -> Message:
    return reply(OK, "OK")


def iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
