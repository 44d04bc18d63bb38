"""MQTT reason codes and socket failures -> ``errorDetail`` text (pure).

The contract's format is ``"<AMQP condition symbol>: <description>"``; the symbol is the AMQP
condition closest to the MQTT reason, so legacy substring checks keep working (a refused
password or an ACL refusal contains ``amqp:unauthorized-access``), and the description names
the MQTT packet, reason and code, e.g.
``amqp:unauthorized-access: MQTT CONNACK refused the connection: Not authorized (0x87)``.
"""

from __future__ import annotations

import socket
import ssl

UNAUTHORIZED = "amqp:unauthorized-access"
FORCED = "amqp:connection:forced"
RESOURCE_LIMIT = "amqp:resource-limit-exceeded"
INVALID_FIELD = "amqp:invalid-field"
NOT_IMPLEMENTED = "amqp:not-implemented"
NOT_ALLOWED = "amqp:not-allowed"
INTERNAL = "amqp:internal-error"
MESSAGE_SIZE = "amqp:link:message-size-exceeded"
DETACH_FORCED = "amqp:link:detach-forced"

# MQTT 5 reason code -> AMQP condition; codes not listed map by packet (see `condition`).
_CONDITIONS: dict[int, str] = {
    0x84: NOT_IMPLEMENTED,  # unsupported protocol version
    0x85: INVALID_FIELD,  # client identifier not valid
    0x86: UNAUTHORIZED,  # bad user name or password
    0x87: UNAUTHORIZED,  # not authorized
    0x88: FORCED,  # server unavailable
    0x89: RESOURCE_LIMIT,  # server busy
    0x8A: UNAUTHORIZED,  # banned
    0x8C: UNAUTHORIZED,  # bad authentication method
    0x8F: INVALID_FIELD,  # topic filter invalid
    0x90: INVALID_FIELD,  # topic name invalid
    0x95: MESSAGE_SIZE,  # packet too large
    0x97: RESOURCE_LIMIT,  # quota exceeded
    0x99: INVALID_FIELD,  # payload format invalid
    0x9A: NOT_IMPLEMENTED,  # retain not supported
    0x9B: NOT_IMPLEMENTED,  # QoS not supported
    0x9E: NOT_IMPLEMENTED,  # shared subscriptions not supported
    0xA1: NOT_IMPLEMENTED,  # subscription identifiers not supported
    0xA2: NOT_IMPLEMENTED,  # wildcard subscriptions not supported
}


def condition(code: int, packet: str) -> str:
    """The AMQP condition symbol for an MQTT reason *code* seen in *packet*."""
    found = _CONDITIONS.get(code)
    if found is not None:
        return found
    if packet in ("CONNACK", "DISCONNECT"):
        return FORCED
    return INTERNAL if packet == "PUBACK" else NOT_ALLOWED


def _describe(code: int, name: str) -> str:
    return f"{name} (0x{code:02X})"


def connack_detail(code: int, name: str, broker: str) -> str:
    return (f"{condition(code, 'CONNACK')}: MQTT broker {broker} refused the connection "
            f"(CONNACK): {_describe(code, name)}")


def disconnect_detail(code: int | None, name: str | None, broker: str, *,
                      from_broker: bool) -> str:
    """A lost connection: a DISCONNECT from the broker, a keep-alive timeout or a socket loss."""
    if from_broker and code is not None and name is not None:
        return (f"{condition(code, 'DISCONNECT')}: MQTT broker {broker} closed the connection "
                f"(DISCONNECT): {_describe(code, name)}")
    if name == "Keep alive timeout":
        return f"{FORCED}: MQTT broker {broker} did not answer within the keep-alive interval"
    return f"{FORCED}: connection to MQTT broker {broker} lost"


def suback_detail(code: int, name: str, topic_filter: str) -> str:
    return (f"{condition(code, 'SUBACK')}: MQTT broker refused the subscription to "
            f"{topic_filter!r} (SUBACK): {_describe(code, name)}")


def puback_detail(code: int, name: str, topic: str) -> str:
    return (f"{condition(code, 'PUBACK')}: MQTT broker refused the message on {topic!r} "
            f"(PUBACK): {_describe(code, name)}")


def transport_detail(exc: BaseException, broker: str) -> str:
    """A connect attempt that failed below MQTT (DNS, TCP, TLS, WebSocket)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        what = f"TLS certificate of {broker} not accepted: {exc.verify_message or exc}"
    elif isinstance(exc, ssl.CertificateError | ssl.SSLError):
        what = f"TLS handshake with {broker} failed: {exc}"
    elif isinstance(exc, socket.gaierror):
        what = f"cannot resolve the MQTT broker host of {broker}: {exc}"
    elif isinstance(exc, TimeoutError | socket.timeout):
        what = f"timed out connecting to MQTT broker {broker}"
    elif isinstance(exc, OSError):
        what = f"cannot connect to MQTT broker {broker}: {exc.strerror or exc}"
    else:
        what = f"cannot connect to MQTT broker {broker}: {type(exc).__name__}: {exc}"
    return f"{FORCED}: {what}"
