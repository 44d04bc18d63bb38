from __future__ import annotations

import select
import threading
import time

from bridge.contract.runtime import Coalescer
from bridge.loop.dispatcher import Dispatcher


def test_posts_run_in_order_on_the_running_thread() -> None:
    dispatcher = Dispatcher()
    seen: list[tuple[int, int]] = []
    for i in range(5):
        dispatcher.post(lambda i=i: seen.append((i, threading.get_ident())))
    assert dispatcher.run(timeout=1, until=lambda: len(seen) == 5)
    assert [i for i, _ in seen] == list(range(5))
    assert {t for _, t in seen} == {threading.get_ident()}


def test_cross_thread_post_wakes_a_sleeping_dispatcher() -> None:
    dispatcher = Dispatcher()
    seen: list[int] = []
    started = threading.Event()

    def producer() -> None:
        started.wait()
        for i in range(1000):
            dispatcher.post(seen.append, i)

    thread = threading.Thread(target=producer)
    thread.start()
    dispatcher.post(started.set)
    assert dispatcher.run(timeout=5, until=lambda: len(seen) == 1000)
    thread.join()
    assert seen == list(range(1000))


def test_timers_fire_in_deadline_order_and_cancel() -> None:
    dispatcher = Dispatcher()
    fired: list[str] = []
    dispatcher.call_later(0.05, lambda: fired.append("late"))
    dispatcher.call_later(0.0, lambda: fired.append("soon"))
    cancelled = dispatcher.call_later(0.01, lambda: fired.append("cancelled"))
    dispatcher.cancel(cancelled)
    assert dispatcher.run(timeout=2, until=lambda: len(fired) == 2)
    assert fired == ["soon", "late"]


def test_run_returns_false_on_timeout_and_stop_is_consumed() -> None:
    dispatcher = Dispatcher()
    start = time.monotonic()
    assert dispatcher.run(timeout=0.05, until=lambda: False) is False
    assert time.monotonic() - start >= 0.05
    dispatcher.request_stop()
    assert dispatcher.run(timeout=5) is False  # returns at once: stop was requested
    assert dispatcher.run(timeout=0.01) is False  # the stop request was consumed


def test_a_failing_item_does_not_stop_dispatching(caplog) -> None:
    dispatcher = Dispatcher()
    seen: list[int] = []
    dispatcher.post(lambda: 1 / 0)
    dispatcher.post(seen.append, 1)
    assert dispatcher.run(timeout=1, until=lambda: seen == [1])
    assert "internal error" in caplog.text


def test_only_one_thread_dispatches() -> None:
    dispatcher = Dispatcher()
    errors: list[Exception] = []
    entered = threading.Event()

    def other() -> None:
        entered.wait()
        try:
            dispatcher.run(timeout=0.01)
        except RuntimeError as exc:
            errors.append(exc)
        dispatcher.request_stop()

    thread = threading.Thread(target=other)
    thread.start()
    dispatcher.post(entered.set)
    dispatcher.run(timeout=5)
    thread.join()
    assert len(errors) == 1 and "already dispatching" in str(errors[0])


def test_coalescer_batches_a_burst_into_one_handoff() -> None:
    dispatcher = Dispatcher()
    batches: list[list[int]] = []
    coalescer = Coalescer(dispatcher.post, batches.append)
    for i in range(100):
        coalescer.add(i)
    assert dispatcher.run(timeout=1, until=lambda: sum(map(len, batches)) == 100)
    assert batches == [list(range(100))]
    coalescer.add(100)
    assert dispatcher.run(timeout=1, until=lambda: len(batches) == 2)
    assert batches[1] == [100]


def test_posting_from_a_signal_handler_on_the_dispatching_thread_never_deadlocks() -> None:
    """A SIGTERM handler calling agent.stop() interrupts the dispatcher thread itself, maybe
    while it sleeps or is waking up: post() must take no lock that thread could hold."""
    import signal

    dispatcher = Dispatcher()
    posted: list[int] = []

    def handler(signum: int, frame: object) -> None:
        dispatcher.post(posted.append, 1)

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)  # a signal every 0.5 ms
    try:
        ticks: list[int] = []

        def tick() -> None:  # keep the dispatcher alternating between sleeping and waking
            ticks.append(1)
            if len(ticks) < 300:
                dispatcher.call_later(0.001, tick)

        dispatcher.call_later(0, tick)
        assert dispatcher.run(timeout=20, until=lambda: len(ticks) >= 300)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(posted) > 10  # handlers ran, and their posts were dispatched or are queued


def _wake_bytes(dispatcher: Dispatcher) -> int:
    """Wake-up bytes waiting for *dispatcher* (read and counted)."""
    count = 0
    while select.select([dispatcher.core._wake_r], [], [], 0)[0]:
        count += len(dispatcher.core._wake_r.recv(4096))
    return count


def _in_thread(fn) -> None:  # type: ignore[no-untyped-def]
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


def test_a_batching_thread_wakes_a_sleeping_dispatcher_once_when_it_flushes() -> None:
    first, second = Dispatcher(), Dispatcher()
    for dispatcher in (first, second):  # as while they wait in select
        dispatcher.core.fileno()
        dispatcher.core._sleeping = True
    woken_before_flush: list[int] = []

    def network_thread() -> None:
        # what a backend's network thread does: report quietly, wake before it blocks
        for i in range(50):
            first.post_quiet(_noop_item, i)
        second.post_quiet(_noop_item, 0)
        woken_before_flush.extend([_wake_bytes(first), _wake_bytes(second)])
        for dispatcher in (first, second, first):  # nothing left to wake: no second byte
            dispatcher.wake()

    _in_thread(network_thread)
    assert woken_before_flush == [0, 0]
    assert (_wake_bytes(first), _wake_bytes(second)) == (1, 1)
    assert first.core.pending == 50 and second.core.pending == 1


def test_other_threads_still_wake_the_dispatcher_at_once() -> None:
    dispatcher = Dispatcher()
    dispatcher.core.fileno()
    dispatcher.core._sleeping = True

    def user_thread() -> None:
        dispatcher.post(_noop_item, 1)
        dispatcher.post(_noop_item, 2)

    _in_thread(user_thread)
    assert _wake_bytes(dispatcher) == 2


def test_batched_posts_all_run_once_flushed() -> None:
    dispatcher = Dispatcher()
    seen: list[int] = []
    go = threading.Event()

    def network_thread() -> None:
        go.wait(5)
        for round_ in range(20):
            for i in range(10):
                dispatcher.post_quiet(seen.append, round_ * 10 + i)
            dispatcher.wake()  # before the network thread would block

    thread = threading.Thread(target=network_thread)
    thread.start()
    dispatcher.post(go.set)
    assert dispatcher.run(timeout=5, until=lambda: len(seen) == 200)
    thread.join(5)
    assert seen == list(range(200))


def _noop_item(_: int) -> None:
    return None


def test_a_before_leaving_timer_runs_when_run_returns_first() -> None:
    dispatcher = Dispatcher()
    ran: list[str] = []
    dispatcher.post(lambda: dispatcher.call_later(60, lambda: ran.append("kick"),
                                                  before_leaving=True))
    dispatcher.post(lambda: dispatcher.call_later(60, lambda: ran.append("ordinary")))
    assert dispatcher.run(timeout=0.05) is False
    assert ran == ["kick"]  # before run returned; the ordinary timer still waits
    fired = dispatcher.core.run_timers()
    assert fired == 0 and ran == ["kick"]


def test_a_before_leaving_timer_runs_once() -> None:
    dispatcher = Dispatcher()
    ran: list[int] = []
    dispatcher.post(lambda: dispatcher.call_later(0.01, lambda: ran.append(1),
                                                  before_leaving=True))
    assert dispatcher.run(timeout=2, until=lambda: bool(ran))
    dispatcher.run(timeout=0.01)
    assert ran == [1]
