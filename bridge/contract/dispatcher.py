"""The dispatcher: one thread runs every user callback, in order.

Backends post work from their network threads; the dispatcher drains it in batches. A poster only
pays for a thread wake-up when the dispatcher is actually asleep, so a busy stream costs one deque
append per event (see `Dispatcher.post`).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bridge.dispatcher")


class TimerHandle:
    """What ``imp.wakeup`` returns; pass it to ``imp.cancelwakeup``."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"due in {self.deadline - time.monotonic():.3f}s"
        return f"<TimerHandle {state}>"


# Network threads that batch their wake-ups (see `batch_wake_ups`): the dispatchers each one
# still has to wake.
_batching = threading.local()

# One GIL turn for the other threads. time.sleep(0) did the same at 20 us of CPU (and ~75 us of
# wall time: the kernel's timer slack) per call; sched_yield releases the GIL for 0.6 us.
_give_gil_turn: Callable[[], None] = getattr(os, "sched_yield", lambda: time.sleep(0))


def batch_wake_ups() -> None:
    """Make the calling thread (a backend's network thread) batch dispatcher wake-ups.

    A post from this thread to a sleeping dispatcher then only notes that it needs waking; the
    thread calls `flush_wake_ups` before it blocks (on its ``select``) and when it ends. A
    network thread usually turns one socket read into several events: without batching the
    dispatcher woke up (a system call on each side and a thread switch) for each of them; with
    it, once per read. Nothing waits longer than the rest of the network thread's loop turn.
    """
    _batching.pending = []


def flush_wake_ups() -> None:
    """Wake the dispatchers this (batching) thread posted to while they slept."""
    pending = getattr(_batching, "pending", None)
    if pending:
        _batching.pending = []
        for dispatcher in pending:
            dispatcher._wake_up()


class Dispatcher:
    """A run queue plus timers, drained by whichever thread calls `run`."""

    def __init__(self) -> None:
        self._items: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        # A socket pair, not a threading.Event: writing a byte takes no Python lock, so post()
        # is safe from a signal handler that interrupted the dispatcher thread itself (an Event
        # would deadlock there on the lock its own wait()/clear() was holding).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sleeping = False
        self._timers: list[tuple[float, int, TimerHandle]] = []
        self._timer_seq = itertools.count()
        self._timer_lock = threading.Lock()
        self._before_leaving: list[TimerHandle] = []
        self._stop_requested = False
        self._owner: int | None = None
        self._owner_lock = threading.Lock()

    # -- posting (any thread) ---------------------------------------------------------------
    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` to run on the dispatcher thread."""
        self._items.append((fn, args))
        # Ordering matters: the dispatcher sets _sleeping *before* its last emptiness check, so
        # either it sees this item or we see it asleep and wake it.
        if self._sleeping:
            pending = getattr(_batching, "pending", None)
            if pending is None:
                self._wake_up()
            elif self not in pending:
                pending.append(self)

    def _wake_up(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full: already awake; closed
            self._wake_w.send(b"\0")

    def _drain_wake_ups(self) -> None:
        # One read takes every byte written so far (a full buffer: read again); reading until
        # it fails would cost a second system call per wake-up.
        with contextlib.suppress(BlockingIOError, OSError):
            while len(self._wake_r.recv(4096)) == 4096:
                pass

    def call_later(self, delay: float, fn: Callable[[], Any], *,
                   before_leaving: bool = False) -> TimerHandle:
        """Run *fn* on the dispatcher thread after *delay* seconds. With *before_leaving*, also
        when `run` returns before then (for work that must not wait for the next run)."""
        handle = TimerHandle(time.monotonic() + max(0.0, delay), fn)
        with self._timer_lock:
            heapq.heappush(self._timers, (handle.deadline, next(self._timer_seq), handle))
            if before_leaving:
                leaving = self._before_leaving
                if len(leaving) >= 64:  # drop those that fired meanwhile
                    leaving[:] = [h for h in leaving if not h.cancelled]
                leaving.append(handle)
        if not self.on_dispatcher_thread():
            self.post(_noop)  # re-evaluate the sleep deadline
        return handle

    @staticmethod
    def cancel(handle: TimerHandle) -> None:
        handle.cancelled = True

    def request_stop(self) -> None:
        self._stop_requested = True
        self.post(_noop)

    def on_dispatcher_thread(self) -> bool:
        return self._owner == threading.get_ident()

    @property
    def running(self) -> bool:
        return self._owner is not None

    # -- running (one thread at a time) -----------------------------------------------------
    def run(self, timeout: float | None = None,
            until: Callable[[], bool] | None = None) -> bool:
        """Dispatch until `request_stop`, *until* is true, or *timeout* seconds have passed.

        Returns the last value of *until* (``False`` when there is none).
        """
        with self._owner_lock:
            if self._owner is not None:
                raise RuntimeError("the agent is already dispatching on another thread")
            self._owner = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        items = self._items
        try:
            while True:
                if until is not None and until():
                    return True
                if self._stop_requested:
                    return False
                if self._run_due_timers():
                    continue  # re-check stop/until before doing anything else
                if items:
                    # Drain a bounded batch, then re-check stop/until/timers.
                    for _ in range(len(items)):
                        fn, args = items.popleft()
                        try:
                            fn(*args)
                        except Exception:
                            log.exception("internal error while dispatching %r", fn)
                        if until is not None and until():
                            return True
                    continue
                # Before sleeping, give the network threads one GIL turn: a stream usually has
                # the next item ready by then, so it is taken without a sleep/wake-up pair.
                _give_gil_turn()
                if items:
                    continue
                wait = self._sleep_time(deadline)
                if wait is not None and wait <= 0:
                    if deadline is not None and time.monotonic() >= deadline:
                        return bool(until()) if until is not None else False
                    continue
                self._sleeping = True
                woken = False
                if not items and not self._stop_requested:
                    woken = bool(select.select([self._wake_r], [], [], wait)[0])
                self._sleeping = False
                if woken:  # a byte written while we did not sleep is read after the next wait
                    self._drain_wake_ups()
        finally:
            self._run_before_leaving()
            self._stop_requested = False
            self._owner = None

    def _run_before_leaving(self) -> None:
        with self._timer_lock:
            leaving, self._before_leaving = self._before_leaving, []
        for handle in leaving:
            if handle.cancelled:
                continue
            handle.cancelled = True  # ran now: the timer itself is a no-op later
            try:
                handle.callback()
            except Exception:
                log.exception("internal error in timer %r", handle)

    def _sleep_time(self, deadline: float | None) -> float | None:
        now = time.monotonic()
        wait = None if deadline is None else deadline - now
        with self._timer_lock:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if self._timers:
                until_timer = self._timers[0][0] - now
                wait = until_timer if wait is None else min(wait, until_timer)
        return wait

    def _run_due_timers(self) -> int:
        timers = self._timers
        if not timers:
            return 0
        fired = 0
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            with self._timer_lock:
                _, _, handle = heapq.heappop(timers)
            if handle.cancelled:
                continue
            handle.cancelled = True  # fired: cancelling it later is a no-op
            fired += 1
            try:
                handle.callback()
            except Exception:
                log.exception("internal error in timer %r", handle)
        return fired


def _noop() -> None:
    return None


class Coalescer:
    """Collects items from any thread and hands them to *handler* in one batch per dispatcher turn.

    Only the first item after a flush posts to the dispatcher, so a burst of N items costs one
    dispatcher hand-off instead of N.
    """

    __slots__ = ("_handler", "_items", "_pending", "_post")

    def __init__(self, post: Callable[..., None], handler: Callable[[list[Any]], None]) -> None:
        self._post = post
        self._handler = handler
        self._items: deque[Any] = deque()
        self._pending = False

    def add(self, item: Any) -> None:
        self._items.append(item)
        if not self._pending:
            self._pending = True
            self._post(self._flush)

    def _flush(self) -> None:
        self._pending = False
        items = self._items
        batch = []
        while items:
            batch.append(items.popleft())
        if batch:
            self._handler(batch)
