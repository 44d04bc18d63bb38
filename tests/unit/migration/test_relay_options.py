"""The relay's connections: one per role and option set, stable MQTT client ids, warnings."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from bridge import ConfigError, Message, Settings
from bridge.backends.memory import get_broker
from bridge.migration.relay import Relay


def _relay(*rules: dict[str, Any], **settings: Any) -> Relay:
    return Relay(Settings(agent_id=f"r{uuid.uuid4().hex[:6]}",
                          relay={"rules": list(rules), "status_interval": 0}, **settings))


def test_target_options_give_the_target_its_own_connection() -> None:
    source, target = uuid.uuid4().hex, uuid.uuid4().hex
    relay = _relay({"source": "memory:/in", "target": "memory:/out",
                    "target_options": {"broker": target}}, memory={"broker": source})
    assert [(s.role, s.name, s.settings.memory.broker) for s in relay.sides.values()] == [
        ("source", "memory-source", source), ("target", "memory-target", target)]
    get_broker(source).publish("/in", Message.data("x"))
    relay.start()
    try:
        assert relay.agent.run_until(lambda: relay.forwarders[0].stats.forwarded == 1, 5)
        assert get_broker(target).stats("/out").enqueued == 1
        assert get_broker(source).stats("/out").enqueued == 0
    finally:
        relay._drain()


def test_sources_and_targets_never_share_a_connection() -> None:
    relay = _relay({"source": "memory:/a", "target": "memory:/b"},
                   {"source": "memory:/b2", "target": "memory:/a2"})
    names = sorted(side.name for side in relay.sides.values())
    assert names == ["memory-source", "memory-target"]  # same options: shared per role
    first, second = relay.forwarders
    assert first.source_side is second.source_side
    assert first.source_side is not first.target_side


def test_mqtt_connections_get_stable_client_ids() -> None:
    relay = _relay({"source": "mqtt:/in", "target": "mqtt:/out"},
                   {"source": "mqtt:/in2", "target": "mqtt:/out2",
                    "source_options": {"keepalive": 30}},
                   mqtt={"clean_start": False, "session_expiry": 60})
    agent_id = relay.settings.agent_id
    assert sorted(side.settings.mqtt.client_id for side in relay.sides.values()) == sorted([
        f"{agent_id}-mqtt-source", f"{agent_id}-mqtt-target", f"{agent_id}-mqtt-source2"])
    fixed = _relay({"source": "mqtt:/in", "target": "memory:/out"},
                   mqtt={"client_id": "mine"})
    assert next(iter(fixed.sides.values())).settings.mqtt.client_id == "mine"


def test_an_mqtt_source_without_a_persistent_session_is_warned_about(
        caplog: pytest.LogCaptureFixture) -> None:
    relay = _relay({"source": "mqtt:/in", "target": "memory:/out"})
    with caplog.at_level(logging.WARNING, logger="bridge.migration.relay"):
        relay._check_sources()
    assert "no persistent session" in caplog.text
    caplog.clear()
    quiet = _relay({"source": "mqtt:/in", "target": "memory:/out",
                    "source_options": {"clean_start": False, "session_expiry": 60}})
    with caplog.at_level(logging.WARNING, logger="bridge.migration.relay"):
        quiet._check_sources()
    assert caplog.text == ""


def test_bad_rule_options_fail_at_start_up_naming_them() -> None:
    with pytest.raises(ConfigError, match=r"options\.no_such_setting"):
        _relay({"source": "memory:/in", "target": "amqp:/queue/x",
                "target_options": {"no_such_setting": 1}})


def test_drain_holds_what_was_not_forwarded_and_the_close_returns_it() -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    relay = _relay({"source": "memory:/in", "target": "memory:/out", "window": 1},
                   memory={"broker": name})
    relay.start()
    forwarder = relay.forwarders[0]
    assert relay.agent.run_until(lambda: forwarder.sender is not None
                                 and forwarder.sender.isopen(), 5)
    for i in range(20):
        broker.publish("/in", Message.data(f"m{i}"))
    assert relay.agent.run_until(lambda: forwarder.stats.forwarded >= 3, 5)
    relay.drain()
    relay._drain()
    assert forwarder.stats.released == 0  # held, never released one by one
    assert forwarder.stats.waiting_peak >= 1
    source = broker.stats("/in")
    assert source.accepted == forwarder.stats.forwarded
    assert source.depth + source.accepted == 20  # the rest is back on the source queue
