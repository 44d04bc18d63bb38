"""`Agent`: the runtime a ported agent script lives in.

It owns one dispatcher that runs every user callback (lifecycle events, message callbacks,
``sendasync`` callbacks, ``imp.wakeup`` timers) one at a time, and the ``amqp``, ``imp`` and
``server`` objects the imp agent environment provided.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from bridge.contract.dispatcher import TimerHandle
from bridge.contract.factory import Amqp
from bridge.contract.runtime import Runtime
from bridge.settings import Settings

agent_log = logging.getLogger("bridge.agent")


class Imp:
    """The parts of imp's ``imp`` object agent code uses with AMQP: timers."""

    __slots__ = ("_rt",)

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def wakeup(self, seconds: float, callback: Callable[[], Any]) -> TimerHandle:
        """Run *callback()* on the dispatcher after *seconds* (0: on a later turn)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        call_user = self._rt.call_user
        return self._rt.dispatcher.call_later(float(seconds), lambda: call_user(callback))

    def cancelwakeup(self, handle: TimerHandle) -> None:
        """Cancel a pending wakeup; cancelling a fired or cancelled one is a no-op."""
        if not isinstance(handle, TimerHandle):
            raise TypeError(f"handle must be what imp.wakeup returned, got {type(handle).__name__}")
        self._rt.dispatcher.cancel(handle)


class Server:
    """imp's ``server.log`` / ``server.error``, on the standard ``bridge.agent`` logger."""

    __slots__ = ()

    @staticmethod
    def log(message: object) -> None:
        agent_log.info("%s", message)

    @staticmethod
    def error(message: object) -> None:
        agent_log.error("%s", message)


class Agent:
    """One ported agent: settings, a dispatcher, and ``amqp`` / ``imp`` / ``server``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._rt = Runtime(self.settings, self.settings.agent_id)
        self.amqp = Amqp(self._rt)
        self.imp = Imp(self._rt)
        self.server = Server()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- dispatching ------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> None:
        """Dispatch callbacks on this thread until `stop` (or *timeout* seconds)."""
        self._rt.dispatcher.run(timeout)

    def run_until(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        """Dispatch until ``predicate()`` is true; returns it (False on timeout or stop)."""
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {type(predicate).__name__}")
        return self._rt.dispatcher.run(timeout, predicate)

    def start(self) -> None:
        """Dispatch on a background thread (for applications with their own main loop)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("agent already started")
        self._thread = threading.Thread(target=self._rt.dispatcher.run,
                                        name=f"bridge-dispatcher-{self.settings.agent_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Make `run` / `run_until` (or the `start` thread) return after the current callback."""
        self._rt.dispatcher.request_stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._thread = None

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the dispatcher (thread-safe): how other threads reach agent code."""
        call_user = self._rt.call_user
        self._rt.post(call_user, fn, *args)

    @property
    def dispatching(self) -> bool:
        return self._rt.dispatcher.running

    # -- shutdown ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close every connection this agent opened, wait for the backends, then stop.

        Idempotent. Pending ``*_CLOSED`` events are delivered if the agent is dispatching on a
        background thread; otherwise they are dropped with the agent.
        """
        if self._closed:
            return
        self._closed = True
        rt = self._rt
        with rt.lock:
            cores = list(rt.connections.values())
        for core in cores:
            core._end(1, None, tell_backend=True)
        if not rt.dispatcher.on_dispatcher_thread():
            for core in cores:
                core.backend.wait_closed(self.settings.close_timeout)
        self.stop()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Agent {self.settings.agent_id!r} backend={self.settings.backend!r}>"
