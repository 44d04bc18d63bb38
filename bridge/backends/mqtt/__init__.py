"""The ``mqtt`` backend: AMQP agent code over an MQTT broker with paho-mqtt 2.x.

Pure, settings-free modules: `mapping` (path <-> topic rules), `codec` (message <-> payload and
user properties), `endpoint` (URLs, client ids, backoff), `reasons` (errorDetail texts). The
network side: `transport` (the driver thread that owns the paho client), `outbound` (window,
buffer, PUBACKs), `inbound` (subscriptions, routing, settlement), `backend` (the glue).

Importing this package does not import paho; `create` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.backends.base import BackendContext
    from bridge.backends.mqtt.backend import MQTTBackend


def create(context: BackendContext) -> MQTTBackend:
    from bridge.backends.mqtt import fastprops
    from bridge.backends.mqtt.backend import MQTTBackend

    fastprops.install()
    return MQTTBackend(context)


__all__ = ["create"]
