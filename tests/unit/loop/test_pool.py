"""Pooled dispatching (``agent.start()``): many agents on a few workers, each agent's callbacks
in order and one at a time, a blocked callback costs the others little, failures are loud."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from bridge import Agent, Settings
from bridge.loop.pool import DispatchPool


def _agent(name: str, pool: DispatchPool) -> Agent:
    return Agent(Settings(backend="memory", agent_id=name, memory={"broker": name}), pool=pool)


@pytest.fixture
def pool() -> DispatchPool:
    return DispatchPool(workers=2, max_workers=8, name="test-pool")


def test_each_agent_runs_in_order_and_alone_on_a_few_workers(pool: DispatchPool) -> None:
    agents = [_agent(f"pool-order-{i}", pool) for i in range(50)]
    seen: dict[int, list[int]] = {i: [] for i in range(50)}
    inside: dict[int, bool] = dict.fromkeys(range(50), False)
    overlaps: list[int] = []
    threads: set[str] = set()
    done = threading.Semaphore(0)

    def step(agent_no: int, n: int) -> None:
        if inside[agent_no]:
            overlaps.append(agent_no)
        inside[agent_no] = True
        threads.add(threading.current_thread().name)
        seen[agent_no].append(n)
        time.sleep(0.0001)
        inside[agent_no] = False
        done.release()

    for agent in agents:
        agent.start()
    try:
        producers = [threading.Thread(target=lambda i=i: [agents[i].call_soon(step, i, n)
                                                          for n in range(100)])
                     for i in range(50)]
        for producer in producers:
            producer.start()
        for producer in producers:
            producer.join()
        for _ in range(50 * 100):
            assert done.acquire(timeout=10)
        assert overlaps == []
        assert all(seen[i] == list(range(100)) for i in range(50))
        assert threads and all(name.startswith("test-pool-") for name in threads)
        assert pool.workers <= 8
    finally:
        for agent in agents:
            agent.close()


def test_a_blocked_callback_delays_other_agents_briefly_and_the_pool_grows(
        pool: DispatchPool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.dispatcher")
    blockers = [_agent(f"pool-block-{i}", pool) for i in range(2)]  # as many as base workers
    other = _agent("pool-other", pool)
    for agent in (*blockers, other):
        agent.start()
    release = threading.Event()
    entered = [threading.Event() for _ in blockers]
    try:
        for blocker, inside in zip(blockers, entered, strict=True):
            blocker.call_soon(lambda inside=inside: (inside.set(), release.wait(5)))
        assert all(inside.wait(5) for inside in entered)  # both workers are held now
        asked = time.monotonic()
        answered: list[float] = []
        ran = threading.Event()
        other.call_soon(lambda: (answered.append(time.monotonic()), ran.set()))
        assert ran.wait(3), "the other agent never ran while two callbacks blocked"
        assert answered[0] - asked < 0.3
        assert pool.workers > 2
        assert any("adding workers" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
        for agent in (*blockers, other):
            agent.close()


def test_timers_of_pooled_agents_fire(pool: DispatchPool) -> None:
    agent = _agent("pool-timer", pool)
    agent.start()
    fired: list[float] = []
    rang = threading.Event()
    try:
        started = time.monotonic()
        agent.call_soon(lambda: agent.imp.wakeup(
            0.05, lambda: (fired.append(time.monotonic()), rang.set())))
        assert rang.wait(5)
        assert fired[0] - started >= 0.05
        cancelled: list[int] = []
        handle = agent.imp.wakeup(0.05, lambda: cancelled.append(1))
        agent.imp.cancelwakeup(handle)
        time.sleep(0.15)  # showing that something does NOT happen
        assert cancelled == []
    finally:
        agent.close()


def test_a_timer_comes_due_while_its_agent_is_busy(pool: DispatchPool) -> None:
    """The timer thread's "due" post can find the agent's batch running: the batch still
    runs the timer before it lets the agent go."""
    agent = _agent("pool-busy-timer", pool)
    agent.start()
    fired = threading.Event()
    try:
        for round_ in range(20):
            fired.clear()
            agent.call_soon(lambda: agent.imp.wakeup(0.01, fired.set))
            for _ in range(200):  # keep its queue busy around the deadline
                agent.call_soon(time.sleep, 0.0001)
            assert fired.wait(5), f"round {round_}: the timer never ran"
    finally:
        agent.close()


def test_a_pooled_agent_and_a_connection_work_end_to_end(pool: DispatchPool) -> None:
    agent = _agent("pool-e2e", pool)
    events: list[str] = []
    got: list[Any] = []
    conn = agent.amqp.openconnection("amqps://pool.example", lambda e, d: events.append(e))
    session = conn.opensession()
    receiver = session.openreceiver("/pool", None, lambda ds: got.extend(
        d.message().body() for d in ds))
    sender = session.opensender("/pool")
    agent.start()
    confirmed = threading.Event()
    try:
        sender.createtransfer(agent.amqp.createmessage("hello")).sendasync(confirmed.set)
        assert confirmed.wait(5)
        arrived = threading.Event()
        agent.call_soon(lambda: arrived.set() if got else None)  # behind the delivery
        assert arrived.wait(5)
        assert got == ["hello"] and events[0] == "CONNECTION_OPEN"
        assert receiver.isopen()
    finally:
        agent.close()
    assert "CONNECTION_CLOSED" in events  # delivered by the pool before close returned


def test_stop_then_run_on_the_callers_thread(pool: DispatchPool) -> None:
    agent = _agent("pool-switch", pool)
    agent.start()
    with pytest.raises(RuntimeError, match="already dispatching"):
        agent.run(timeout=0.01)
    agent.stop()
    ran: list[int] = []
    agent.call_soon(ran.append, 1)
    assert agent.run_until(lambda: ran == [1], 5)
    agent.close()


def test_a_callback_that_ends_dispatching_is_reported_to_its_connections(
        pool: DispatchPool, caplog: pytest.LogCaptureFixture) -> None:
    agent = _agent("pool-fail", pool)
    events: list[tuple[str, str | None]] = []
    conn = agent.amqp.openconnection("amqps://pool.example", lambda e, d: events.append((e, d)))
    assert agent.run_until(lambda: bool(events), 5)
    agent.start()
    try:
        def leave() -> None:
            raise SystemExit(3)

        agent._rt.post(leave)  # as a callback calling sys.exit() does
        reported = threading.Event()
        agent.call_soon(reported.set)  # behind the CONNECTION_ERROR the failure posted
        assert reported.wait(5)
        assert events[1][0] == "CONNECTION_ERROR"
        assert "dispatcher failed" in (events[1][1] or "")
        assert isinstance(agent.failure, SystemExit)
        assert not conn.isopen()
        assert "dispatcher for pool-fail failed" in caplog.text
    finally:
        agent.close()


def test_posting_from_a_signal_handler_to_a_pooled_agent_never_deadlocks(
        pool: DispatchPool) -> None:
    import signal

    agent = _agent("pool-signal", pool)
    agent.start()
    posted: list[int] = []

    def handler(signum: int, frame: object) -> None:
        agent.call_soon(posted.append, 1)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    try:
        deadline = time.monotonic() + 5
        while len(posted) < 50 and time.monotonic() < deadline:
            agent.call_soon(lambda: None)  # the main thread posts too, interrupted meanwhile
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    done = threading.Event()
    agent.call_soon(done.set)
    assert done.wait(10)
    assert len(posted) >= 50
    agent.close()
