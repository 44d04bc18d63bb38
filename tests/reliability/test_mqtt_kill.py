"""A private Mosquitto is SIGKILLed and restarted five times during a QoS 1 stream: every
message arrives, duplicates are counted.

What makes "none lost" hold across a *crash* (tests/integration/mqtt/test_restart.py covers a
clean SIGTERM restart):

- the sender's unacknowledged publishes are resent after each reconnect (``reconnect = "auto"``,
  paho keeps them until PUBACK) and new sends wait in the offline buffer meanwhile;
- the receiver has a persistent session (``clean_start = false``, ``session_expiry``), and the
  broker writes its state after every change (``autosave_interval 1``, ``autosave_on_changes``):
  a crash keeps the subscription and what is queued for the receiver. With Mosquitto's default
  (save on shutdown only) a SIGKILL forgets the session, and whatever the sender publishes
  before the receiver has subscribed again is dropped by the broker - correctly: that is the
  broker's durability, which no client can make up for;
- the stream is paced so the receiver keeps up: a message Mosquitto acknowledged is then usually
  already written to the receiver's socket, or saved, when the next kill comes.

The one loss no client can prevent: Mosquitto acknowledges a publish before its next save, so a
SIGKILL in that instant (under CI load it happened once in ~30 runs) destroys a message the
broker had confirmed. The test therefore accepts a missing message only if its PUBACK came within
`BROKER_SAVE_WINDOW` before a kill, at most one per kill, and fails on any other loss.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from bridge import Agent
from bridge.backends.mqtt.backend import MQTTBackend, live_backends
from tests.reliability.conftest import CRASH_SAFE
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

N = 3000
KILLS = 5
DOWN = 0.3  # seconds the broker stays dead: sends pile up in the offline buffer meanwhile
BROKER_SAVE_WINDOW = 1.0  # autosave_interval: what a SIGKILL can take from the broker


def _watch_ups(backend: MQTTBackend, ups: list[float], cond: threading.Condition) -> None:
    """Record when *backend* (re)connects; its CONNACKs are invisible to agent code."""
    original = backend.on_up

    def on_up(*args: Any) -> None:
        original(*args)
        with cond:
            ups.append(time.monotonic())
            cond.notify_all()

    backend.on_up = on_up  # type: ignore[method-assign]


def test_broker_killed_five_times_during_a_qos1_stream(
        mosquitto: Callable[..., Mosquitto], agents: Callable[..., Agent],
        record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto(persistence=True, extra=CRASH_SAFE)
    agent = agents(backend="mqtt", mqtt={
        "url": broker.url, "reconnect": "auto", "reconnect_min_delay": 0.05,
        "reconnect_max_delay": 0.5, "clean_start": False, "session_expiry": 600,
        "buffer_limit": N})
    events: list[tuple[str, str | None]] = []
    amqp = agent.amqp
    receiving = amqp.openconnection("amqps://hub.example", lambda e, d: events.append((e, d)))
    sending = amqp.openconnection("amqps://hub.example", lambda e, d: events.append((e, d)))
    assert agent.run_until(lambda: receiving.isopen() and sending.isopen(), 10), events

    cond = threading.Condition()
    seen: Counter[str] = Counter()
    arrivals: list[float] = []

    def on_messages(deliveries: list[Any]) -> None:
        now = time.monotonic()
        with cond:
            for delivery in deliveries:
                seen[delivery.message().body()] += 1
                delivery.accept()
            arrivals.append(now)
            cond.notify_all()

    path = f"/kill/{uuid.uuid4().hex[:10]}"
    receiver = receiving.opensession().openreceiver(path, None, on_messages)
    sender = sending.opensession().opensender(path)
    assert agent.run_until(lambda: receiver.isopen() and sender.isopen(), 10), events
    backends = live_backends(agent.settings.agent_id)
    assert len(backends) == 2
    ups: dict[int, list[float]] = {id(b): [] for b in backends}
    for backend in backends:
        _watch_ups(backend, ups[id(backend)], cond)

    restarts: list[tuple[float, float]] = []  # (killed, running again)
    failure: list[BaseException] = []

    def chaos() -> None:
        try:
            for k in range(1, KILLS + 1):
                with cond:
                    assert cond.wait_for(lambda k=k: len(seen) >= k * N // (KILLS + 1), 60), \
                        f"stream stalled before kill {k}"
                killed = time.monotonic()
                broker.kill()
                time.sleep(DOWN)  # the outage itself, not a synchronisation
                broker.start()
                running = time.monotonic()
                restarts.append((killed, running))
                with cond:  # both connections back before the next crash
                    assert cond.wait_for(lambda running=running: all(
                        any(t >= running for t in times) for times in ups.values()), 30), \
                        f"no reconnect after kill {k}"
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    confirmed: list[int] = []
    confirmed_at: dict[int, float] = {}
    started = time.monotonic()
    thread.start()
    for n in range(N):
        sender.createtransfer(amqp.createmessage(f"m{n:05d}")).sendasync(
            lambda n=n: (confirmed.append(n), confirmed_at.setdefault(n, time.monotonic())))
        if n % 10 == 9:
            agent.run(timeout=0.005)  # paced (about 1,500/s): the receiver keeps up
    stats = [b.stats for b in backends]
    assert agent.run_until(lambda: len(confirmed) == N and not thread.is_alive(), 90), (
        f"{N - len(seen)} missing, {N - len(confirmed)} unconfirmed, {len(restarts)} restarts; "
        f"{failure}; {events}; {[s.snapshot() for s in stats]}")
    agent.run_until(lambda: len(seen) == N, 20)
    elapsed = time.monotonic() - started
    thread.join(5)
    assert not failure, failure

    missing = sorted({f"m{n:05d}" for n in range(N)} - set(seen))
    lost_to_crash = [name for name in missing if any(
        abs(killed - confirmed_at[int(name[1:])]) <= BROKER_SAVE_WINDOW
        for killed, _ in restarts)]
    record_property("lost_to_broker_crash", len(lost_to_crash))
    assert missing == lost_to_crash, (  # nothing lost by the bridge
        f"lost outside a broker crash: {sorted(set(missing) - set(lost_to_crash))}; "
        f"{[s.snapshot() for s in stats]}")
    assert len(lost_to_crash) <= KILLS
    assert sorted(confirmed) == list(range(N))  # each callback exactly once
    assert not [e for e in events if e[0].endswith(("_ERROR", "_CLOSED"))], events
    assert receiver.isopen() and sender.isopen()
    assert len(restarts) == KILLS
    assert [s.reconnects for s in stats] == [KILLS, KILLS]  # each crash was a real outage

    duplicates = sum(count - 1 for count in seen.values())
    # per restart: until both connections are back, and until the receiver (once back) got a
    # message again - end to end
    receiver_ups = next(ups[id(b)] for b in backends if b.inbox.subs)
    reconnect = [max(min(t for t in times if t >= running) for times in ups.values()) - running
                 for _, running in restarts]
    recovery = []
    for _, running in restarts:
        back = min(t for t in receiver_ups if t >= running)
        recovery.append(min(t for t in arrivals if t >= back) - running)
    record_property("duplicates", duplicates)
    record_property("recovery_seconds", [round(r, 3) for r in recovery])
    print(f"\n{N} messages, {KILLS} SIGKILLs: {duplicates} duplicates "
          f"(resumed {sum(s.resumed for s in stats)}, DUP-flagged "
          f"{sum(s.duplicates_flagged for s in stats)}); reconnect after restart "
          f"{[round(r, 3) for r in reconnect]} s, first delivery after restart (end to end) "
          f"{[round(r, 3) for r in recovery]} s; {elapsed:.1f} s in all")
