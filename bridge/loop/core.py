"""The one loop primitive: a command queue, timers and a wake-up socket.

Every thread of the bridge that runs work for others - an agent's dispatcher, a network loop -
is a `LoopCore` driven by one thread at a time: other threads `call` into it (any thread, never
blocking), the owner runs what was queued (`run_commands`) and what is due (`run_timers`), and
sleeps on `fileno` (alone, or with its sockets in a selector) for at most `timeout`.

Waking costs a system call on each side and a thread switch, so a caller only pays for it when
the owner is actually asleep: the owner marks itself asleep (`prepare_to_sleep`) *before* its
last emptiness check, so either it sees the new item or the caller sees it asleep and wakes it.
`call_quiet` queues without waking: the caller promises to `wake` once it has queued a batch
(a network thread turning one socket read into many events wakes a dispatcher once, not once
per event).

The wake-up is a socket pair, not a ``threading.Event``: writing a byte takes no Python lock,
so `call` is safe from a signal handler that interrupted the owner thread itself (an Event
would deadlock there on the lock its own ``wait`` was holding).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("bridge.loop")

Command = tuple[Callable[..., Any], tuple[Any, ...]]


class Timer:
    """A callback due at *deadline* (``time.monotonic``); what `LoopCore.call_later` returns
    (and so what ``imp.wakeup`` returns). `cancel` is idempotent; a fired timer is cancelled."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"due in {self.deadline - time.monotonic():.3f}s"
        return f"<Timer {state}>"


class LoopCore:
    """Commands and timers for the thread that owns this core; thread-safe to feed."""

    def __init__(self, name: str = "loop") -> None:
        self.name = name
        self._commands: deque[Command] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._timer_seq = itertools.count()
        self._timer_lock = threading.Lock()
        # made on first use (`fileno`): a core nobody ever sleeps on (a pooled agent's queue)
        # costs no descriptors
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._sleeping = False
        self._wake_owed = False  # a quiet call found the owner asleep: `wake` must write
        self._closed = False

    # -- any thread -------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` for the owner thread and wake it if it sleeps; False once the
        core is closed (nothing will run it)."""
        if self._closed:
            return False
        self._commands.append((fn, args))
        if self._sleeping:
            self._write_wake_byte()
        return True

    def call_quiet(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)`` without waking the owner; the caller must `wake` later."""
        if self._closed:
            return False
        self._commands.append((fn, args))
        if self._sleeping:
            self._wake_owed = True
        return True

    def wake(self) -> None:
        """Wake the owner if a quiet call found it asleep (cheap otherwise)."""
        if self._wake_owed:
            self._wake_owed = False
            self._write_wake_byte()

    def wake_now(self) -> None:
        """Wake the owner whether or not anything was queued (it re-evaluates its deadline)."""
        self._write_wake_byte()

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Timer:
        """Run *fn* on the owner thread after *delay* seconds (any thread)."""
        timer = Timer(time.monotonic() + max(0.0, delay), fn)
        with self._timer_lock:
            heapq.heappush(self._timers, (timer.deadline, next(self._timer_seq), timer))
            first = self._timers[0][2] is timer
        if first and self._sleeping:
            self._write_wake_byte()  # sleeping past the new deadline otherwise
        return timer

    @property
    def pending(self) -> int:
        return len(self._commands)

    @property
    def closed(self) -> bool:
        return self._closed

    def _write_wake_byte(self) -> None:
        wake_w = self._wake_w
        if wake_w is None:
            return  # nobody sleeps on this core: there is no one to wake
        with contextlib.suppress(BlockingIOError, OSError):  # full: already awake; closed
            wake_w.send(b"\0")

    # -- the owner thread -------------------------------------------------------------------
    def fileno(self) -> int:
        """The descriptor that becomes readable when the owner is woken (owner thread)."""
        if self._wake_r is None:
            wake_r, wake_w = socket.socketpair()
            wake_r.setblocking(False)
            wake_w.setblocking(False)
            self._wake_r, self._wake_w = wake_r, wake_w
        return self._wake_r.fileno()

    def run_commands(self, limit: int | None = None) -> int:
        """Run the commands queued so far (at most *limit*); how many ran. An exception is a
        bug in the command, logged, never allowed to stop the loop."""
        commands = self._commands
        count = len(commands) if limit is None else min(limit, len(commands))
        for _ in range(count):
            fn, args = commands.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("%s: internal error in command %s", self.name,
                              getattr(fn, "__qualname__", fn))
        return count

    def run_timers(self, now: float | None = None) -> int:
        """Run the timers that are due; how many fired."""
        timers = self._timers
        if not timers:
            return 0
        fired = 0
        now = time.monotonic() if now is None else now
        while timers and timers[0][0] <= now:
            with self._timer_lock:
                if not timers or timers[0][0] > now:
                    break
                _, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            timer.cancelled = True  # fired: cancelling it later is a no-op
            fired += 1
            try:
                timer.callback()
            except Exception:
                log.exception("%s: internal error in timer %s", self.name,
                              getattr(timer.callback, "__qualname__", timer.callback))
        return fired

    def timeout(self, limit: float | None = None, now: float | None = None) -> float | None:
        """Seconds until the next timer (None: none), at most *limit*; 0 when commands wait."""
        if self._commands:
            return 0.0
        now = time.monotonic() if now is None else now
        wait = limit
        timers = self._timers
        if timers:
            with self._timer_lock:
                while timers and timers[0][2].cancelled:
                    heapq.heappop(timers)
                if timers:
                    due = max(0.0, timers[0][0] - now)
                    wait = due if wait is None else min(wait, due)
        return wait

    def prepare_to_sleep(self) -> bool:
        """Mark the owner asleep; False (and awake again) if commands arrived meanwhile."""
        # The wake-up socket must exist before anyone can see the owner asleep: a waker that
        # found none would drop its byte and the first sleep would last its whole time-out.
        self.fileno()
        self._sleeping = True
        if self._commands:
            self._sleeping = False
            return False
        return True

    def woke(self, readable: bool) -> None:
        """The owner is awake again; *readable*: the wake-up descriptor was readable."""
        self._sleeping = False
        self._wake_owed = False
        wake_r = self._wake_r
        if readable and wake_r is not None:
            # One read takes every byte written so far (a full buffer: read again); reading
            # until it fails would cost a second system call per wake-up.
            with contextlib.suppress(BlockingIOError, OSError):
                while len(wake_r.recv(4096)) == 4096:
                    pass

    def refuse(self) -> None:
        """Refuse further calls and drop what is queued (owner thread)."""
        self._closed = True
        self._commands.clear()

    def close(self) -> None:
        """Refuse further calls and release the wake-up sockets (owner thread, at the end)."""
        self.refuse()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
