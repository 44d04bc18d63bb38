"""The router on two in-process brokers: links split by path, events coherent, shadow counted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from bridge import Agent, Message, Settings
from bridge.backends.memory import get_broker
from bridge.migration.shadow import format_report, report_for


def _names() -> tuple[str, str]:
    return f"primary-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"


def test_links_are_routed_by_path_behind_one_connection() -> None:
    main, telemetry = _names()
    agent = Agent(Settings(agent_id=f"r{uuid.uuid4().hex[:8]}", memory={"broker": main},
                           routes=[{"match": "/devices/{id}/messages/events",
                                    "backend": "memory", "options": {"broker": telemetry}}]))
    events: list[str] = []
    conn = agent.amqp.openconnection("amqps://hub", lambda e, d: events.append(e))
    session = conn.opensession()
    got: list[Any] = []
    commands = session.openreceiver("/devices/d1/messages/devicebound", None,
                                    lambda ds: got.extend(d.message().body() for d in ds))
    telemetry_sender = session.opensender("/devices/d1/messages/events")
    command_sender = session.opensender("/devices/d1/messages/devicebound")
    assert agent.run_until(lambda: telemetry_sender.isopen() and command_sender.isopen()
                           and commands.isopen(), 5)
    assert events.count("CONNECTION_OPEN") == 1 and events.count("SESSION_OPEN") == 1
    done: list[str] = []
    telemetry_sender.createtransfer(agent.amqp.createmessage("t")).sendasync(
        lambda: done.append("t"))
    command_sender.createtransfer(agent.amqp.createmessage("c")).sendasync(
        lambda: done.append("c"))
    assert agent.run_until(lambda: len(done) == 2 and got == ["c"], 5)
    assert get_broker(telemetry).stats("/devices/d1/messages/events").enqueued == 1
    assert get_broker(main).stats("/devices/d1/messages/events").enqueued == 0
    assert get_broker(main).stats("/devices/d1/messages/devicebound").accepted == 1
    conn.close()
    assert agent.run_until(lambda: "CONNECTION_CLOSED" in events, 5)
    agent.close()


def test_one_target_failing_to_open_fails_the_connection_naming_it() -> None:
    main, other = _names()
    agent = Agent(Settings(memory={"broker": main}, routes=[
        {"match": "/secure/*", "backend": "memory",
         "options": {"broker": other, "users": {"u": "p"}}}]))
    events: list[tuple[str, str | None]] = []
    conn = agent.amqp.openconnection("amqps://hub", lambda e, d: events.append((e, d)))
    assert agent.run_until(lambda: bool(events), 5)
    assert events[0][0] == "CONNECTION_ERROR"
    assert events[0][1] is not None and events[0][1].startswith("memory: amqp:unauthorized")
    assert not conn.isopen()
    agent.close()


def test_losing_one_target_is_a_connection_loss() -> None:
    main, other = _names()
    agent = Agent(Settings(memory={"broker": main}, routes=[
        {"match": "/t", "backend": "memory", "options": {"broker": other}}]))
    events: list[str] = []
    conn = agent.amqp.openconnection("amqps://hub", lambda e, d: events.append(e))
    session = conn.opensession()
    assert agent.run_until(session.isopen, 5)
    get_broker(other).drop_connections()
    assert agent.run_until(lambda: "CONNECTION_ERROR" in events, 5)
    assert events[-2:] == ["SESSION_CLOSED", "CONNECTION_ERROR"]
    agent.close()


def test_shadow_counts_sends_and_an_injected_mismatch(tmp_path: Path) -> None:
    main, shadow = _names()
    agent_id = f"shadow{uuid.uuid4().hex[:8]}"
    report_file = tmp_path / "shadow.json"
    agent = Agent(Settings(agent_id=agent_id, memory={"broker": main},
                           shadow={"report_file": str(report_file)},
                           routes=[{"match": "/devices/*", "backend": "memory",
                                    "options": {"broker": main}, "shadow": "memory",
                                    "shadow_options": {"broker": shadow}}]))
    conn = agent.amqp.openconnection("amqps://hub", lambda e, d: None)
    session = conn.opensession()
    received: list[Message] = []
    receiver = session.openreceiver("/devices/d1/in", None,
                                    lambda ds: received.extend(d.message() for d in ds))
    sender = session.opensender("/devices/d1/out")
    assert agent.run_until(lambda: sender.isopen() and receiver.isopen(), 5)
    confirmed: list[int] = []
    for i in range(5):
        sender.createtransfer(agent.amqp.createmessage(f"m{i}", {"i": i})).sendasync(
            lambda: confirmed.append(1))
    assert agent.run_until(lambda: len(confirmed) == 5, 5)
    # the shadow got every transfer too, on its own broker
    assert agent.run_until(lambda: get_broker(shadow).stats("/devices/d1/out").enqueued == 5, 5)
    # inbound: the same command on both paths, then one that differs on the shadow
    get_broker(main).publish("/devices/d1/in", Message("cmd", {"n": 1}))
    get_broker(shadow).publish("/devices/d1/in", Message("cmd", {"n": 1}))
    get_broker(main).publish("/devices/d1/in", Message("cmd2", {"n": 2}))
    get_broker(shadow).publish("/devices/d1/in", Message("cmd2", {"n": 3}))
    assert agent.run_until(lambda: len(received) == 2, 5)
    report = report_for(agent_id)
    assert report is not None
    stats = report["routes"]["/devices/*"]

    def settled() -> bool:
        current = report_for(agent_id)
        return current is not None and current["routes"]["/devices/*"]["mismatched"] == 1

    assert agent.run_until(settled, 5)
    stats = report_for(agent_id)["routes"]["/devices/*"]  # type: ignore[index]
    assert stats["sent"] == 5 and stats["shadow_sent"] == 5 and stats["shadow_failed"] == 0
    assert stats["matched"] == 1 and stats["mismatched"] == 1
    assert stats["mismatch_examples"][0]["shadow"]["properties"] == {"n": 3}
    assert [m.body() for m in received] == ["cmd", "cmd2"]  # only the primary reaches the user
    agent.close()
    written = json.loads(report_file.read_text())
    assert written["routes"]["/devices/*"]["mismatched"] == 1
    assert "mismatched 1" in format_report(written)


def test_shadow_failure_never_affects_the_primary() -> None:
    main, shadow = _names()
    agent_id = f"shadowfail{uuid.uuid4().hex[:8]}"
    agent = Agent(Settings(agent_id=agent_id, memory={"broker": main}, routes=[
        {"match": "/x", "backend": "memory", "shadow": "memory",
         "shadow_options": {"broker": shadow, "users": {"u": "p"}}}]))  # shadow refuses us
    events: list[str] = []
    conn = agent.amqp.openconnection("amqps://hub", lambda e, d: events.append(e))
    session = conn.opensession()
    sender = session.opensender("/x")
    assert agent.run_until(sender.isopen, 5)
    done: list[int] = []
    sender.createtransfer(agent.amqp.createmessage("x")).sendasync(lambda: done.append(1))
    assert agent.run_until(lambda: done == [1], 5)
    report = report_for(agent_id)
    assert report is not None and report["connection_problems"]
    assert report["routes"]["/x"]["shadow_skipped"] == 1
    assert "CONNECTION_ERROR" not in events
    agent.close()


def test_shadow_sends_unconfirmed_at_close_count_as_divergence() -> None:
    main, shadow = _names()
    agent_id = f"shadowclose{uuid.uuid4().hex[:8]}"
    agent = Agent(Settings(agent_id=agent_id, memory={"broker": main}, routes=[
        {"match": "/slow", "backend": "memory", "shadow": "memory",
         "shadow_options": {"broker": shadow, "queue_capacity": 1}}]))  # shadow credit: 1
    conn = agent.amqp.openconnection("amqps://hub", lambda e, d: None)
    sender = conn.opensession().opensender("/slow")
    assert agent.run_until(sender.isopen, 5)
    done: list[int] = []
    for _ in range(3):
        sender.createtransfer(agent.amqp.createmessage("x")).sendasync(lambda: done.append(1))
    assert agent.run_until(lambda: len(done) == 3, 5)  # the primary is unaffected
    agent.close()
    stats = report_for(agent_id)["routes"]["/slow"]  # type: ignore[index]
    assert stats["shadow_confirmed"] == 1 and stats["shadow_unconfirmed"] == 2
    assert stats["divergences"] == 2
