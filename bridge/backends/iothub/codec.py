"""Contract `Message` <-> IoT Hub MQTT publish (pure).

Device-to-cloud: the payload is the body (an amqp-value str as UTF-8, a data section as is, any
other AMQP value as tagged JSON with ``$.ct=application/json`` and ``$.ce=utf-8``); application
properties go into the topic's property bag as strings (`topics.property_text`). The hub's
limit is checked here: a message it would count above 256 KB is refused before it is sent.

Cloud-to-device (and module inputs): the payload becomes a data body (``bytes``, what imp gave
for an IoT Hub message), the bag's application properties (plus ``iothub-ack``) the message's
properties, as strings.

Opt-in type hints (``iothub.type_hints``, both ends bridges): ``x-amqp-types`` (property types,
`bridge.backends.iothub.topics`) and ``x-amqp-body`` (``value`` / ``data`` / ``json``, the same
markers as the MQTT backend's user property) restore exactly what was sent. Without hints both
names are ordinary properties.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.backends.iothub import topics
from bridge.backends.iothub.identity import Identity
from bridge.backends.iothub.topics import SystemProperties, TopicError
from bridge.contract.message import BodyKind, Message, PropertyValue
from bridge.engines.mqtt import codec as mqtt_codec
from bridge.engines.mqtt import reasons

BODY_KEY = "x-amqp-body"
JSON_SYSTEM = SystemProperties(content_type="application/json", content_encoding="utf-8")


class HubCodecError(mqtt_codec.CodecError):
    """A message cannot be sent to IoT Hub as it is (the text says why; ``condition`` is the
    AMQP error condition of the SENDER_ERROR it becomes)."""

    def __init__(self, text: str, condition: str = reasons.INVALID_FIELD) -> None:
        super().__init__(text)
        self.condition = condition


@dataclass(frozen=True, slots=True)
class D2CPublish:
    topic: str
    payload: bytes
    size: int  # what the hub counts against its limit


def encode_d2c(message: Message, identity: Identity, *, type_hints: bool = False) -> D2CPublish:
    """The PUBLISH for one device-to-cloud message; `HubCodecError` if it cannot be sent."""
    kind, payload = mqtt_codec.body_payload(message)
    system = JSON_SYSTEM if kind == mqtt_codec.KIND_JSON else SystemProperties()
    application: dict[str, PropertyValue] = dict(message.properties())
    if type_hints:
        if BODY_KEY in application:
            raise HubCodecError(f"application property {BODY_KEY!r} is reserved while "
                             f"iothub.type_hints is on")
        application[BODY_KEY] = kind
    try:
        topic = topics.d2c_topic(identity.device_id, identity.module_id, system=system,
                                 application=application, type_hints=type_hints)
    except (TopicError, TypeError) as exc:
        raise HubCodecError(str(exc)) from None
    size = topics.hub_message_size(payload, system, application)
    if size > topics.MAX_D2C_SIZE:
        raise HubCodecError(f"the message is {size} bytes as IoT Hub counts it (body, system "
                         f"property values, property names and values); the limit is "
                         f"{topics.MAX_D2C_SIZE}", reasons.MESSAGE_SIZE)
    return D2CPublish(topic, payload, size)


def decode_c2d(topic: str, payload: bytes | bytearray, identity: Identity | None, *,
               type_hints: bool = False) -> Message:
    """The message for a C2D / module-input PUBLISH. Never raises: a topic that cannot be read
    gives the payload with no properties."""
    try:
        parsed = topics.parse_c2d_topic(
            topic, device_id=identity.device_id if identity else None,
            module_id=identity.module_id if identity else None)
    except TopicError:
        return Message(bytes(payload), {}, BodyKind.DATA)
    properties = topics.to_message_properties(parsed.bag, restore_types=type_hints)
    kind = properties.pop(BODY_KEY, None) if type_hints else None
    if isinstance(kind, str):
        body, body_kind = mqtt_codec.body_from(kind, payload)
        return Message(body, properties, body_kind)
    return Message(bytes(payload), properties, BodyKind.DATA)
