"""Azure IoT Hub: the ``iothub`` backend and its building blocks.

- `bridge.backends.iothub.backend`: `IoTHubBackend` (``create``), AMQP agent code with CBS
  put-token over IoT Hub's MQTT device surface, on the MQTT backend's transport;
- `bridge.backends.iothub.identity`: settings + URL -> identity, endpoint, credentials;
- `bridge.backends.iothub.cbs`: the emulated ``$cbs`` node (put-token checks, replies);
- `bridge.backends.iothub.codec`: contract messages <-> D2C / C2D publishes;
- `bridge.backends.iothub.connection_string`, `sas`, `topics`: pure codecs shared with the hub
  stand-in (connection strings, SAS tokens, MQTT topics and property bags).

See docs/backends/iothub.md for every decision. Importing this package does not import paho;
`create` does (the registry maps ``iothub`` to ``bridge.backends.iothub.backend:create``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.backends.base import BackendContext
    from bridge.backends.iothub.backend import IoTHubBackend


def create(context: BackendContext) -> IoTHubBackend:
    from bridge.backends.iothub.backend import IoTHubBackend

    return IoTHubBackend(context)


__all__ = ["create"]
