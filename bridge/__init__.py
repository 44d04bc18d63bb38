"""amqp-mqtt-bridge: legacy imp agent AMQP code, unchanged, over AMQP 1.0, MQTT or in memory."""

from bridge import events
from bridge.agent import Agent
from bridge.backends.registry import register_backend
from bridge.contract.message import BodyKind, Message
from bridge.contract.objects import (
    Connection,
    Delivery,
    Receiver,
    Sender,
    Session,
    Transfer,
)
from bridge.errors import (
    AddressError,
    BridgeError,
    ClosedError,
    ConfigError,
    FeatureDisabledError,
    LimitError,
)
from bridge.settings import Settings
from bridge.version import __version__

__all__ = [
    "AddressError",
    "Agent",
    "BodyKind",
    "BridgeError",
    "ClosedError",
    "ConfigError",
    "Connection",
    "Delivery",
    "FeatureDisabledError",
    "LimitError",
    "Message",
    "Receiver",
    "Sender",
    "Session",
    "Settings",
    "Transfer",
    "__version__",
    "events",
    "register_backend",
]
