"""The backend interface and the registry that maps a backend name to a lazily imported factory.

The contract layer drives a `Backend` with commands (open/close/send/settle) from user threads;
the backend reports what happened through `BackendEvents`, from whatever thread it owns. The
backend never calls user code: every report is queued for the agent's dispatcher.

One `Backend` instance serves one `Connection`. Sessions, links and transfers are passed as the
contract's handles; a backend may keep its own per-handle state in ``handle.backend_state``.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bridge.contract.message import Message
    from bridge.settings import Settings


class Outcome(enum.Enum):
    """How a received delivery was settled."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RELEASED = "released"


class SessionHandle(Protocol):
    id: int
    backend_state: Any


class LinkHandle(Protocol):
    id: int
    path: str
    role: str  # "sender" or "receiver"
    session: SessionHandle
    backend_state: Any


class TransferHandle(Protocol):
    id: int
    link: LinkHandle
    message: Message


@runtime_checkable
class BackendEvents(Protocol):
    """What a backend reports. Every method is thread-safe and returns at once."""

    def connection_opened(self) -> None: ...
    def connection_error(self, detail: str) -> None: ...
    def connection_closed(self) -> None: ...

    def session_opened(self, session: SessionHandle) -> None: ...
    def session_error(self, session: SessionHandle, detail: str) -> None: ...
    def session_closed(self, session: SessionHandle) -> None: ...

    def link_opened(self, link: LinkHandle) -> None: ...
    def link_error(self, link: LinkHandle, detail: str) -> None: ...
    def link_closed(self, link: LinkHandle) -> None: ...

    def transfer_settled(self, transfer: TransferHandle) -> None:
        """The far end confirmed the transfer (AMQP: accepted; MQTT QoS 1: PUBACK)."""

    def transfer_failed(self, transfer: TransferHandle, detail: str) -> None:
        """The transfer cannot complete; reported to the user as ``SENDER_ERROR``."""

    def delivery(self, link: LinkHandle, message: Message, token: Any) -> None:
        """A message arrived on a receiver; *token* comes back in `Backend.settle`."""


@runtime_checkable
class Backend(Protocol):
    """Commands from the contract. None of them may block on the network."""

    def open(self) -> None: ...
    def close(self) -> None: ...
    def wait_closed(self, timeout: float) -> bool: ...

    def open_session(self, session: SessionHandle) -> None: ...
    def close_session(self, session: SessionHandle) -> None: ...

    def open_link(self, link: LinkHandle) -> None: ...
    def close_link(self, link: LinkHandle) -> None: ...

    def send(self, transfer: TransferHandle) -> None: ...
    def cancel(self, transfer: TransferHandle) -> None: ...
    def settle(self, link: LinkHandle, token: Any, outcome: Outcome) -> None: ...


@dataclass(frozen=True, slots=True)
class BackendContext:
    """Everything a backend factory gets for one connection."""

    settings: Settings
    url: str
    events: BackendEvents
    agent_id: str
    connection_index: int
    # ``later(delay, fn)``: when called on the agent's dispatcher thread, runs *fn* there after
    # *delay* seconds and returns True; on any other thread it does nothing and returns False.
    # A backend uses it to hand work over in batches without ever leaving some behind (the
    # AMQP backend: settlements). None: not available (act at once).
    later: Callable[[float, Callable[[], None]], bool] | None = None


BackendFactory = Callable[[BackendContext], Backend]

ENTRY_POINT_GROUP = "amqp_mqtt_bridge.backends"

# name -> "module:attribute"; imported only when a connection on that backend is opened.
_BUILTIN: dict[str, str] = {
    "memory": "bridge.backends.memory:create",
    "mqtt": "bridge.backends.mqtt:create",
    "amqp": "bridge.backends.amqp:create",
    "iothub": "bridge.backends.iothub.backend:create",
}
_registered: dict[str, str | BackendFactory] = {}


def register_backend(name: str, factory: str | BackendFactory) -> None:
    """Register a backend by name: a factory, or a ``"module:attribute"`` string imported lazily."""
    if not name or not isinstance(name, str):
        raise ValueError("backend name must be a non-empty str")
    _registered[name] = factory


def backend_names() -> list[str]:
    """Every backend name that can be selected: built-in, registered and from entry points."""
    names = {name for name, target in _BUILTIN.items() if _module_exists(target)}
    names.update(_registered)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def load_backend(name: str) -> BackendFactory:
    """The factory for *name*; ``ValueError`` naming the known backends if there is none."""
    target: str | BackendFactory | None = _registered.get(name)
    if target is None:
        target = _BUILTIN.get(name)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                return ep.load()
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
    if callable(target):
        return target
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _module_exists(target: str) -> bool:
    module_name = target.partition(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False
