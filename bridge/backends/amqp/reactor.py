"""The proton reactor on its own thread, and the command queue that feeds it.

Proton objects are not thread-safe: only the reactor thread may touch them. Other threads (the
agent's dispatcher, user threads) hand work over with `Reactor.submit`, which appends to a deque
and wakes the reactor through a pipe registered as a proton selectable, the same mechanism as
proton's ``EventInjector``. Unlike ``EventInjector`` it writes at most one wake-up byte per batch
and never blocks: a burst of a million ``sendasync`` calls costs a million deque appends and a
handful of pipe writes, and a busy reactor can never make a user thread wait on a full pipe.

One reactor thread serves one connection. The thread lives exactly as long as the connection
(closing it ends the thread, so `join` is ``wait_closed``), a fault in one connection's handler
cannot stall another, and an agent has at most a few connections (imp capped them at 4).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from proton import Event
from proton.reactor import Container

from bridge.contract.dispatcher import batch_wake_ups, flush_wake_ups

log = logging.getLogger("bridge.backends.amqp")

Command = tuple[Callable[..., Any], tuple[Any, ...]]


class Deferred(enum.Enum):
    """What `CommandQueue.submit_deferred` did with a command."""

    FIRST = "first"  # queued; it opened a deferred batch: arrange a `kick`
    JOINED = "joined"  # queued; a wake-up or an open batch takes it along
    REFUSED = "refused"  # the reactor has finished: not queued


class CommandQueue:
    """Callables submitted from any thread, run on the reactor thread in submission order."""

    def __init__(self) -> None:
        self._items: deque[Command] = deque()
        self._lock = threading.Lock()
        self._signalled = False
        self._deferred = 0  # commands queued since the last wake-up without one of their own
        self._accepting = True
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._selectable: Any = None
        # proton's global IO handler also sees our selectable events and looks for this
        self._transport = None

    # -- any thread ---------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue ``fn(*args)``; False once the reactor has finished (nothing will run it)."""
        with self._lock:
            if not self._accepting:
                return False
            self._items.append((fn, args))
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
            if not self._accepting:
                return Deferred.REFUSED
            self._items.append((fn, args))
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
            if self._accepting and self._items and not self._signalled:
                self._signal()

    def _signal(self) -> None:
        # Under the lock, so the descriptor cannot be closed (and reused) meanwhile.
        self._signalled = True
        self._deferred = 0
        with contextlib.suppress(BlockingIOError):  # a wake-up is already waiting
            os.write(self._write_fd, b"!")

    # -- proton selectable protocol (reactor thread) -----------------------------------------
    def fileno(self) -> int:
        return self._read_fd

    def on_selectable_init(self, event: Event) -> None:
        selectable = event.context
        selectable.reading = True
        selectable.update()
        self._selectable = selectable

    def on_selectable_readable(self, event: Event) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._read_fd, 512)
        with self._lock:
            self._signalled = False  # before taking the batch: a later submit wakes us again
            self._deferred = 0
            batch, self._items = self._items, deque()
        for fn, args in batch:
            try:
                fn(*args)
            except Exception:
                log.exception("AMQP backend command %s failed",
                              getattr(fn, "__qualname__", fn))

    def stop(self) -> None:
        """Refuse further commands and leave the reactor (reactor thread)."""
        with self._lock:
            self._accepting = False
            self._items.clear()
        selectable = self._selectable
        if selectable is not None:
            selectable.terminate()
            selectable.update()

    def close(self) -> None:
        """Called by proton when the selectable is finalised: release the pipe."""
        with self._lock:
            self._accepting = False
            fds, self._read_fd, self._write_fd = (self._read_fd, self._write_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)


class Reactor:
    """A proton `Container` running *handler* on a daemon thread, plus its command queue."""

    def __init__(self, handler: Any, name: str,
                 on_crash: Callable[[BaseException], None]) -> None:
        self.commands = CommandQueue()
        self.container = Container(handler)
        self.container.selectable(self.commands)
        self._on_crash = on_crash
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        return self.commands.submit(fn, *args)

    def submit_deferred(self, fn: Callable[..., Any], *args: Any, batch: int) -> Deferred:
        return self.commands.submit_deferred(fn, *args, batch=batch)

    def kick(self) -> None:
        self.commands.kick()

    def on_reactor_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def finish(self) -> None:
        """End the event loop once the connection is gone (reactor thread)."""
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
        batch_wake_ups()  # flushed when the reactor goes quiet (`ConnectionHandler`) and below
        try:
            self.container.run()
        except BaseException as exc:  # a bug in a handler: never die silently
            log.exception("AMQP reactor thread %s crashed", self._thread.name)
            self.commands.stop()
            self._on_crash(exc)
        finally:
            flush_wake_ups()
            self.commands.close()
