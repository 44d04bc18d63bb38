"""State shared by every contract object of one agent: options, dispatch, the lock, the limits.

The contract knows nothing of settings files or backend names: the application layer
(`bridge.agent`) hands a `Runtime` plain `RuntimeOptions`, something that dispatches (`Dispatch`)
and a `BackendOpener` that turns a connection's `BackendContext` into a backend.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bridge.contract.backend import Backend, BackendOpener
from bridge.contract.outbox import Outbox
from bridge.errors import LimitError

agent_log = logging.getLogger("bridge.agent")


@dataclass(frozen=True, slots=True)
class OutboxOptions:
    """The durable outbox (see `bridge.contract.outbox`)."""

    path: Path
    max_messages: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    window: int = 1000
    tag_property: str | None = None


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """What the contract needs to know about one agent (plain values, no settings model)."""

    agent_id: str = "agent"
    amqp_enabled: bool = True
    max_connections: int = 4  # imp's per-agent caps; 0 disables a cap
    max_sessions: int = 16
    max_links: int = 64
    also_notify_connection: bool = False
    close_timeout: float = 5.0
    outbox: OutboxOptions | None = None


class Dispatch(Protocol):
    """What the contract needs of the agent's dispatcher (`bridge.loop.dispatcher`)."""

    def post(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def post_quiet(self, fn: Callable[..., Any], *args: Any) -> None: ...
    def wake(self) -> None: ...
    def call_later(self, delay: float, fn: Callable[[], Any], *,
                   before_leaving: bool = False) -> Any: ...
    def on_dispatcher_thread(self) -> bool: ...


class LiveConnection(Protocol):
    """What the runtime keeps of an open connection (`objects.ConnectionCore`)."""

    backend: Backend

    @property
    def state(self) -> int: ...  # an objects.NodeState

    def _end(self, terminal_index: int, detail: str | None, *, tell_backend: bool) -> None: ...


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
    """One per agent. Contract objects reach the dispatcher, lock and backends here."""

    def __init__(self, options: RuntimeOptions, dispatch: Dispatch,
                 open_backend: BackendOpener) -> None:
        self.options = options
        self.agent_id = options.agent_id
        self.dispatch = dispatch
        self.post = dispatch.post
        self.post_quiet = dispatch.post_quiet
        self.wake = dispatch.wake
        self.open_backend = open_backend
        # One lock for every contract state change; never held while user code runs.
        self.lock = threading.RLock()
        self.limits = Limits(options.max_connections, options.max_sessions, options.max_links)
        self.also_notify_connection = options.also_notify_connection
        self.connections: dict[int, LiveConnection] = {}
        box = options.outbox
        self.outbox: Outbox | None = None
        self.outbox_window: float = float("inf")
        self.outbox_tag: str | None = None
        self.outbox_live: set[int] = set()  # rows owned by transfers alive in this process
        if box is not None:
            self.outbox = Outbox(box.path, options.agent_id, box.max_messages, box.max_bytes)
            self.outbox_window = box.window
            self.outbox_tag = box.tag_property
        self._next_id = 0
        # what this agent did (dispatcher thread): `bridge fleet` status and metrics
        self.received = 0  # deliveries handed to the application (or auto-accepted)
        self.confirmed = 0  # transfers the far end confirmed
        self.errors = 0  # *_ERROR events delivered

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    @staticmethod
    def call_user(fn: Callable[..., Any], *args: Any) -> None:
        """Run a user callback; an exception is logged with its traceback and swallowed."""
        try:
            fn(*args)
        except Exception:
            agent_log.exception("user callback %s raised", getattr(fn, "__qualname__", fn))


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
