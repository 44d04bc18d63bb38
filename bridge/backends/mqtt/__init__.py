"""The ``mqtt`` backend: AMQP agent code over an MQTT broker with paho-mqtt 2.x.

`mapping` (path <-> topic rules, pure), `settings` (``[mqtt]``), `backend` (the glue: addresses,
codec choice per protocol version). The network side - driver, outbound window, inbox, codec -
is the MQTT engine (`bridge.engines.mqtt`), shared with the ``iothub`` backend.

Importing this package does not import paho; the factory's module does.
"""

from __future__ import annotations

from types import MappingProxyType

from bridge.backends.registry import BackendEntry, Capabilities

ENTRY = BackendEntry(
    name="mqtt",
    factory="bridge.backends.mqtt.backend:create",
    settings="bridge.backends.mqtt.settings:MQTTSettings",
    description="MQTT 3.1.1 / 5 broker via paho-mqtt",
    capabilities=Capabilities(
        credit=False, cancel_withdraws=False, link_detach=False, cbs=False,
        deviations=MappingProxyType({
            37: "MQTT has no consumer-granted credit: the broker PUBACKs a publish at once "
                "and keeps no message for a topic nobody subscribes to",
            39: "a transfer already handed to the broker cannot be withdrawn: cancel() only "
                "stops its callback (a transfer waits for credit only in the in-flight window)",
            45: "MQTT has no per-link detach: the nearest is a publish the broker refuses "
                "(MQTT 5 PUBACK 0x87), reported as SENDER_ERROR with amqp:unauthorized-access; "
                "the sender stays open",
        })),
)

__all__ = ["ENTRY"]
