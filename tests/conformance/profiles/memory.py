"""Conformance profile of the in-process broker: faults are injected through its hub-side API."""

from __future__ import annotations

import uuid
from typing import Any

from bridge import Agent, Message, Settings
from bridge.backends.memory import get_broker
from bridge.contract.message import BodyKind

from .base import BackendProfile

_INJECTED: dict[str, tuple[Any, dict[str, Any]]] = {
    "unconvertible_property": ("x", {"ok": 1, "bad": uuid.uuid4()}),
    "unsupported_body": (uuid.uuid4(), {}),
    "list_body": ([1, "a"], {}),
    "map_body": ({"k": 1}, {}),
    "symbol_body": ("sym", {}),
}


class MemoryProfile(BackendProfile):
    name = "memory"
    timeout = 5.0

    def failing_open(self) -> tuple[Settings, str]:
        settings = self.settings(memory={"users": {"device": "right-password"}})
        return settings, "amqps://device:wrong-password@bridge-conformance.example"

    def drop_connection(self, agent: Agent) -> None:
        get_broker(agent.settings.memory.broker).drop_connections(
            "amqp:connection:forced: conformance test dropped the connection")

    def detach_with_error(self, agent: Agent, path: str) -> str:
        get_broker(agent.settings.memory.broker).detach(
            path, "amqp:unauthorized-access", "token expired")
        return "amqp:unauthorized-access"

    def starve_credit(self, path: str) -> dict[str, Any]:
        return {"memory": {"queue_capacity": 1}}

    def inject(self, agent: Agent, path: str, case: str) -> None:
        body, properties = _INJECTED[case]
        get_broker(agent.settings.memory.broker).publish(
            path, Message(body, properties, BodyKind.VALUE))

    def attached_receivers(self, agent: Agent, path: str) -> int:
        broker = get_broker(agent.settings.memory.broker)
        with broker.lock:
            queue = broker._queues.get(path)
            return len(queue.consumers) if queue is not None else 0


PROFILE = MemoryProfile()
