"""Contract-layer behaviour on the memory backend that the conformance statements do not name."""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from typing import Any

import pytest

from bridge import Agent, Settings, Transfer
from bridge.backends.memory import get_broker


def _agent(**overrides: Any) -> Agent:
    return Agent(Settings(memory={"broker": f"unit-{uuid.uuid4().hex}"}, **overrides))


def _open(agent: Agent, path: str, on_messages: Any = None) -> tuple[Any, ...]:
    conn = agent.amqp.openconnection("amqps://unit.example", lambda e, d: None)
    session = conn.opensession()
    receiver = session.openreceiver(path, None, on_messages) if on_messages is not False else None
    sender = session.opensender(path)
    assert agent.run_until(lambda: sender.isopen() and (receiver is None or receiver.isopen()), 5)
    return conn, session, sender, receiver


def test_callbacks_run_on_the_dispatcher_thread_only() -> None:
    agent = _agent()
    threads: set[int] = set()

    def note(*_: Any) -> None:
        threads.add(threading.get_ident())

    conn = agent.amqp.openconnection("amqps://x", note)
    session = conn.opensession(note)
    sender = session.opensender("/t", note)
    receiver = session.openreceiver("/t", note, note)
    agent.run_until(lambda: sender.isopen() and receiver.isopen(), 5)
    sender.createtransfer(agent.amqp.createmessage("x")).sendasync(note)
    agent.imp.wakeup(0, note)
    holder = threading.Thread(target=agent.run, kwargs={"timeout": 0.5})
    holder.start()  # dispatch on another thread: callbacks must follow it
    holder.join()
    assert threads == {threading.get_ident(), holder.ident}
    agent.close()


def test_a_raising_callback_is_logged_and_the_agent_goes_on(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    agent = _agent()
    seen: list[str] = []

    def explode(deliveries: list) -> None:
        seen.append(deliveries[0].message().body())
        raise ValueError("boom in user code")

    _, _, sender, _ = _open(agent, "/boom", explode)
    with caplog.at_level(logging.ERROR, logger="bridge.agent"):
        for body in ("a", "b"):
            sender.createtransfer(agent.amqp.createmessage(body)).sendasync()
            agent.run_until(lambda body=body: body in seen, 5)
    assert seen == ["a", "b"]
    failures = [r for r in caplog.records if r.name == "bridge.agent" and r.exc_info]
    assert len(failures) == 2
    assert all("boom in user code" in str(r.exc_info[1]) for r in failures)
    agent.close()


def test_receiver_without_message_callback_accepts_and_warns(caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    agent = _agent()
    _conn, _session, sender, _receiver = _open(agent, "/nocb", None)
    broker = get_broker(agent.settings.memory.broker)
    with caplog.at_level(logging.WARNING, logger="bridge.contract"):
        for _ in range(3):
            sender.createtransfer(agent.amqp.createmessage("x")).sendasync()
        assert agent.run_until(lambda: broker.stats("/nocb").accepted == 3, 5)
    assert caplog.text.count("has no messageCallback") == 1
    agent.close()


def test_deliveries_for_a_closed_receiver_are_released() -> None:
    agent = _agent()
    broker = get_broker(agent.settings.memory.broker)
    seen: list[str] = []
    _conn, _session, sender, receiver = _open(agent, "/late", lambda ds: seen.append("x"))
    # a delivery is queued for the dispatcher, then the receiver closes before it runs
    sender.createtransfer(agent.amqp.createmessage("late")).sendasync()
    agent.run_until(lambda: broker.stats("/late").enqueued == 1, 5)
    receiver.close()
    agent.run(timeout=0.2)
    assert seen == []
    assert broker.stats("/late").depth == 1  # back on the queue for someone else
    agent.close()


def test_auto_accept_happens_when_the_delivery_is_dropped() -> None:
    agent = _agent()
    broker = get_broker(agent.settings.memory.broker)
    kept: list[Any] = []
    _, _, sender, _ = _open(agent, "/keep", kept.extend)
    sender.createtransfer(agent.amqp.createmessage("x")).sendasync()
    agent.run_until(lambda: len(kept) == 1, 5)
    assert broker.stats("/keep").accepted == 0  # still held: not settled
    kept.clear()
    gc.collect()
    assert broker.stats("/keep").accepted == 1
    agent.close()


def test_failed_transfer_reports_sender_error_and_keeps_sender_open() -> None:
    agent = _agent()
    events: list[tuple[str, str | None]] = []
    conn = agent.amqp.openconnection("amqps://x", lambda e, d: None)
    session = conn.opensession()
    sender = session.opensender("/fail", lambda e, d: events.append((e, d)))
    agent.run_until(sender.isopen, 5)
    transfer = sender.createtransfer(agent.amqp.createmessage("x"))
    fired: list[int] = []
    with sender._core.rt.lock:  # pretend the backend took it
        transfer.callback = lambda: fired.append(1)
        transfer.state = Transfer.SENT
    conn._core.transfer_failed(transfer, "mqtt: publish failed: no route")
    assert agent.run_until(lambda: len(events) == 2, 5)
    assert events[1] == ("SENDER_ERROR", "mqtt: publish failed: no route")
    assert sender.isopen() and fired == []
    agent.close()


def test_children_opened_before_the_connection_is_up_open_in_order() -> None:
    agent = _agent()
    order: list[str] = []
    conn = agent.amqp.openconnection("amqps://x", lambda e, d: order.append(e))
    session = conn.opensession()
    sender = session.opensender("/early")
    receiver = session.openreceiver("/early")
    assert agent.run_until(lambda: sender.isopen() and receiver.isopen(), 5)
    assert order == ["CONNECTION_OPEN", "SESSION_OPEN", "SENDER_OPEN", "RECEIVER_OPEN"]
    agent.close()


def test_imp_wakeup_and_cancel() -> None:
    agent = _agent()
    fired: list[str] = []
    agent.imp.wakeup(0.02, lambda: fired.append("b"))
    handle = agent.imp.wakeup(0.01, lambda: fired.append("cancelled"))
    agent.imp.wakeup(0, lambda: fired.append("a"))
    agent.imp.cancelwakeup(handle)
    agent.imp.cancelwakeup(handle)  # twice: no-op
    assert agent.run_until(lambda: len(fired) == 2, 2)
    assert fired == ["a", "b"]
    with pytest.raises(TypeError, match="seconds"):
        agent.imp.wakeup("1", lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        agent.imp.wakeup(-1, lambda: None)
    with pytest.raises(TypeError, match="callback"):
        agent.imp.wakeup(1, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handle"):
        agent.imp.cancelwakeup(42)  # type: ignore[arg-type]


def test_server_log_and_error_use_the_bridge_agent_logger(caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    agent = _agent()
    with caplog.at_level(logging.INFO, logger="bridge.agent"):
        agent.server.log("hello log")
        agent.server.error("hello error")
    records = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert ("bridge.agent", "INFO", "hello log") in records
    assert ("bridge.agent", "ERROR", "hello error") in records


def test_start_stop_and_context_manager() -> None:
    seen = threading.Event()
    with _agent() as agent:
        agent.start()
        with pytest.raises(RuntimeError, match="already started"):
            agent.start()
        agent.call_soon(seen.set)
        assert seen.wait(5)
        assert agent.dispatching
        conn = agent.amqp.openconnection("amqps://x", lambda e, d: None)
    assert not conn.isopen()
    assert not agent.dispatching
    agent.close()  # idempotent


def test_run_until_validates_and_times_out() -> None:
    agent = _agent()
    with pytest.raises(TypeError, match="predicate"):
        agent.run_until(True)  # type: ignore[arg-type]
    assert agent.run_until(lambda: False, 0.01) is False


def test_stop_from_a_callback_returns_run() -> None:
    agent = _agent()
    agent.imp.wakeup(0, agent.stop)
    agent.run(timeout=5)  # returns at once thanks to the callback
    assert agent.run_until(lambda: True, 0) is True


def test_memory_wrong_scheme_is_a_connection_error() -> None:
    agent = _agent()
    events: list[tuple[str, str | None]] = []
    agent.amqp.openconnection("http://nope", lambda e, d: events.append((e, d)))
    assert agent.run_until(lambda: bool(events), 5)
    assert events[0][0] == "CONNECTION_ERROR" and "unsupported URL scheme" in (events[0][1] or "")


def test_gc_of_connection_closes_its_subtree_on_the_broker() -> None:
    agent = _agent()
    broker = get_broker(agent.settings.memory.broker)
    conn, session, sender, receiver = _open(agent, "/gc", lambda ds: None)
    core = conn._core
    del conn, session, sender, receiver
    gc.collect()
    assert agent.run_until(lambda: core.state == 2, 5)
    with broker.lock:
        assert broker._queues["/gc"].consumers == []
        assert core.backend not in broker._clients
