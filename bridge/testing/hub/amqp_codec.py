"""Message conversions of the AMQP surface: link addresses, D2C fields, C2D messages."""

from __future__ import annotations

from typing import Any

from proton import Message, symbol

from bridge.testing.hub.model import C2DMessage

CBS = "$cbs"


def parse_address(address: str | None) -> tuple[str, str | None]:
    """(kind, device id): kind is ``cbs``, ``events``, ``devicebound`` or ``unknown``."""
    text = (address or "").strip()
    if text == CBS:
        return "cbs", None
    if "://" in text:
        text = "/" + text.split("://", 1)[1].partition("/")[2]
    parts = [p for p in text.split("/") if p]
    if len(parts) == 4 and parts[0] == "devices" and parts[2] == "messages":
        leaf = parts[3].lower()
        if leaf in ("events", "devicebound"):
            return leaf, parts[1]
    return "unknown", None


def c2d_message(message: C2DMessage) -> Message:
    """The AMQP form of a C2D message: ``data`` body for bytes, ``amqp-value`` for str;
    ``message-id``, ``correlation-id``, ``to``, content type/encoding, ``iothub-ack`` as an
    application property, header ``delivery-count``."""
    body: Any = message.body
    properties: dict[str, Any] = dict(message.properties)
    if message.ack is not None:
        properties["iothub-ack"] = message.ack
    amqp = Message(body=body, inferred=isinstance(body, bytes), id=message.message_id,
                   correlation_id=message.correlation_id,
                   address=f"/devices/{message.device_id}/messages/devicebound",
                   properties=properties)
    if message.content_type:
        amqp.content_type = symbol(message.content_type)
    if message.content_encoding:
        amqp.content_encoding = symbol(message.content_encoding)
    amqp.delivery_count = message.delivery_count
    return amqp


def d2c_body(message: Message) -> Any:
    body = message.body
    if isinstance(body, memoryview | bytearray):
        return bytes(body)
    return body


def d2c_system(message: Message) -> dict[str, Any]:
    fields = {
        "message-id": message.id, "correlation-id": message.correlation_id,
        "user-id": bytes(message.user_id) if message.user_id else None,
        "content-type": _symbol_text(message.content_type),
        "content-encoding": _symbol_text(message.content_encoding),
        "to": message.address, "subject": message.subject, "reply-to": message.reply_to,
        "absolute-expiry-time": message.expiry_time or None,
        "creation-time": message.creation_time or None,
        "body-section": "data" if message.inferred and isinstance(message.body,
                                                                 bytes | memoryview)
        else "amqp-value",
    }
    if message.annotations:
        fields["message-annotations"] = {str(k): v  # type: ignore[assignment]
                                         for k, v in message.annotations.items()}
    return {key: value for key, value in fields.items() if value is not None}


def _symbol_text(value: Any) -> str | None:
    # proton returns symbol("None") for an absent content-type/-encoding (symbol(None)).
    return str(value) if value and str(value) != "None" else None
