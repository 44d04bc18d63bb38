"""ws:// against a private Mosquitto with a WebSocket listener (paho's WebSocket wrapper under
the driver's buffered socket)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge import Agent
from tests.support.mosquitto import Mosquitto, free_port

from .conftest import Objects, unique

pytestmark = pytest.mark.integration


def test_messages_small_and_large_cross_websockets_whole_and_in_order(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    ws_port = free_port()
    private_broker(extra=[f"listener {ws_port} 127.0.0.1", "protocol websockets"])
    objects = Objects(make_agent(url=f"ws://127.0.0.1:{ws_port}/mqtt"))
    assert objects.has("CONNECTION_OPEN"), objects.events
    path = f"/ws/{unique('p')}"
    objects.receiver(path)
    sender = objects.sender(path)
    # small ones come several to a socket read; large ones span several reads. (Larger bodies
    # stall in Mosquitto 2.0's own WebSocket sending - with raw paho as well - so 32 KiB.)
    bodies = [i.to_bytes(4, "big") * (8 if i % 10 else 8 * 1024) for i in range(200)]
    confirmed: list[int] = []
    for i, body in enumerate(bodies):
        sender.createtransfer(objects.agent.amqp.createbinarymessage(body, {"i": i})).sendasync(
            lambda i=i: confirmed.append(i))
    objects.wait(lambda: len(objects.messages) == len(bodies) and len(confirmed) == len(bodies),
                 "every message over WebSockets", timeout=30)
    assert [m.properties()["i"] for m in objects.messages] == list(range(len(bodies)))
    assert [m.body() for m in objects.messages] == bodies
    assert confirmed == list(range(len(bodies)))
