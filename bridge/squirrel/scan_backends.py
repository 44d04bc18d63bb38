"""What each AMQP call becomes on a backend: addresses mapped by the backends' own codecs
(`bridge.backends.mqtt.mapping.map_path`, `bridge.backends.iothub.topics.route_for_path`) and
one line per call and backend. Pure: no backend is connected, no protocol library imported."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.errors import AddressError

# call -> backend -> what it becomes ("*": any other backend, e.g. a plugin)
BECOMES: Mapping[str, Mapping[str, str]] = {
    "opensession": {
        "memory": "a session of the in-process broker", "amqp": "an AMQP 1.0 session",
        "mqtt": "bookkeeping only: MQTT has no sessions",
        "iothub": "bookkeeping only: MQTT has no sessions", "*": "a session of the backend",
    },
    "createmessage": {
        "memory": "an in-process message (string body)",
        "amqp": "an AMQP message with an amqp-value (string) body section",
        "mqtt": "an MQTT payload (UTF-8 text); properties as MQTT 5 user properties (3.1.1: "
                "mqtt.properties_v311)",
        "iothub": "a D2C payload (UTF-8 text); properties in the topic's property bag",
        "*": "a message of the backend",
    },
    "createbinarymessage": {
        "memory": "an in-process message (binary body)",
        "amqp": "an AMQP message with a data (binary) body section",
        "mqtt": "an MQTT payload (the bytes); properties as MQTT 5 user properties",
        "iothub": "a D2C payload (the bytes); properties in the topic's property bag",
        "*": "a message of the backend",
    },
    "createtransfer": {"*": "a pending transfer (nothing sent yet)"},
    "sendasync": {
        "memory": "enqueued on the in-process node; the callback once the broker holds it",
        "amqp": "an AMQP transfer; the callback on the peer's accepted disposition",
        "mqtt": "a QoS 1 publish; the callback on PUBACK",
        "iothub": "a QoS 1 D2C publish; the callback on the hub's PUBACK",
        "*": "a transfer of the backend",
    },
    "cancel": {
        "memory": "withdrawn if not yet taken", "amqp": "withdrawn if not yet on the wire",
        "mqtt": "withdrawn only before the publish is handed to the client",
        "iothub": "withdrawn only before the publish is handed to the client",
        "*": "withdrawn if the backend can",
    },
    "accept": {
        "memory": "settled: accepted", "amqp": "the accepted outcome",
        "mqtt": "PUBACK", "iothub": "PUBACK: the C2D message completes", "*": "accepted",
    },
    "reject": {
        "memory": "settled: rejected (dropped)", "amqp": "the rejected outcome",
        "mqtt": "PUBACK, then republished to mqtt.dead_letter_topic if set (else dropped)",
        "iothub": "PUBACK: the hub counts the message as completed",
        "*": "rejected",
    },
    "release": {
        "memory": "settled: released (redelivered)", "amqp": "the released outcome",
        "mqtt": "redelivered after mqtt.release_delay, up to mqtt.max_delivery_count",
        "iothub": "redelivered by the bridge (iothub.release = redeliver) up to "
                  "max_delivery_count",
        "*": "released",
    },
    "event": {"*": "the same event string, from the backend's lifecycle"},
}


def becomes(call: str, backend: str) -> str:
    table = BECOMES[call]
    return table.get(backend) or table["*"]


def connection(backend: str, url: str) -> str:
    """What ``amqp.openconnection(url, …)`` becomes."""
    # not urlsplit().hostname: it lower-cases, and {placeholders} must stay as written
    host = url.partition("://")[2].partition("/")[0].rpartition("@")[2]
    if backend == "memory":
        return "a connection to the in-process broker (memory.broker)"
    if backend == "amqp":
        return f"an AMQP 1.0 connection to {url}"
    if backend == "mqtt":
        return ("an MQTT connection to the broker in mqtt.url (the URL's user:password, if "
                "any, log in)")
    if backend == "iothub":
        where = f"else the URL's host {host}" if host else "else the URL's host"
        return ("an MQTT connection to IoT Hub: host from iothub.hostname or the connection "
                f"string, {where}")
    return f"a connection of backend {backend!r}"


def address(backend: str, role: str, path: str,
            mqtt_rules: tuple[object, ...] = (), reserved_prefix: str = "bridge"
            ) -> tuple[str, str | None]:
    """(what a sender/receiver on ``path`` becomes, the problem if it cannot open there)."""
    if backend == "memory":
        node = "the $cbs node, answered in process" if path == "$cbs" else f"node {path!r}"
        return f"in-process {role} on {node}", None
    if backend == "amqp":
        return f"an AMQP {role} link to {path!r} (1:1)", None
    if backend == "mqtt":
        from bridge.backends.mqtt.mapping import map_path

        try:
            route = map_path(path, role, mqtt_rules,  # type: ignore[arg-type]
                             reserved_prefix=reserved_prefix)
        except AddressError as exc:
            return "cannot open", str(exc)
        verb = "publishes to topic" if role == "sender" else "subscribes to"
        return f"{verb} {route.topic!r}", None
    if backend == "iothub":
        from bridge.backends.iothub.topics import RouteKind, route_for_path

        try:
            hub = route_for_path(role, path)
        except AddressError as exc:
            return "cannot open", str(exc)
        if hub.kind is RouteKind.CBS:
            return "the emulated $cbs node: a put-token becomes the MQTT password", None
        if hub.kind is RouteKind.TELEMETRY:
            return f"D2C publishes on {hub.topic!r} + property bag", None
        if hub.kind is RouteKind.C2D:
            return f"the C2D subscription {hub.topic!r}", None
        return f"the module-input subscription {hub.topic!r}", None
    return f"a {role} of backend {backend!r} on {path!r}", None


__all__ = ["BECOMES", "address", "becomes", "connection"]
