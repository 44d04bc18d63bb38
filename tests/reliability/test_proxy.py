"""The MQTT backend behind a proxy that stalls traffic and cuts connections at random points.

Both connections of the agent (sending and receiving) go through `TcpProxy`
(tests/support/tcp_proxy.py) to a private Mosquitto. The proxy cuts the first connections after
a seeded random number of bytes (in the middle of a packet, as a failing network does), and the
test stalls all traffic twice: briefly
(shorter than the keep-alive: the connections must survive it untouched) and long (past twice
the keep-alive: paho's keep-alive check must notice the dead path, and the backend reconnect).
Whatever happens, every message arrives and every ``sendasync`` callback fires exactly once;
duplicates (QoS 1 redeliveries) are allowed and counted.
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
from bridge.backends.mqtt.backend import live_backends
from tests.support.mosquitto import Mosquitto
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]

N = 3000
SEED = 20240917
CUTS = 8
KEEPALIVE = 2
SHORT_STALL = 1.0  # < keep-alive: nothing may notice
LONG_STALL = 2.5 * KEEPALIVE  # > 2 x keep-alive: paho gives the connection up


def test_stalls_and_random_cuts_lose_nothing(
        mosquitto: Callable[..., Mosquitto], agents: Callable[..., Agent],
        record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto(persistence=False)
    proxy = TcpProxy(broker.port, seed=SEED, cuts=CUTS, budget=(2_000, 20_000))
    try:
        agent = agents(backend="mqtt", mqtt={
            "url": proxy.url("mqtt"), "keepalive": KEEPALIVE, "reconnect": "auto",
            "reconnect_min_delay": 0.05, "reconnect_max_delay": 0.5, "clean_start": False,
            "session_expiry": 600, "buffer_limit": N, "connect_timeout": 10})
        _run(agent, proxy, record_property)
    finally:
        proxy.close()


def _run(agent: Agent, proxy: TcpProxy, record_property: Callable[[str, Any], None]) -> None:
    events: list[tuple[str, str | None]] = []
    amqp = agent.amqp
    receiving = amqp.openconnection("amqps://hub.example", lambda e, d: events.append((e, d)))
    sending = amqp.openconnection("amqps://hub.example", lambda e, d: events.append((e, d)))
    assert agent.run_until(lambda: receiving.isopen() and sending.isopen(), 20), events

    cond = threading.Condition()
    seen: Counter[str] = Counter()

    def on_messages(deliveries: list[Any]) -> None:
        with cond:
            for delivery in deliveries:
                seen[delivery.message().body()] += 1
                delivery.accept()
            cond.notify_all()

    path = f"/chaos/{uuid.uuid4().hex[:10]}"
    receiver = receiving.opensession().openreceiver(path, None, on_messages)
    sender = sending.opensession().opensender(path)
    assert agent.run_until(lambda: receiver.isopen() and sender.isopen(), 20), events
    backends = live_backends(agent.settings.agent_id)
    stats = [b.stats for b in backends]
    reconnects_after_short: list[int] = []
    failure: list[BaseException] = []

    def chaos() -> None:
        try:
            for share, seconds in ((0.2, SHORT_STALL), (0.5, LONG_STALL)):
                with cond:
                    assert cond.wait_for(lambda share=share: len(seen) >= share * N, 60), \
                        f"stream stalled before the {seconds:g} s stall"
                before = [s.reconnects for s in stats]
                proxy.stall()
                time.sleep(seconds)  # the fault itself, not a synchronisation
                proxy.resume()
                if seconds == SHORT_STALL:
                    reconnects_after_short.append(
                        sum(s.reconnects for s in stats) - sum(before))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    confirmed: list[int] = []
    started = time.monotonic()
    thread.start()
    for n in range(N):
        sender.createtransfer(amqp.createmessage(f"m{n:05d}")).sendasync(
            lambda n=n: confirmed.append(n))
        if n % 10 == 9:
            agent.run(timeout=0.005)
    assert agent.run_until(lambda: len(seen) == N and len(confirmed) == N and
                           not thread.is_alive(), 90), (
        f"{N - len(seen)} missing, {N - len(confirmed)} unconfirmed; cuts {proxy.cut_points}; "
        f"{failure}; {events}; {[s.snapshot() for s in stats]}")
    elapsed = time.monotonic() - started
    thread.join(5)
    assert not failure, failure

    assert set(seen) == {f"m{n:05d}" for n in range(N)}
    assert sorted(confirmed) == list(range(N))
    assert not [e for e in events if e[0].endswith(("_ERROR", "_CLOSED"))], events
    assert len(proxy.cut_points) >= CUTS // 2, proxy.cut_points  # the cuts really happened
    total_reconnects = sum(s.reconnects for s in stats)
    # every cut and the long stall cost a reconnect; the short stall none (checked right after
    # it, before any later cut)
    assert total_reconnects >= len(proxy.cut_points) + 1
    assert reconnects_after_short in ([0], [1]), reconnects_after_short  # a cut may coincide

    duplicates = sum(count - 1 for count in seen.values())
    record_property("duplicates", duplicates)
    record_property("cuts", len(proxy.cut_points))
    print(f"\n{N} messages through the chaos proxy (seed {SEED}): {len(proxy.cut_points)} cuts "
          f"at {proxy.cut_points} bytes, stalls {SHORT_STALL:g} s and {LONG_STALL:g} s "
          f"(keep-alive {KEEPALIVE} s); {total_reconnects} reconnects, {duplicates} duplicates "
          f"(resumed {sum(s.resumed for s in stats)}); {elapsed:.1f} s")
