"""Stable ids of relayed messages and the properties the relay adds: pure functions.

Every forwarded message carries ``bridge-relay-id`` (an AMQP application property; on MQTT 5 a
user property). It is the source's own id when the message already has one (a message relayed
twice keeps the id of the first hop), otherwise a digest of the source endpoint and the
message's content (body kind, body, properties). A broker's delivery tag or packet id changes
when it delivers again, so it cannot name "the same message"; the content can. Two messages
with identical content on one source therefore get the same id: a producer that sends
identical messages on purpose gives each a distinguishing property (a sequence number, a
timestamp).
"""

from __future__ import annotations

import hashlib

from bridge.contract.message import Message

ID_PROPERTY = "bridge-relay-id"
REASON_PROPERTY = "bridge-relay-dead-reason"  # on a dead letter: why the target refused it
RULE_PROPERTY = "bridge-relay-dead-rule"  # on a dead letter: the rule it came through


def _body_bytes(body: object) -> bytes:
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return repr(body).encode("utf-8", "surrogatepass")  # an AMQP value: list, map, number...


def stable_id(source: str, message: Message) -> str:
    """The id of *message* received on *source* (``BACKEND:PATH``): 32 hex digits, or the id
    it already carries."""
    existing = message._properties.get(ID_PROPERTY)
    if isinstance(existing, str) and existing:
        return existing
    digest = hashlib.sha256()  # SHA-256 has CPU instructions (SHA-NI): 2x BLAKE2b on 16 KiB
    digest.update(source.encode("utf-8", "surrogatepass"))
    digest.update(b"\x00" + message.kind.value.encode() + b"\x00")
    body = _body_bytes(message._body)
    digest.update(len(body).to_bytes(8, "big"))
    digest.update(body)
    for key in sorted(message._properties):
        value = message._properties[key]
        digest.update(f"\x00{key}\x00{type(value).__name__}\x00{value!r}".encode(
            "utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def with_properties(message: Message, extra: dict[str, str]) -> Message:
    """*message* with *extra* application properties added (the body is shared, not copied)."""
    return Message(message._body, {**message._properties, **extra}, message.kind)
