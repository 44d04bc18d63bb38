"""MQTT connections of many agents on the process's few network loops (the system Mosquitto)."""

from __future__ import annotations

import threading
import uuid

import pytest

from bridge import Agent, Settings
from bridge.engines.mqtt import transport
from bridge.loop.network import LoopPool

pytestmark = pytest.mark.integration


def test_a_network_loop_that_dies_ends_every_connection_on_it_with_the_cause(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pool = LoopPool(1, name="test-dying")
    monkeypatch.setattr(transport, "shared_loops", lambda: pool)
    agents = [Agent(Settings(backend="mqtt", agent_id=f"dying-{n}-{uuid.uuid4().hex[:6]}"))
              for n in range(3)]
    events: dict[int, list[tuple[str, str | None]]] = {n: [] for n in range(3)}
    ended = threading.Semaphore(0)

    def recorder(n: int):  # type: ignore[no-untyped-def]
        def on_event(event: str, detail: str | None) -> None:
            events[n].append((event, detail))
            if event == "CONNECTION_ERROR":
                ended.release()
        return on_event

    connections = [agent.amqp.openconnection("amqps://loop.example", recorder(n))
                   for n, agent in enumerate(agents)]
    try:
        for n, agent in enumerate(agents):
            assert agent.run_until(lambda n=n: bool(events[n]), 10)
            assert events[n][0][0] == "CONNECTION_OPEN"
            agent.start()
        [loop] = pool.loops

        def broken() -> None:
            raise RuntimeError("injected: the loop's own code failed")

        monkeypatch.setattr(loop, "_run_tidy", broken)
        loop.core.wake_now()
        for _ in agents:
            assert ended.acquire(timeout=10)
        for n in range(3):
            event, detail = events[n][-1]
            assert event == "CONNECTION_ERROR"
            assert detail is not None and "amqp:internal-error" in detail
            assert "network loop test-dying-1 stopped" in detail and "injected" in detail
        assert not any(conn.isopen() for conn in connections)
    finally:
        for agent in agents:
            agent.close()
