"""The proton reactor on its own thread, and the command queue that feeds it.

Proton objects are not thread-safe: only the reactor thread may touch them. Other threads (the
agent's dispatcher, user threads) hand work over with `Reactor.submit`, which appends to a
`LoopCore` and wakes the reactor through its socket registered as a proton selectable, the same
mechanism as proton's ``EventInjector``. Unlike ``EventInjector`` it writes at most one wake-up
byte per batch and never blocks: a burst of a million ``sendasync`` calls costs a million deque
appends and a handful of socket writes, and a busy reactor can never make a user thread wait on
a full pipe.

A `Reactor` is one proton container on one thread. The process shares a few (`ReactorPool`,
one per core by default): each connection is a `ReactorSlot` on the least loaded one, with its
own connection-scoped handler, so a fleet of agents needs a handful of reactor threads, not one
per connection. The container waits with an epoll selector (`selector.EpollSelector`), not
proton's ``select()``. When the reactor is about to wait, it wakes the dispatchers of the
connections that reported something (`Reactor.reported`), once each.
"""

from __future__ import annotations

import atexit
import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from proton import Event, Handler
from proton.reactor import Container

from bridge.backends.amqp import selector
from bridge.loop.core import LoopCore
from bridge.loop.network import default_loop_count

log = logging.getLogger("bridge.backends.amqp")

Command = tuple[Callable[..., Any], tuple[Any, ...]]


class ProtonTimerTask(Handler):
    """A handler for ``container.schedule``: calls *fn* on the reactor thread when it is due."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn

    def on_timer_task(self, event: Event) -> None:
        self._fn()


class Deferred(enum.Enum):
    """What `CommandQueue.submit_deferred` did with a command."""

    FIRST = "first"  # queued; it opened a deferred batch: arrange a `kick`
    JOINED = "joined"  # queued; a wake-up or an open batch takes it along
    REFUSED = "refused"  # the reactor has finished: not queued


class CommandQueue:
    """Callables submitted from any thread, run on the reactor thread in submission order.

    The queue and its wake-up socket are a `LoopCore`'s; what is proton's here is how the
    reactor sleeps (inside ``container.run``), so the core is woken by one byte per batch
    (``_signalled``) rather than by its own sleeping flag.
    """

    def __init__(self, name: str = "amqp-reactor") -> None:
        self.core = LoopCore(name)
        self.core.fileno()  # the wake-up socket now: proton selects on it from the start
        self._lock = threading.Lock()
        self._signalled = False
        self._deferred = 0  # commands queued since the last wake-up without one of their own
        self._selectable: Any = None
        # proton's global IO handler also sees our selectable events and looks for this
        self._transport = None

    # -- any thread ---------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)``; False once the reactor has finished (nothing will run it)."""
        with self._lock:
            if not self.core.call_quiet(fn, *args):
                return False
            if not self._signalled:
                self._signal()
        return True

    def submit_deferred(self, fn: Callable[..., Any], *args: Any, batch: int) -> Deferred:
        """Queue ``fn(*args)`` without waking the reactor, until *batch* such commands wait.

        For work that may wait a little (settlements): on a stream that arrives one message
        per reactor pass, a wake-up per settlement was a pipe write, a reactor pass and a
        thread switch per message. Returns `FIRST` when this command opened a new deferred
        batch (the caller must make sure `kick` runs soon), `JOINED` when one is open already
        or the reactor is woken anyway, `REFUSED` once the reactor has finished.
        """
        with self._lock:
            if not self.core.call_quiet(fn, *args):
                return Deferred.REFUSED
            if self._signalled:
                return Deferred.JOINED  # the pending wake-up takes it along
            self._deferred += 1
            if self._deferred >= batch:
                self._signal()
                return Deferred.JOINED
            return Deferred.FIRST if self._deferred == 1 else Deferred.JOINED

    def kick(self) -> None:
        """Wake the reactor for commands queued by `submit_deferred`, if still waiting."""
        with self._lock:
            if not self.core.closed and self.core.pending and not self._signalled:
                self._signal()

    def _signal(self) -> None:
        self._signalled = True
        self._deferred = 0
        self.core.wake_now()

    # -- proton selectable protocol (reactor thread) -----------------------------------------
    def fileno(self) -> int:
        return self.core.fileno()

    def on_selectable_init(self, event: Event) -> None:
        selectable: Any = event.context  # a proton Selectable
        selectable.reading = True
        selectable.update()
        self._selectable = selectable

    def on_selectable_readable(self, event: Event) -> None:
        self.core.woke(True)
        with self._lock:
            self._signalled = False  # before taking the batch: a later submit wakes us again
            self._deferred = 0
            batch = self.core.pending
        self.core.run_commands(batch)

    def stop(self) -> None:
        """Refuse further commands and leave the reactor (reactor thread)."""
        with self._lock:
            self.core.refuse()
        selectable = self._selectable
        if selectable is not None:
            selectable.terminate()
            selectable.update()

    def close(self) -> None:
        """Called by proton when the selectable is finalised: release the wake-up sockets."""
        with self._lock:
            self.core.close()


class Reactor:
    """A proton `Container` running *handler* on a daemon thread, plus its command queue."""

    def __init__(self, handler: Any, name: str,
                 on_crash: Callable[[BaseException], None],
                 wake_reports: Callable[[], None] | None = None) -> None:
        self.commands = CommandQueue(name)
        # the dispatcher, for what this thread reported (None: a reactor driven by a test)
        self._wake_reports: Callable[[], None] = wake_reports or (lambda: None)
        self.container = Container(handler)
        selector.install(self.container)
        # proton takes any object with fileno() and selectable handlers, as its EventInjector
        self.container.selectable(self.commands)  # type: ignore[arg-type]
        self._on_crash = on_crash
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._start_lock = threading.Lock()
        self.slots: set[ReactorSlot] = set()
        self._to_wake: dict[int, Callable[[], None]] = {}

    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        return self.commands.submit(fn, *args)

    def submit_deferred(self, fn: Callable[..., Any], *args: Any, batch: int) -> Deferred:
        return self.commands.submit_deferred(fn, *args, batch=batch)

    def kick(self) -> None:
        self.commands.kick()

    def on_reactor_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def reported(self, key: int, wake: Callable[[], None]) -> None:
        """(Reactor thread.) A connection reported something: wake its dispatcher (once)
        before the reactor next waits."""
        self._to_wake[key] = wake

    def wake_reported(self) -> None:
        """(Reactor thread, about to wait.) Wake every dispatcher that was reported to."""
        if self._to_wake:
            to_wake, self._to_wake = self._to_wake, {}
            for wake in to_wake.values():
                wake()
        self._wake_reports()

    def finish(self) -> None:
        """End the event loop (reactor thread)."""
        self.commands.stop()
        self.container.stop()

    def join(self, timeout: float | None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread.ident is None:
            return True
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.container.run()
        except BaseException as exc:  # a bug in a handler: never die silently
            log.exception("AMQP reactor thread %s crashed", self._thread.name)
            self.commands.stop()
            self._on_crash(exc)
            for slot in list(self.slots):
                slot.crashed(exc)
        finally:
            self.wake_reported()
            self.commands.close()


class _Shared:
    """The container-level handler of a shared reactor."""

    def __init__(self) -> None:
        self.reactor: Reactor | None = None

    def on_reactor_quiesced(self, event: Event) -> None:
        # Every event read so far is handled and the reactor is about to wait on its sockets:
        # now each dispatcher is woken, once, for all it was handed.
        if self.reactor is not None:
            self.reactor.wake_reported()


class ReactorSlot:
    """One connection's place on a shared `Reactor`: its commands, its end, its timers."""

    def __init__(self, reactor: Reactor, on_crash: Callable[[BaseException], None]) -> None:
        self.reactor = reactor
        self.container = reactor.container
        self._on_crash = on_crash
        self._done = threading.Event()
        self._finished = False
        self._started = False

    def start(self, begin: Callable[[], None]) -> None:
        """Join the reactor and run *begin* (the connect) on its thread."""
        self._started = True
        self.reactor.slots.add(self)
        self.reactor.start()
        if not self.submit(begin):
            self.crashed(RuntimeError("the AMQP reactor has stopped"))

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        if self._finished:
            return False
        return self.reactor.submit(self._run, fn, args)

    def submit_deferred(self, fn: Callable[..., Any], *args: Any, batch: int) -> Deferred:
        if self._finished:
            return Deferred.REFUSED
        return self.reactor.submit_deferred(self._run, fn, args, batch=batch)

    def kick(self) -> None:
        self.reactor.kick()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if not self._finished:
            fn(*args)

    def on_reactor_thread(self) -> bool:
        return self.reactor.on_reactor_thread()

    def finish(self) -> None:
        """(Reactor thread.) This connection is over: no more commands; `join` returns."""
        if self._finished:
            return
        self._finished = True
        self.reactor.slots.discard(self)
        self._done.set()

    def crashed(self, exc: BaseException) -> None:
        if not self._finished:
            self._finished = True
            self.reactor.slots.discard(self)
            self._on_crash(exc)
            self._done.set()

    def join(self, timeout: float | None) -> bool:
        if not self._started:
            return True
        return self._done.wait(timeout)


class ReactorPool:
    """A fixed few shared reactors; a connection joins the least loaded one."""

    def __init__(self, size: int | None = None, name: str = "bridge-amqp") -> None:
        self.size = max(1, size or default_loop_count())
        self.name = name
        self._reactors: list[Reactor] = []
        self._lock = threading.Lock()

    def place(self, on_crash: Callable[[BaseException], None]) -> ReactorSlot:
        with self._lock:
            self._reactors = [r for r in self._reactors if not r._started or r._thread.is_alive()]
            if len(self._reactors) < self.size:
                shared = _Shared()
                reactor = Reactor(shared, f"{self.name}-{len(self._reactors) + 1}",
                                  lambda exc: None)
                shared.reactor = reactor
                self._reactors.append(reactor)
            else:
                reactor = min(self._reactors, key=lambda r: len(r.slots))
            slot = ReactorSlot(reactor, on_crash)
            reactor.slots.add(slot)  # counted from now on (placement is by load)
            return slot

    def place_on(self, reactor: Reactor, on_crash: Callable[[BaseException], None]
                 ) -> ReactorSlot:
        """A slot on *reactor* (a multiplexed connection's members share its thread)."""
        with self._lock:
            slot = ReactorSlot(reactor, on_crash)
            reactor.slots.add(slot)
            return slot

    @property
    def reactors(self) -> list[Reactor]:
        return list(self._reactors)

    def stop(self, timeout: float = 2.0) -> bool:
        """End every reactor's thread (any thread but theirs); True when all have ended."""
        with self._lock:
            reactors, self._reactors = self._reactors, []
        for reactor in reactors:
            if reactor._started:
                reactor.submit(reactor.finish)
        deadline = time.monotonic() + timeout
        return all(reactor.join(max(0.0, deadline - time.monotonic())) for reactor in reactors)


_shared_pool: ReactorPool | None = None
_shared_lock = threading.Lock()


def shared_reactors(size: int | None = None) -> ReactorPool:
    """The process-wide AMQP reactors (started with their first connection; *size*: how many,
    taken from the first caller that gives one, else one per core)."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = ReactorPool(size or None)
            # The reactors are daemon threads that outlive the connections. At exit, cproton's
            # own atexit hook frees the objects it keeps for proton while a reactor may still
            # be in proton: the process aborted (SIGABRT after a clean relay SIGTERM, seen in
            # the suite). Ours is registered after cproton's import, so it runs first.
            atexit.register(_stop_shared_reactors)
        return _shared_pool


def _stop_shared_reactors() -> None:
    global _shared_pool
    with _shared_lock:
        pool, _shared_pool = _shared_pool, None
    if pool is not None and not pool.stop():
        log.warning("an AMQP reactor thread did not end at exit")
