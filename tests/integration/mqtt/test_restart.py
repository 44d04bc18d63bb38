"""A broker restart in the middle of a 5,000-message QoS 1 stream loses nothing.

What makes "none lost" hold, and what the test sets up for it:

- the sender's unacknowledged publishes are resent after the reconnect (paho keeps them until
  PUBACK; ``reconnect = "auto"``), and new sends wait in the offline buffer meanwhile;
- the receiver's subscription and the messages queued for it while it is away survive in a
  persistent session (``clean_start = false``, ``session_expiry``) on a broker that writes its
  state on shutdown (``persistence true``); Mosquitto stops gracefully on SIGTERM;
- deliveries the receiver got but had not acknowledged when the broker went are delivered again
  (DUP): duplicates are allowed and counted, never losses.

A broker *crash* (SIGKILL) would lose what Mosquitto acknowledged since its last save: that is
the broker's durability, not the bridge's (docs/semantics.md).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from bridge import Agent, Settings
from bridge.backends.mqtt.backend import live_backends
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]

N = 5000


def test_broker_restart_mid_stream_loses_no_message(
        private_broker: Callable[..., Mosquitto], record_property: Callable[[str, Any], None]
        ) -> None:
    broker = private_broker(persistence=True)
    agent = Agent(Settings(backend="mqtt", agent_id=f"restart-{uuid.uuid4().hex[:8]}", mqtt={
        "url": broker.url, "reconnect": "auto", "reconnect_min_delay": 0.05,
        "reconnect_max_delay": 0.5, "clean_start": False, "session_expiry": 300,
        "buffer_limit": N}))
    try:
        events: list[tuple[str, str | None]] = []

        def record(event: str, detail: str | None) -> None:
            events.append((event, detail))

        amqp = agent.amqp
        receiving = amqp.openconnection("amqps://hub.example", record)
        sending = amqp.openconnection("amqps://hub.example", record)
        assert agent.run_until(lambda: receiving.isopen() and sending.isopen(), 10), events
        path = f"/restart/{uuid.uuid4().hex[:10]}"
        seen: Counter[str] = Counter()

        def on_messages(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                seen[delivery.message().body()] += 1
                delivery.accept()

        receiver = receiving.opensession().openreceiver(path, None, on_messages)
        sender = sending.opensession().opensender(path)
        assert agent.run_until(lambda: receiver.isopen() and sender.isopen(), 10), events
        confirmed: list[int] = []
        started = time.monotonic()
        for n in range(N):
            sender.createtransfer(amqp.createmessage(f"m{n:05d}")).sendasync(
                lambda n=n: confirmed.append(n))

        assert agent.run_until(lambda: len(seen) >= N // 2, 30), "stream did not start"
        at_restart = len(seen)
        broker.restart()  # SIGTERM, wait, start again on the same port and persistence file

        backends = live_backends(agent.settings.agent_id)
        assert agent.run_until(lambda: len(seen) == N and len(confirmed) == N, 60), (
            f"{N - len(seen)} messages missing, {N - len(confirmed)} unconfirmed; {events}; "
            f"{[b.stats.snapshot() for b in backends]}")
        elapsed = time.monotonic() - started
        duplicates = sum(count - 1 for count in seen.values())
        assert set(seen) == {f"m{n:05d}" for n in range(N)}
        assert sorted(confirmed) == list(range(N))  # each callback exactly once
        assert not [e for e in events if e[0].endswith(("_ERROR", "_CLOSED"))], events
        assert receiver.isopen() and sender.isopen()
        assert [b.stats.reconnects for b in backends] == [1, 1]  # it really went down once
        assert 0 < at_restart < N
        record_property("duplicates", duplicates)
        record_property("received_at_restart", at_restart)
        record_property("seconds", round(elapsed, 2))
        print(f"\n{N} messages, restart after {at_restart} received, {duplicates} duplicates, "
              f"{elapsed:.2f} s")
    finally:
        agent.close()
