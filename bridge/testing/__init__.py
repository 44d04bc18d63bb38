"""Testing helpers shipped with the bridge.

- `bridge.testing.hub.Hub`: a local Azure IoT Hub stand-in (AMQP with ``$cbs`` put-token, and
  MQTT over TLS through a real Mosquitto) with a hub-side API to read D2C and send C2D;
- `bridge.testing.plugin`: a pytest plugin with the fixtures ``iothub_standin`` (one stand-in
  per test session) and ``iothub_device`` (a fresh device per test).

Importing this package starts nothing; the hub is imported lazily so that ``bridge.testing``
stays cheap for code that only needs the plugin's markers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["C2DState", "D2CMessage", "Hub", "HubDevice", "Surface"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from bridge.testing import hub

        return getattr(hub, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
