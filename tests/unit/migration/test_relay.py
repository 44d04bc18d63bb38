"""The relay's forwarding logic on the in-process broker (real brokers: tests/integration)."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from typing import Any

import pytest

from bridge import Message, Settings
from bridge.backends.memory import get_broker
from bridge.migration.relay import Relay, parse_endpoint


def _settings(broker: str, **relay: Any) -> Settings:
    return Settings(agent_id=f"relay{uuid.uuid4().hex[:6]}", memory={"broker": broker},
                    relay={"rules": [{"source": "memory:/in", "target": "memory:/out"}],
                           "status_interval": 0, "reconnect_min_delay": 0.05, **relay})


def test_parse_endpoint() -> None:
    assert parse_endpoint("amqp:/queue/x") == ("amqp", "/queue/x")
    with pytest.raises(ValueError, match="BACKEND:PATH"):
        parse_endpoint("no-colon")


def test_forwards_and_settles_source_only_after_target_confirmed() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    for i in range(500):
        broker.publish("/in", Message.data(f"m{i}", {"i": i}))
    relay = Relay(_settings(name, window=10))
    relay.start()
    assert relay.agent.run_until(lambda: broker.stats("/out").enqueued == 500, 10)
    assert relay.agent.run_until(lambda: broker.stats("/in").accepted == 500, 5)
    stats = relay.forwarders[0].stats
    assert stats.forwarded == 500 and stats.failed == 0
    assert relay.in_flight() == 0
    relay.drain()
    relay._drain()


def test_window_bounds_in_flight() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    relay = Relay(_settings(name, window=3, drain_timeout=0.2))
    relay.start()
    assert relay.agent.run_until(lambda: all(s.state == "open" for s in relay.sides.values()), 5)
    forwarder = relay.forwarders[0]
    assert relay.agent.run_until(lambda: forwarder.sender is not None
                                 and forwarder.sender.isopen(), 5)
    # hold the target's confirmations: block its queue (capacity reached) by filling it
    with broker.lock:
        broker._queue("/out", None).capacity = 1
    for i in range(20):
        broker.publish("/in", Message.data(f"m{i}"))
    assert relay.agent.run_until(lambda: len(forwarder.inflight) == 3, 5)
    relay.agent.run(timeout=0.2)
    assert len(forwarder.inflight) == 3  # never more than the window
    assert broker.stats("/in").accepted == 1  # only what the target confirmed
    relay._drain()


def test_drain_releases_waiting_messages_and_loses_nothing() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    relay = Relay(_settings(name, window=2, drain_timeout=5))
    relay.start()
    forwarder = relay.forwarders[0]
    assert relay.agent.run_until(lambda: forwarder.sender is not None
                                 and forwarder.sender.isopen(), 5)
    for i in range(50):
        broker.publish("/in", Message.data(f"m{i}"))
    assert relay.agent.run_until(lambda: forwarder.stats.forwarded >= 5, 5)
    relay.drain()
    relay._drain()
    out, source = broker.stats("/out"), broker.stats("/in")
    # everything forwarded was accepted at the source; the rest is back on the source queue
    assert source.accepted == out.enqueued == forwarder.stats.forwarded
    assert source.depth + source.accepted == 50


def test_target_loss_resends_in_flight_after_reconnect() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    relay = Relay(_settings(name, window=5))
    relay.start()
    forwarder = relay.forwarders[0]
    assert relay.agent.run_until(lambda: forwarder.sender is not None
                                 and forwarder.sender.isopen(), 5)
    for i in range(100):
        broker.publish("/in", Message.data(f"m{i}"))
    assert relay.agent.run_until(lambda: forwarder.stats.forwarded >= 10, 5)
    broker.drop_connections()
    assert relay.agent.run_until(lambda: broker.stats("/in").accepted == 100, 10)
    with broker.lock:  # nobody consumes /out: everything the target confirmed is still there
        bodies = [entry.message.body() for entry in broker._queues["/out"].messages]
    assert set(bodies) == {f"m{i}".encode() for i in range(100)}
    # duplicates only from resends (target lost) or redeliveries (source lost: since sources
    # and targets have their own connections, either may go first)
    assert len(bodies) - 100 <= forwarder.stats.resent + forwarder.stats.redelivered
    relay._drain()


def test_metrics_endpoint_serves_prometheus_text() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    relay = Relay(_settings(name, metrics_port=0))
    relay.start()
    broker.publish("/in", Message.data("x"))
    assert relay.agent.run_until(lambda: relay.forwarders[0].stats.forwarded == 1, 5)
    assert relay._metrics is not None
    port = relay._metrics.server_address[1]
    result: dict[str, str] = {}

    def fetch() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            result["text"] = response.read().decode()

    thread = threading.Thread(target=fetch)
    thread.start()
    thread.join(10)
    text = result["text"]
    assert 'bridge_relay_forwarded_total{rule="memory:/in -> memory:/out"} 1' in text
    for role in ("source", "target"):  # one connection per role
        assert (f'bridge_relay_connection_up{{connection="memory-{role}",backend="memory",'
                f'role="{role}"}} 1') in text
    relay._drain()
