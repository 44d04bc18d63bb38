"""The dispatcher pool: many agents' callbacks on a bounded, growing set of worker threads.

Every agent has its own serial queue (its `Dispatcher`); an agent started with
``agent.start()`` is *pooled*: whenever its queue has work, the queue is put on the pool's ready
queue and one worker runs a bounded batch of it. A queue is held by at most one worker at a
time (its *token*, taken without blocking by whoever schedules it), so one agent's callbacks
still run in order, one at a time, never on a network thread - and a thousand agents need a
handful of threads, not a thousand.

A callback that blocks holds its worker. A supervisor (every `SUPERVISE_INTERVAL` seconds, on
the pool's timer thread) adds a worker while every worker has been busy longer than that and
work is waiting, up to `max_workers` (a warning says so once the pool has grown, and once it hits
the cap); extra workers leave again after `IDLE_LINGER` seconds without work. So an agent
blocked for 5 s delays the others by about one supervision interval, not 5 s.

Timers of pooled agents (``imp.wakeup``) live on the pool's timer thread, which posts "run your
due timers" to the agent's queue when one is due.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from bridge.loop.core import Timer
from bridge.loop.network import NetworkLoop

log = logging.getLogger("bridge.dispatcher")

SUPERVISE_INTERVAL = 0.05  # seconds: how long all workers may be stuck before one is added
IDLE_LINGER = 30.0  # seconds an extra worker waits for work before it leaves
BATCH_ITEMS = 256  # items of one agent per turn of a worker (then the agent goes to the back)
BATCH_SECONDS = 0.01  # ... or this long, whichever comes first

# The agent whose callbacks the current thread is running (log lines carry it: bridge fleet).
current_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "bridge_current_agent", default=None)


class Pooled(Protocol):
    """What the pool runs: an agent's queue (`bridge.loop.dispatcher.Dispatcher`)."""

    name: str

    def run_batch(self, max_items: int, max_seconds: float) -> bool:
        """Run some of the queue (holding its token); True if work is left."""
        ...

    def release_token(self) -> None:
        """Give the token back (rescheduling itself if work arrived meanwhile)."""
        ...

    def failed(self, exc: BaseException) -> None:
        """Running it raised past its own error handling (a bug, or SystemExit)."""
        ...


class _Worker:
    __slots__ = ("busy_since", "idle_since", "thread")

    def __init__(self) -> None:
        self.busy_since: float | None = None
        self.idle_since = time.monotonic()
        self.thread: threading.Thread | None = None


class DispatchPool:
    """Worker threads for pooled agents (see the module doc)."""

    def __init__(self, workers: int | None = None, max_workers: int | None = None,
                 name: str = "bridge-dispatch") -> None:
        self.base = max(1, workers or default_workers())
        self.max_workers = max(self.base, max_workers or self.base * 16)
        self.name = name
        self._ready: queue.SimpleQueue[Pooled | None] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._timers = NetworkLoop(f"{name}-timers")
        self._supervising = False
        self._warned_growth = False
        self._warned_cap = False
        self.started_workers = 0

    # -- any thread ---------------------------------------------------------------------------
    def schedule(self, item: Pooled) -> None:
        """Queue *item* to be run (its caller holds its token). Reentrant: a signal handler
        may call it (SimpleQueue.put takes no lock a thread could be holding)."""
        self._ready.put(item)
        if not self._workers:
            self._start_workers()

    def call_later(self, delay: float, fn: Callable[[], Any]) -> Timer:
        """Run *fn* on the pool's timer thread after *delay* seconds."""
        self._timers.start()
        return self._timers.call_later(delay, fn)

    @property
    def workers(self) -> int:
        return len(self._workers)

    def waiting(self) -> int:
        return self._ready.qsize()

    # -- workers ------------------------------------------------------------------------------
    def _start_workers(self) -> None:
        with self._lock:
            if self._workers:
                return
            for _ in range(self.base):
                self._add_worker()
            if not self._supervising:
                self._supervising = True
                self.call_later(SUPERVISE_INTERVAL, self._supervise)

    def _add_worker(self) -> None:
        """Lock held."""
        worker = _Worker()
        self.started_workers += 1
        worker.thread = threading.Thread(target=self._work, args=(worker,),
                                         name=f"{self.name}-{self.started_workers}", daemon=True)
        self._workers.append(worker)
        worker.thread.start()

    def _work(self, worker: _Worker) -> None:
        ready = self._ready
        while True:
            extra = False
            with self._lock:
                extra = len(self._workers) > self.base
            try:
                item = ready.get(timeout=IDLE_LINGER) if extra else ready.get()
            except queue.Empty:
                with self._lock:
                    if len(self._workers) > self.base:
                        self._workers.remove(worker)
                        return
                continue
            if item is None:  # a wake-up only
                continue
            worker.busy_since = time.monotonic()
            token = current_agent.set(item.name)
            more = False
            try:
                more = item.run_batch(BATCH_ITEMS, BATCH_SECONDS)
            except BaseException as exc:  # SystemExit from a callback, or a bug: never silent
                log.exception("dispatcher for %s failed", item.name)
                try:
                    item.failed(exc)
                except Exception:
                    log.exception("reporting the failure of %s failed", item.name)
            finally:
                current_agent.reset(token)
                worker.busy_since = None
                worker.idle_since = time.monotonic()
            if more:
                ready.put(item)  # still holding its token: to the back of the line
            else:
                item.release_token()

    def _supervise(self) -> None:
        now = time.monotonic()
        with self._lock:
            stuck = sum(1 for w in self._workers
                        if w.busy_since is not None and now - w.busy_since > SUPERVISE_INTERVAL)
            if stuck and stuck >= len(self._workers) and not self._ready.empty():
                if len(self._workers) < self.max_workers:
                    self._add_worker()
                    if not self._warned_growth:
                        self._warned_growth = True
                        # Not only a blocking callback: a long garbage collection or a
                        # CPU-bound batch also keeps every worker busy past the interval.
                        log.warning("every dispatcher worker has been busy over %d ms with work "
                                    "waiting (a callback that blocks?); adding workers (now %d, "
                                    "at most %d)", SUPERVISE_INTERVAL * 1000, len(self._workers),
                                    self.max_workers)
                elif not self._warned_cap:
                    self._warned_cap = True
                    log.warning("all %d dispatcher workers have been busy over %d ms with work "
                                "waiting; other agents wait (callbacks that block? raise "
                                "dispatch.max_workers)", self.max_workers,
                                SUPERVISE_INTERVAL * 1000)
        self._timers.call_later(SUPERVISE_INTERVAL, self._supervise)


def default_workers() -> int:
    """Workers to start with: two per core (at least two)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    return max(2, 2 * cores)


_shared: DispatchPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> DispatchPool:
    """The process-wide dispatcher pool (its threads start on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DispatchPool()
        return _shared


def configure_shared_pool(workers: int | None, max_workers: int | None) -> None:
    """Sizes of the process-wide pool (before agents start: `bridge fleet`, settings)."""
    pool = shared_pool()
    if workers:
        pool.base = max(1, workers)
    if max_workers:
        pool.max_workers = max(pool.base, max_workers)
