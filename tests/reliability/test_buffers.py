"""Bounded buffers: with the broker down, sends past the bound fail one by one with
``SENDER_ERROR`` naming the bound, and memory stops growing at the bound.

Two bounds are tried while a private Mosquitto is dead (``reconnect = "auto"`` keeps the
connection and its sender open): the MQTT backend's offline buffer (``mqtt.buffer_limit``), and
the durable outbox (``outbox.max_messages``, which then takes the backlog off the backend).
Each send that does not fit fails at once - never a silent drop, never an unbounded queue -
and `tracemalloc` shows that eight more batches of overflowing sends (with 1 KB bodies) leave
the traced memory where it was after the first. When the broker is back, what was held is
delivered.
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import Agent
from bridge.backends.mqtt.backend import live_backends
from tests.reliability.conftest import Subscriber, signal_on
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

LIMIT = 500
BATCHES = 10  # of LIMIT sends each: 1 fits, 9 overflow
BODY = "x" * 1000
# Traced memory may grow this much from batch 2 to batch 10. Holding the overflowing sends
# would add about 8 x LIMIT x 1 KB = 4 MB.
GROWTH_BOUND = 256 * 1024


# What the test harness itself keeps per log line (the suite-wide secret guard records every
# bridge log line, pytest's caplog every record) is not the bridge's memory.
_HARNESS = [tracemalloc.Filter(False, logging.__file__),
            tracemalloc.Filter(False, "*/_pytest/*"),
            tracemalloc.Filter(False, "*/tests/conftest.py")]


def _bridge_memory() -> int:
    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces(_HARNESS)
    return sum(stat.size for stat in snapshot.statistics("filename"))


@pytest.mark.parametrize("bound", ["buffer_limit", "outbox"])
def test_sends_past_the_bound_fail_and_memory_stays_bounded(
        bound: str, mosquitto: Callable[..., Mosquitto], agents: Callable[..., Agent],
        subscriber: Callable[..., Subscriber], tmp_path: Path,
        record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto(persistence=True)
    path = f"/bounded/{uuid.uuid4().hex[:8]}"
    raw = subscriber(broker.port, path.lstrip("/"))
    mqtt = {"url": broker.url, "reconnect": "auto", "reconnect_min_delay": 0.05,
            "reconnect_max_delay": 0.2}
    if bound == "buffer_limit":
        agent = agents(backend="mqtt", mqtt={**mqtt, "buffer_limit": LIMIT})
        expected = "mqtt.buffer_limit = 500"
    else:
        agent = agents(backend="mqtt", mqtt=mqtt,
                       outbox={"path": str(tmp_path / "outbox.db"), "max_messages": LIMIT,
                               "window": 50})
        expected = "outbox full"
    errors: list[int] = [0]  # a count, and the distinct texts: storing each would grow too
    details: set[str | None] = set()

    def on_sender(event: str, detail: str | None) -> None:
        if event == "SENDER_ERROR":
            errors[0] += 1
            if len(details) < 5:
                details.add(detail)

    amqp = agent.amqp
    conn = amqp.openconnection("amqps://hub", lambda e, d: None)
    sender = conn.opensession().opensender(path, on_sender)
    assert agent.run_until(sender.isopen, 10)
    (backend,) = live_backends(agent.settings.agent_id)
    down = signal_on(backend, "on_down")
    broker.stop()  # SIGTERM: the raw subscriber's session is saved for the restart
    assert down.wait(10)

    confirmed: list[int] = []
    sent = 0
    # Each overflow is also logged at DEBUG, and pytest's log capture keeps every record (and
    # the errorDetail it refers to): the harness's memory, not the bridge's. Measured at INFO.
    quiet = logging.getLogger("bridge.backends.mqtt")
    level = quiet.level
    quiet.setLevel(logging.INFO)
    tracemalloc.start()
    try:
        traced: list[int] = []
        for batch in range(BATCHES):
            for _ in range(LIMIT):
                sender.createtransfer(amqp.createmessage(BODY)).sendasync(
                    lambda: confirmed.append(1))
                sent += 1
            overflowed = sent - LIMIT
            assert agent.run_until(lambda overflowed=overflowed: errors[0] == overflowed, 20), \
                (batch, errors[0])
            if batch >= 1:
                traced.append(_bridge_memory())
    finally:
        tracemalloc.stop()
        quiet.setLevel(level)
    growth = traced[-1] - traced[0]

    assert errors[0] == (BATCHES - 1) * LIMIT  # one SENDER_ERROR per send that did not fit
    assert details and all(expected in (d or "") for d in details), details
    assert sender.isopen() and conn.isopen()  # the sender stays usable
    assert growth < GROWTH_BOUND, f"traced memory grew {growth} bytes: {traced}"
    if bound == "buffer_limit":
        assert len(backend.outbound.waiting) == LIMIT
        assert backend.stats.buffer_overflows == (BATCHES - 1) * LIMIT
    else:
        outbox = agent._rt.outbox
        assert outbox is not None and outbox.count == LIMIT
        assert len(backend.outbound.waiting) <= 50  # the outbox window, not the backlog

    broker.start()
    assert agent.run_until(lambda: len(confirmed) == LIMIT, 30), len(confirmed)
    assert raw.wait(lambda: sum(raw.bodies.values()) >= LIMIT, 10)
    assert raw.bodies == {BODY.encode(): LIMIT}  # exactly what was held, once each
    record_property("memory_growth_bytes", growth)
    print(f"\n{bound}: {(BATCHES - 1) * LIMIT} SENDER_ERRORs, traced memory from batch 2 to "
          f"{BATCHES}: {growth:+d} bytes (held: {LIMIT} x 1 KB)")
