"""The dispatcher: one agent's user callbacks, run one at a time, in order.

Backends post work from their network threads; the dispatcher drains it in batches. Two ways to
drain it, one at a time:

- **run** (``agent.run()`` / ``run_until``): the calling thread dispatches until told to stop.
  A poster only pays for a thread wake-up when that thread is actually asleep, so a busy stream
  costs one deque append per event; a network thread that turns one socket read into many
  events posts them quietly (`post_quiet`) and wakes the dispatcher once (`wake`).
- **pooled** (``agent.start()``): the queue is one of many served by the process's
  `DispatchPool`; whoever posts to an idle queue takes its token and hands it to the pool, and a
  worker runs a bounded batch (see `bridge.loop.pool`).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from bridge.loop.core import LoopCore, Timer
from bridge.loop.pool import DispatchPool, current_agent

log = logging.getLogger("bridge.dispatcher")

# One GIL turn for the other threads. time.sleep(0) did the same at 20 us of CPU (and ~75 us of
# wall time: the kernel's timer slack) per call; sched_yield releases the GIL for 0.6 us.
_give_gil_turn: Callable[[], None] = getattr(os, "sched_yield", lambda: time.sleep(0))


class Dispatcher:
    """A run queue plus timers (a `LoopCore`), drained by whichever thread calls `run`."""

    def __init__(self, name: str = "dispatcher") -> None:
        self.name = name
        self.core = LoopCore(name)
        # Wake the dispatcher for what was posted quietly while it slept: the core's own
        # method, bound once (backends call it after every batch; one call level less).
        self.wake: Callable[[], None] = self.core.wake
        self._before_leaving: list[Timer] = []
        self._leaving_lock = threading.Lock()
        self._stop_requested = False
        self._owner: int | None = None
        self._owner_lock = threading.Lock()
        # pooled mode: the pool serving this queue, and the token of whoever runs it
        self._pool: DispatchPool | None = None
        self._token = threading.Lock()  # held from scheduling until the batch is done
        self._batch_done = threading.Condition(threading.Lock())
        self.on_failure: Callable[[BaseException], None] | None = None

    # -- posting (any thread) ---------------------------------------------------------------
    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` to run on the dispatcher thread (wakes it if it sleeps)."""
        self.core.call(fn, *args)
        if self._pool is not None:
            self._schedule()

    def post_quiet(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` without waking the dispatcher; the caller calls `wake` once it
        has posted its batch (before it blocks)."""
        self.core.call_quiet(fn, *args)
        if self._pool is not None:
            self._schedule()

    def _schedule(self) -> None:
        """Hand the queue to the pool unless it is there (or running) already. The token is
        taken without blocking: safe from any thread, a signal handler included."""
        pool = self._pool
        if pool is not None and self._token.acquire(blocking=False):
            pool.schedule(self)

    def call_later(self, delay: float, fn: Callable[[], Any], *,
                   before_leaving: bool = False) -> Timer:
        """Run *fn* on the dispatcher thread after *delay* seconds. With *before_leaving*, also
        when `run` returns before then (for work that must not wait for the next run)."""
        timer = self.core.call_later(delay, fn)
        pool = self._pool
        if pool is not None:
            pool.call_later(delay, self._timers_due)
        if before_leaving:
            with self._leaving_lock:
                leaving = self._before_leaving
                if len(leaving) >= 64:  # drop those that fired meanwhile
                    leaving[:] = [t for t in leaving if not t.cancelled]
                leaving.append(timer)
        return timer

    @staticmethod
    def cancel(timer: Timer) -> None:
        timer.cancel()

    def request_stop(self) -> None:
        self._stop_requested = True
        self.core.wake_now()

    def on_dispatcher_thread(self) -> bool:
        return self._owner == threading.get_ident()

    @property
    def running(self) -> bool:
        return self._owner is not None or self._pool is not None

    # -- pooled (agent.start) -----------------------------------------------------------------
    def attach(self, pool: DispatchPool) -> None:
        """Let *pool* run this queue from now on (what is queued or due is scheduled)."""
        with self._owner_lock:
            if self._owner is not None or self._pool is not None:
                raise RuntimeError("the agent is already dispatching on another thread")
            self._pool = pool
        self._stop_requested = False
        wait = self.core.timeout()
        if wait is not None:
            pool.call_later(wait, self._timers_due)
        if self.core.pending:
            self._schedule()

    def detach(self) -> None:
        """Stop pooled dispatching; waits for a batch in progress (unless called from it)."""
        self._pool = None
        if self.on_dispatcher_thread():
            return
        with self._batch_done:
            self._batch_done.wait_for(lambda: self._owner is None, timeout=60)
        self._run_before_leaving()

    def _timers_due(self) -> None:
        """(The pool's timer thread.) One of our timers may be due: have it run."""
        if self._pool is not None and self.core.timeout() is not None:
            self.post(_noop)

    def run_batch(self, max_items: int, max_seconds: float) -> bool:
        """(A pool worker, holding the token.) Due timers and a bounded batch; True if work
        is left."""
        self._owner = threading.get_ident()
        try:
            if self._pool is None:
                return False
            core = self.core
            core.run_timers()
            deadline = time.monotonic() + max_seconds
            done = 0
            while core.pending and done < max_items:
                done += core.run_commands(min(32, max_items - done))
                if time.monotonic() >= deadline or self._pool is None:
                    break
            # timers that came due meanwhile (their "due" post may be what brought us here)
            core.run_timers()
            return bool(core.pending) and self._pool is not None
        finally:
            self._owner = None
            with self._batch_done:
                self._batch_done.notify_all()

    def release_token(self) -> None:
        self._token.release()
        # posted (or come due) after the batch's last look: nobody scheduled it (the token
        # was taken)
        if self._pool is not None and self.core.timeout() == 0:
            self._schedule()

    def failed(self, exc: BaseException) -> None:
        if self.on_failure is not None:
            self.on_failure(exc)

    # -- running (one thread at a time) -----------------------------------------------------
    def run(self, timeout: float | None = None,
            until: Callable[[], bool] | None = None) -> bool:
        """Dispatch until `request_stop`, *until* is true, or *timeout* seconds have passed.

        Returns the last value of *until* (``False`` when there is none).
        """
        with self._owner_lock:
            if self._owner is not None or self._pool is not None:
                raise RuntimeError("the agent is already dispatching on another thread")
            self._owner = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        core = self.core
        context = current_agent.set(self.name)
        try:
            while True:
                if until is not None and until():
                    return True
                if self._stop_requested:
                    return False
                if core.run_timers():
                    continue  # re-check stop/until before doing anything else
                if core.pending:
                    if until is None:
                        core.run_commands()
                    elif self._run_until(until):
                        return True
                    continue
                # Before sleeping, give the network threads one GIL turn: a stream usually has
                # the next item ready by then, so it is taken without a sleep/wake-up pair.
                _give_gil_turn()
                if core.pending:
                    continue
                now = time.monotonic()
                wait = core.timeout(None if deadline is None else deadline - now, now)
                if wait is not None and wait <= 0:
                    if deadline is not None and now >= deadline:
                        return bool(until()) if until is not None else False
                    continue
                readable = False
                if core.prepare_to_sleep() and not self._stop_requested:
                    readable = bool(select.select([core], [], [], wait)[0])
                core.woke(readable)
        finally:
            current_agent.reset(context)
            self._run_before_leaving()
            self._stop_requested = False
            self._owner = None

    def _run_until(self, until: Callable[[], bool]) -> bool:
        """Run a bounded batch, checking *until* after each item; True once it holds."""
        for _ in range(self.core.pending):
            self.core.run_commands(1)
            if until():
                return True
        return False

    def _run_before_leaving(self) -> None:
        with self._leaving_lock:
            leaving, self._before_leaving = self._before_leaving, []
        for timer in leaving:
            if timer.cancelled:
                continue
            timer.cancelled = True  # ran now: the timer itself is a no-op later
            try:
                timer.callback()
            except Exception:
                log.exception("internal error in timer %r", timer)


def _noop() -> None:
    return None
