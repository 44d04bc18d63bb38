"""`Agent`: the runtime a ported agent script lives in.

It owns one dispatcher that runs every user callback (lifecycle events, message callbacks,
``sendasync`` callbacks, ``imp.wakeup`` timers) one at a time, and the ``amqp``, ``imp`` and
``server`` objects the imp agent environment provided.

This is where the layers meet: the settings choose a backend from the registry (the router
whenever ``routes`` are set), and the contract (`bridge.contract`) gets plain options, the
dispatcher and a `BackendOpener` that knows nothing but the context the contract filled in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

from bridge.backends.registry import load_backend
from bridge.contract.backend import Backend, BackendContext, BackendFactory
from bridge.contract.factory import AMQP
from bridge.contract.objects import NodeState
from bridge.contract.runtime import OutboxOptions, Runtime, RuntimeOptions
from bridge.loop.core import Timer
from bridge.loop.dispatcher import Dispatcher
from bridge.loop.network import configure_shared_loops
from bridge.loop.pool import DispatchPool, configure_shared_pool, shared_pool
from bridge.settings import Settings

agent_log = logging.getLogger("bridge.agent")


class Imp:
    """The parts of imp's ``imp`` object agent code uses with AMQP: timers, and
    ``imp.configparams`` (what the agent was configured with: a device's row under
    ``bridge fleet``)."""

    __slots__ = ("_rt", "configparams")

    def __init__(self, runtime: Runtime, configparams: dict[str, Any] | None = None) -> None:
        self._rt = runtime
        self.configparams: dict[str, Any] = dict(configparams or {})

    def wakeup(self, seconds: float, callback: Callable[[], Any]) -> Timer:
        """Run *callback()* on the dispatcher after *seconds* (0: on a later turn)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        call_user = self._rt.call_user
        return self._rt.dispatch.call_later(float(seconds), lambda: call_user(callback))

    def cancelwakeup(self, handle: Timer) -> None:
        """Cancel a pending wakeup; cancelling a fired or cancelled one is a no-op."""
        if not isinstance(handle, Timer):
            raise TypeError(f"handle must be what imp.wakeup returned, got {type(handle).__name__}")
        handle.cancel()


class Server:
    """imp's ``server.log`` / ``server.error``, on the standard ``bridge.agent`` logger."""

    __slots__ = ()

    @staticmethod
    def log(message: object) -> None:
        agent_log.info("%s", message)

    @staticmethod
    def error(message: object) -> None:
        agent_log.error("%s", message)


def runtime_options(settings: Settings) -> RuntimeOptions:
    """What the contract needs to know of *settings*."""
    box = settings.outbox
    outbox = None
    if box.path is not None:
        outbox = OutboxOptions(path=box.path, max_messages=box.max_messages,
                               max_bytes=box.max_bytes, window=box.window,
                               tag_property=box.tag_property)
    limits = settings.limits
    return RuntimeOptions(
        agent_id=settings.agent_id, amqp_enabled=settings.amqp_enabled,
        max_connections=limits.connections, max_sessions=limits.sessions,
        max_links=limits.links, also_notify_connection=settings.routing.also_notify_connection,
        close_timeout=settings.close_timeout, outbox=outbox)


_threads_sized = False


def size_shared_threads(settings: Settings) -> None:
    """Size the process's shared threads from the first agent's ``threads`` settings."""
    global _threads_sized
    if _threads_sized:
        return
    _threads_sized = True
    threads = settings.threads
    if threads.network_loops:
        configure_shared_loops(threads.network_loops)
    if threads.dispatch_workers or threads.dispatch_max_workers:
        configure_shared_pool(threads.dispatch_workers or None,
                              threads.dispatch_max_workers or None)


class BackendSelection:
    """Turns a connection's `BackendContext` into a backend, as *settings* say: the router when
    routes are set, else ``settings.backend``; the backend gets its own settings section."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._factories: dict[str, BackendFactory] = {}

    def __call__(self, context: BackendContext, variant: Any) -> Backend:
        # *variant*: settings a service (the relay) runs this one connection on
        settings: Settings = variant if variant is not None else self.settings
        name = "routed" if settings.routes else settings.backend
        factory = self._factories.get(name)
        if factory is None:
            factory = self._factories[name] = load_backend(name)
        return factory(replace(context, config=settings.section(name), settings=settings))


class Agent:
    """One ported agent: settings, a dispatcher, and ``amqp`` / ``imp`` / ``server``."""

    def __init__(self, settings: Settings | None = None, *,
                 configparams: dict[str, Any] | None = None,
                 pool: DispatchPool | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        size_shared_threads(self.settings)
        self._dispatcher = Dispatcher(self.settings.agent_id)
        self._dispatcher.on_failure = self._dispatcher_failed
        self._rt = Runtime(runtime_options(self.settings), self._dispatcher,
                           BackendSelection(self.settings))
        self.amqp = AMQP(self._rt)
        self.imp = Imp(self._rt, configparams)
        self.server = Server()
        self._pool = pool
        self._closed = False
        self._closing: list[Any] = []
        # what ended its dispatching, if something did (a bug, or SystemExit in a callback)
        self.failure: BaseException | None = None
        # told (on a pool worker) when that happens, after the connections were ended
        self.on_failure: Callable[[BaseException], None] | None = None

    # -- dispatching ------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> None:
        """Dispatch callbacks on this thread until `stop` (or *timeout* seconds)."""
        self._dispatcher.run(timeout)

    def run_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Dispatch until ``predicate()`` is true; returns it (False on timeout or stop)."""
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {type(predicate).__name__}")
        return self._dispatcher.run(timeout, predicate)

    def start(self) -> None:
        """Dispatch in the background (for applications with their own main loop): the agent's
        callbacks run on the process's dispatcher pool, still in order and one at a time."""
        if self._dispatcher._pool is not None:
            raise RuntimeError("agent already started")
        self._dispatcher.attach(self._pool or shared_pool())

    def stop(self) -> None:
        """Make `run` / `run_until` return (or end `start`'s background dispatching) after the
        current callback."""
        if self._dispatcher._pool is not None:
            self._dispatcher.detach()
        else:
            self._dispatcher.request_stop()

    def _dispatcher_failed(self, exc: BaseException) -> None:
        """Dispatching this agent raised past every handler: its connections end with the
        cause (``CONNECTION_ERROR``), so nothing waits on a dead agent."""
        self.failure = exc
        detail = f"amqp:internal-error: the agent's dispatcher failed: {exc!r}"
        with self._rt.lock:
            cores = list(self._rt.connections.values())
        for core in cores:
            core._end(2, detail, tell_backend=True)
        if self.on_failure is not None:
            self.on_failure(exc)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the dispatcher (thread-safe): how other threads reach agent code."""
        call_user = self._rt.call_user
        self._rt.post(call_user, fn, *args)

    @property
    def dispatching(self) -> bool:
        return self._dispatcher.running

    def status(self) -> str:
        """``connected`` (every connection open and its backend up), ``reconnecting``,
        ``connecting``, ``idle`` (no connection) or ``failed`` (its dispatching failed)."""
        if self.failure is not None:
            return "failed"
        with self._rt.lock:
            cores = list(self._rt.connections.values())
        if not cores:
            return "idle"
        states = [getattr(core.backend, "status", lambda: "up")() for core in cores]
        if "reconnecting" in states:
            return "reconnecting"
        if all(state == "up" for state in states) and \
                all(core.state == NodeState.OPEN for core in cores):
            return "connected"
        return "connecting"

    def counters(self) -> tuple[int, int, int]:
        """(deliveries received, transfers confirmed, error events) so far."""
        rt = self._rt
        return rt.received, rt.confirmed, rt.errors

    # -- shutdown ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close every connection this agent opened, wait for the backends, then stop.

        Idempotent. Pending ``*_CLOSED`` events are delivered if the agent is dispatching in
        the background (`start`); otherwise they are dropped with the agent.
        """
        self.begin_close()
        self.finish_close(time.monotonic() + self.settings.close_timeout)

    def begin_close(self) -> None:
        """Close every connection without waiting (the first half of `close`: a fleet closes
        thousands of agents this way, then waits for all of them at once)."""
        if self._closed:
            return
        self._closed = True
        rt = self._rt
        with rt.lock:
            self._closing = list(rt.connections.values())
        for core in self._closing:
            core._end(1, None, tell_backend=True)

    def finish_close(self, deadline: float) -> None:
        """Wait (until *deadline*, a ``time.monotonic()``) for the backends and the *_CLOSED
        events, then stop dispatching."""
        cores, self._closing = self._closing, []
        if not self._dispatcher.on_dispatcher_thread():
            for core in cores:
                core.backend.wait_closed(max(0.0, deadline - time.monotonic()))
            if self._dispatcher._pool is not None:  # let the pool deliver the *_CLOSED events
                delivered = threading.Event()
                self._rt.post(delivered.set)
                delivered.wait(max(0.0, deadline - time.monotonic()))
        self.stop()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Agent {self.settings.agent_id!r} backend={self.settings.backend!r}>"
