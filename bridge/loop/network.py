"""The network loops: a fixed few threads that drive every socket of the process.

A `NetworkLoop` is one thread, one `selectors` selector (epoll on Linux: no FD_SETSIZE ceiling,
O(ready) per wake-up) and one `LoopCore` (commands from other threads, timers, the wake-up
socket). Connections register their sockets with a handler and get called back on the loop
thread when the socket is ready; everything else they do on the loop (commands, timers) goes
through the same core. A connection that did something in a turn asks for one `tidy` call before
the loop sleeps again (flush its write buffer, update what it waits for, wake its agent's
dispatcher once for everything it reported), so work is batched per turn, not per event.

`shared_loops()` is the process-wide set (`LoopPool`): as many loops as configured (default one
per core), started on first use, never more whatever the number of connections. A connection is
placed on the least loaded loop and stays there.

A failure inside a handler is a bug in that connection: it is logged and that connection alone
is told (`LoopMember.loop_failed`); a failure of the loop itself (never expected) tells every
connection on it, so no agent waits forever on a dead thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from bridge.loop.core import LoopCore, Timer

log = logging.getLogger("bridge.loop")

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
Handler = Callable[[int], None]


class LoopMember(Protocol):
    """What a loop knows of a connection placed on it."""

    def loop_failed(self, detail: str) -> None:
        """The loop (or this member's handler) failed: end the connection with *detail*."""


class NetworkLoop:
    """One thread driving many sockets (see the module doc)."""

    def __init__(self, name: str = "bridge-net") -> None:
        self.name = name
        self.core = LoopCore(name)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.core.fileno(), READ, None)
        self._tidy: dict[int, Callable[[], None]] = {}  # once before the next sleep
        self._members: dict[int, LoopMember] = {}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread_id: int | None = None
        self._started = False
        self._start_lock = threading.Lock()
        self._stopping = False
        self.turns = 0

    # -- any thread ---------------------------------------------------------------------------
    def start(self) -> NetworkLoop:
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()
        return self

    def call(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``fn(*args)`` on the loop thread; False once the loop has ended."""
        return self.core.call(fn, *args)

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Timer:
        return self.core.call_later(delay, fn)

    def on_loop_thread(self) -> bool:
        return self._thread_id == threading.get_ident()

    @property
    def load(self) -> int:
        """How many members are placed on this loop."""
        return len(self._members)

    def join(self, timeout: float | None = None) -> bool:
        if self._started:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """End the loop thread (tests; the shared loops live as long as the process)."""
        self._stopping = True
        self.core.wake_now()

    # -- members (placement from any thread; sockets on the loop thread) ------------------------
    def add_member(self, member: LoopMember) -> None:
        self._members[id(member)] = member

    def remove_member(self, member: LoopMember) -> None:
        self._members.pop(id(member), None)

    def register(self, fileobj: Any, events: int, handler: Handler) -> None:
        """Call ``handler(mask)`` when *fileobj* is ready for *events* (loop thread)."""
        try:
            self._selector.register(fileobj, events, handler)
        except KeyError:
            # its descriptor is still registered for a socket closed without unregistering
            # (the number was reused): that registration is stale
            stale = self._selector.get_map().get(fileobj.fileno())
            if stale is None or stale.fileobj is fileobj:
                raise
            self._selector.unregister(stale.fileobj)
            self._selector.register(fileobj, events, handler)

    def modify(self, fileobj: Any, events: int, handler: Handler) -> None:
        self._selector.modify(fileobj, events, handler)

    def unregister(self, fileobj: Any) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(fileobj)  # may be gone already: closed, never registered

    def tidy(self, key: int, fn: Callable[[], None]) -> None:
        """Run *fn* once before the loop next sleeps (loop thread; *key*: one per member)."""
        self._tidy[key] = fn

    # -- the loop thread ------------------------------------------------------------------------
    def _run(self) -> None:
        self._thread_id = threading.get_ident()
        try:
            self._loop()
        except BaseException as exc:  # a bug in the loop itself: never die silently
            log.exception("network loop %s crashed", self.name)
            detail = f"amqp:internal-error: the network loop {self.name} stopped: {exc!r}"
            for member in list(self._members.values()):
                try:
                    member.loop_failed(detail)
                except Exception:
                    log.exception("telling %r that its loop failed", member)
        finally:
            self.core.close()
            self._selector.close()

    def _loop(self) -> None:
        core = self.core
        selector = self._selector
        wake_fd = core.fileno()
        while not self._stopping:
            self.turns += 1
            core.run_commands()
            core.run_timers()
            self._run_tidy()
            timeout = core.timeout()
            if self._tidy:
                timeout = 0.0  # a tidy call asked for another turn
            if not core.prepare_to_sleep():
                timeout = 0.0
            ready = selector.select(timeout)
            woke = False
            for key, mask in ready:
                if key.fd == wake_fd:
                    woke = True
                    continue
                handler: Handler = key.data
                try:
                    handler(mask)
                except Exception:
                    log.exception("network loop %s: a socket handler failed", self.name)
                    member = getattr(handler, "__self__", None)
                    if member is not None and hasattr(member, "loop_failed"):
                        self.unregister(key.fileobj)
                        member.loop_failed("amqp:internal-error: the connection's network "
                                           "handler failed (see the log)")
            core.woke(woke)

    def _run_tidy(self) -> None:
        # Tidy calls may ask for another (a flush that could not finish): those run next turn.
        pending, self._tidy = self._tidy, {}
        for fn in pending.values():
            try:
                fn()
            except Exception:
                log.exception("network loop %s: a tidy call failed", self.name)


class LoopPool:
    """A fixed number of network loops; members are placed on the least loaded one."""

    def __init__(self, size: int | None = None, name: str = "bridge-net") -> None:
        self.size = max(1, size or default_loop_count())
        self.name = name
        self._loops: list[NetworkLoop] = []
        self._lock = threading.Lock()

    def place(self, member: LoopMember) -> NetworkLoop:
        """The loop *member* will live on (started if needed); counted there until removed."""
        with self._lock:
            self._loops = [lp for lp in self._loops if lp._thread.is_alive() or not lp._started]
            if len(self._loops) < self.size:
                loop = NetworkLoop(f"{self.name}-{len(self._loops) + 1}")
                self._loops.append(loop)
            else:
                loop = min(self._loops, key=lambda lp: lp.load)
            loop.add_member(member)
        return loop.start()

    @property
    def loops(self) -> list[NetworkLoop]:
        return list(self._loops)

    def resize(self, size: int) -> None:
        """Change how many loops new members may be spread over (existing ones stay)."""
        self.size = max(1, size)


def default_loop_count() -> int:
    """One network loop per core (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


_shared: LoopPool | None = None
_shared_lock = threading.Lock()


def shared_loops() -> LoopPool:
    """The process-wide network loops."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoopPool()
        return _shared


def configure_shared_loops(size: int) -> None:
    """How many network loops the process uses (set before connections open: `bridge fleet`)."""
    shared_loops().resize(size)


def monotonic() -> float:
    return time.monotonic()
