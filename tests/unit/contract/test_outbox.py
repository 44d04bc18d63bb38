"""The durable outbox on the in-process broker: storage, window, overflow, replay."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from bridge import Agent, Message, Settings
from bridge.backends.memory import get_broker
from bridge.contract.outbox import Outbox, OutboxFull


def _settings(tmp_path: Path, broker: str, agent_id: str = "box", **outbox: Any) -> Settings:
    return Settings(agent_id=agent_id, memory={"broker": broker},
                    outbox={"path": str(tmp_path / "outbox.db"), **outbox})


def test_store_round_trip_and_bounds(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", "a1", max_messages=3, max_bytes=10_000)
    first = box.put("/p", Message.data(b"\x00\x01", {"n": 1, "f": 0.5, "b": True}))
    box.put("/p", Message.value("text"))
    box.put("/other", Message([1, {"k": "v"}]))
    try:
        box.put("/p", Message.value("no room"))
        raise AssertionError("expected OutboxFull")
    except OutboxFull as exc:
        assert "3 messages" in str(exc)
    pending = box.pending("/p", exclude=set())
    assert [m for _, m in pending] == [Message.data(b"\x00\x01", {"n": 1, "f": 0.5, "b": True}),
                                       Message.value("text")]
    assert [m.body() for _, m in box.pending("/other", set())] == [[1, {"k": "v"}]]
    assert box.pending("/p", exclude={first})[0][1].body() == "text"
    box.delete(first)
    box.delete(first)  # twice: no-op
    assert box.count == 2
    other_agent = Outbox(tmp_path / "o.db", "a2", 10, 10_000)
    assert other_agent.pending("/p", set()) == [] and other_agent.count == 0
    box.close()
    reopened = Outbox(tmp_path / "o.db", "a1", 10, 10_000)
    assert reopened.count == 2


def test_confirmed_sends_leave_the_outbox_empty(tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    agent = Agent(_settings(tmp_path, name, window=5))
    conn = agent.amqp.openconnection("amqps://x", lambda e, d: None)
    sender = conn.opensession().opensender("/box")
    done: list[int] = []
    for i in range(200):
        sender.createtransfer(agent.amqp.createmessage(str(i))).sendasync(lambda: done.append(1))
    assert agent.run_until(lambda: len(done) == 200, 10)
    assert agent._rt.outbox is not None and agent._rt.outbox.count == 0
    with get_broker(name).lock:
        bodies = [e.message.body() for e in get_broker(name)._queues["/box"].messages]
    assert bodies == [str(i) for i in range(200)]  # order kept through the window
    agent.close()


def test_window_bounds_what_the_backend_holds(tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    agent = Agent(_settings(tmp_path, name, window=4, **{"tag_property": "x-id"}))
    agent.settings.memory.queue_capacity = 2  # the broker gives credit for two messages only
    conn = agent.amqp.openconnection("amqps://x", lambda e, d: None)
    sender = conn.opensession().opensender("/win")
    assert agent.run_until(sender.isopen, 5)
    for i in range(50):
        sender.createtransfer(agent.amqp.createmessage(str(i))).sendasync()
    agent.run(timeout=0.1)
    core = sender._core
    # two were enqueued and confirmed; four wait for credit in the backend; the rest wait here
    assert core.in_backend == 4 and len(core.queued) == 44
    assert agent._rt.outbox is not None and agent._rt.outbox.count == 48
    agent.close()


def test_overflow_refuses_the_new_send_with_sender_error(tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    agent = Agent(_settings(tmp_path, name, max_messages=3, window=1))
    events: list[tuple[str, str | None]] = []
    conn = agent.amqp.openconnection("amqps://x", lambda e, d: None)
    session = conn.opensession()
    sender = session.opensender("/full", lambda e, d: events.append((e, d)))
    fired: list[str] = []
    for i in range(4):  # the sender is not open yet: everything waits in the outbox
        sender.createtransfer(agent.amqp.createmessage(str(i))).sendasync(
            lambda i=i: fired.append(str(i)))
    assert agent.run_until(lambda: any(e == "SENDER_ERROR" for e, _ in events), 5)
    detail = next(d for e, d in events if e == "SENDER_ERROR")
    assert detail is not None and "outbox full" in detail
    assert agent.run_until(lambda: len(fired) == 3, 5)
    assert fired == ["0", "1", "2"]  # what was stored is delivered, nothing dropped
    agent.close()


def test_rows_left_by_a_lost_connection_are_resent_by_the_next_sender(tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    broker = get_broker(name)
    settings = _settings(tmp_path, name, agent_id=f"replay{uuid.uuid4().hex[:6]}", window=1)
    agent = Agent(settings)
    settings.memory.queue_capacity = 1  # one message fits; the rest wait for credit
    conn = agent.amqp.openconnection("amqps://x", lambda e, d: None)
    sender = conn.opensession().opensender("/replay")
    assert agent.run_until(sender.isopen, 5)
    for i in range(10):
        sender.createtransfer(agent.amqp.createmessage(f"m{i}")).sendasync()
    assert agent.run_until(lambda: broker.stats("/replay").enqueued == 1, 5)
    broker.drop_connections()
    assert agent.run_until(lambda: not conn.isopen(), 5)
    agent.close()
    # a new process (a new agent on the same file) drains the backlog once credit exists
    settings.memory.queue_capacity = 100
    again = Agent(settings)
    conn2 = again.amqp.openconnection("amqps://x", lambda e, d: None)
    sender2 = conn2.opensession().opensender("/replay")
    assert again.run_until(lambda: broker.stats("/replay").enqueued == 10, 5)
    assert again.run_until(lambda: again._rt.outbox is not None
                           and again._rt.outbox.count == 0, 5)
    with broker.lock:
        bodies = [e.message.body() for e in broker._queues["/replay"].messages]
    assert bodies == [f"m{i}" for i in range(10)]
    assert sender2.isopen()
    again.close()
