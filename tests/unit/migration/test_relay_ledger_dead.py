"""Stable ids, the ledger and dead letters of the relay, on the in-process broker."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge import Message, Settings
from bridge.backends.memory import get_broker
from bridge.migration.relay import ID_PROPERTY, REASON_PROPERTY, Relay, stable_id


def _settings(broker: str, rule: dict[str, Any] | None = None, **relay: Any) -> Settings:
    rule = {"source": "memory:/in", "target": "memory:/out", **(rule or {})}
    return Settings(agent_id=f"relay{uuid.uuid4().hex[:6]}", memory={"broker": broker},
                    relay={"rules": [rule], "status_interval": 0, "reconnect_min_delay": 0.05,
                           **relay})


def _bodies(broker: Any, address: str) -> list[Message]:
    with broker.lock:
        queue = broker._queues.get(address)
        return [entry.message for entry in queue.messages] if queue else []


def _run(relay: Relay, until: Any, timeout: float = 10) -> None:
    assert relay.agent.run_until(until, timeout), relay.status_line()


def test_every_forwarded_message_carries_its_stable_id() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    sent = [Message.data(f"m{i}", {"i": i}) for i in range(20)]
    for message in sent:
        broker.publish("/in", message)
    relay = Relay(_settings(name))
    relay.start()
    _run(relay, lambda: broker.stats("/out").enqueued == 20)
    relay._drain()
    out = _bodies(broker, "/out")
    assert [m.properties()[ID_PROPERTY] for m in out] == [
        stable_id("memory:/in", m) for m in sent]
    assert len({m.properties()[ID_PROPERTY] for m in out}) == 20


def test_with_a_ledger_a_restart_does_not_forward_again_what_the_target_confirmed(
        tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    ledger = tmp_path / "relay.ledger"
    for i in range(50):
        broker.publish("/in", Message.data(f"m{i}"))
    first = Relay(_settings(name, ledger=str(ledger)))
    first.start()
    _run(first, lambda: first.forwarders[0].stats.forwarded == 50)
    first._drain()
    # the source delivers all 50 again (as after a kill before the settlements went out)
    for i in range(50):
        broker.publish("/in", Message.data(f"m{i}"))
    broker.publish("/in", Message.data("new"))
    second = Relay(_settings(name, ledger=str(ledger)))
    second.start()
    forwarder = second.forwarders[0]
    _run(second, lambda: forwarder.stats.skipped == 50 and forwarder.stats.forwarded == 1)
    _run(second, lambda: broker.stats("/in").accepted == 101)  # all settled at the source
    second._drain()
    assert [m.body() for m in _bodies(broker, "/out")].count(b"m0") == 1
    assert broker.stats("/out").enqueued == 51


@pytest.mark.parametrize("retries", [0, 2])
def test_a_refused_message_is_dead_lettered_with_its_reason_and_the_stream_flows(
        retries: int) -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    attempts = [0]

    def refuse(address: str, message: Message) -> str | None:
        if address == "/out" and message.body() == b"poison":
            attempts[0] += 1
            return "amqp:rejected: poison"
        return None

    broker.refuse = refuse
    for i in range(200):
        broker.publish("/in", Message.data("poison" if i == 100 else f"m{i}"))
    relay = Relay(_settings(name, {"dead_letter": "memory:/dead", "retries": retries},
                            window=10))
    relay.start()
    forwarder = relay.forwarders[0]
    _run(relay, lambda: broker.stats("/in").accepted == 200)
    relay._drain()
    assert [m.body() for m in _bodies(broker, "/out")] == [
        f"m{i}".encode() for i in range(200) if i != 100]  # all, in order
    (dead,) = _bodies(broker, "/dead")
    assert dead.body() == b"poison"
    assert dead.properties()[REASON_PROPERTY] == "amqp:rejected: poison"
    assert attempts[0] == retries + 1
    assert (forwarder.stats.dead_lettered, forwarder.stats.failed) == (1, retries + 1)
    assert 'bridge_relay_dead_lettered_total{rule="memory:/in -> memory:/out"} 1' \
        in relay.metrics_text()


def test_a_refused_message_can_be_dropped() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    broker.refuse = lambda address, message: "too big" if message.body() == b"x" else None
    for body in ("a", "x", "b"):
        broker.publish("/in", Message.data(body))
    relay = Relay(_settings(name, {"dead_letter": "drop", "retries": 0}))
    relay.start()
    _run(relay, lambda: broker.stats("/in").accepted == 3)
    relay._drain()
    assert [m.body() for m in _bodies(broker, "/out")] == [b"a", b"b"]
    assert relay.forwarders[0].stats.dropped == 1
