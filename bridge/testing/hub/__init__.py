"""A local Azure IoT Hub stand-in with the AMQP and the MQTT device surfaces.

See `bridge.testing.hub.api.Hub` for the API, and the module docstrings of `amqp_front`,
`amqp_surface`, `mqtt_front`, `mqtt_surface` and `registry` for what each surface accepts and
how the C2D queue behaves. ``python -m bridge.testing.hub`` (``bridge hub``) runs one.
"""

from __future__ import annotations

from bridge.testing.hub.api import Hub, HubDevice
from bridge.testing.hub.registry import (
    AuthAttempt,
    C2DMessage,
    C2DOutcome,
    C2DState,
    D2CMessage,
    Device,
    QueueFullError,
    Settlement,
    Surface,
)

__all__ = [
    "AuthAttempt",
    "C2DMessage",
    "C2DOutcome",
    "C2DState",
    "D2CMessage",
    "Device",
    "Hub",
    "HubDevice",
    "QueueFullError",
    "Settlement",
    "Surface",
]
