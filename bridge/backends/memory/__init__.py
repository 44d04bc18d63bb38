"""The ``memory`` backend: an in-process AMQP-like broker, the default (nothing to install).

`broker` (queues, credit, settlement, the hub-side view `get_broker`), `backend` (one connection
of the contract to a broker), `settings` (``[memory]``).
"""

from __future__ import annotations

from bridge.backends.memory.broker import MemoryBroker, QueueStats, get_broker
from bridge.backends.registry import BackendEntry, Capabilities

ENTRY = BackendEntry(
    name="memory",
    factory="bridge.backends.memory.backend:create",
    settings="bridge.backends.memory.settings:MemorySettings",
    description="in-process broker; needs nothing running (the default)",
    capabilities=Capabilities(),
)

__all__ = ["ENTRY", "MemoryBroker", "QueueStats", "get_broker"]
