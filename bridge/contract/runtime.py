"""State shared by every contract object of one agent: the dispatcher, the lock, the limits."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.backends.base import BackendFactory, load_backend
from bridge.contract.dispatcher import Dispatcher
from bridge.contract.outbox import Outbox
from bridge.errors import LimitError

if TYPE_CHECKING:
    from bridge.contract.objects import ConnectionCore
    from bridge.settings import Settings

agent_log = logging.getLogger("bridge.agent")


class Limits:
    """The imp per-agent caps: 4 connections, 16 sessions, 64 links (0 disables a cap)."""

    __slots__ = ("connections", "links", "max_connections", "max_links", "max_sessions",
                 "sessions")

    def __init__(self, max_connections: int, max_sessions: int, max_links: int) -> None:
        self.max_connections = max_connections
        self.max_sessions = max_sessions
        self.max_links = max_links
        self.connections = 0
        self.sessions = 0
        self.links = 0

    def take(self, kind: str, method: str) -> None:
        if kind == "connection":
            if self.max_connections and self.connections >= self.max_connections:
                raise LimitError(f"max connection limit reached: {method} "
                                 f"({self.max_connections} connections per agent)")
            self.connections += 1
        elif kind == "session":
            if self.max_sessions and self.sessions >= self.max_sessions:
                raise LimitError(f"max session limit reached: {method} "
                                 f"({self.max_sessions} sessions per agent)")
            self.sessions += 1
        else:
            if self.max_links and self.links >= self.max_links:
                raise LimitError(f"max link limit reached: {method} "
                                 f"({self.max_links} senders and receivers per agent)")
            self.links += 1

    def give_back(self, kind: str) -> None:
        if kind == "connection":
            self.connections -= 1
        elif kind == "session":
            self.sessions -= 1
        else:
            self.links -= 1


class Runtime:
    """One per agent. Contract objects reach the dispatcher, lock and backend factory here."""

    def __init__(self, settings: Settings, agent_id: str) -> None:
        self.settings = settings
        self.agent_id = agent_id
        self.dispatcher = Dispatcher()
        self.post = self.dispatcher.post
        # One lock for every contract state change; never held while user code runs.
        self.lock = threading.RLock()
        lim = settings.limits
        self.limits = Limits(lim.connections, lim.sessions, lim.links)
        self.also_notify_connection = settings.routing.also_notify_connection
        self.connections: dict[int, ConnectionCore] = {}
        box = settings.outbox
        self.outbox: Outbox | None = None
        self.outbox_window: float = float("inf")
        self.outbox_tag: str | None = None
        self.outbox_live: set[int] = set()  # rows owned by transfers alive in this process
        if box.path is not None:
            self.outbox = Outbox(box.path, agent_id, box.max_messages, box.max_bytes)
            self.outbox_window = box.window
            self.outbox_tag = box.tag_property
        self._next_id = 0
        self._backend_factory: BackendFactory | None = None

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def backend_factory(self) -> BackendFactory:
        if self._backend_factory is None:
            if self.settings.routes:
                # per-address routes: the router composes the named backends per link
                from bridge.backends.routed import create as create_router

                self._backend_factory = create_router
            else:
                self._backend_factory = load_backend(self.settings.backend)
        return self._backend_factory

    @staticmethod
    def backend_factory_for(settings: Settings) -> BackendFactory:
        """The factory for a connection that runs on *settings* instead of the agent's."""
        if settings.routes:
            from bridge.backends.routed import create as create_router

            return create_router
        return load_backend(settings.backend)

    @staticmethod
    def call_user(fn: Callable[..., Any], *args: Any) -> None:
        """Run a user callback; an exception is logged with its traceback and swallowed."""
        try:
            fn(*args)
        except Exception:
            agent_log.exception("user callback %s raised", getattr(fn, "__qualname__", fn))
