"""The backend interface: what the contract asks of a transport and what it hears back.

The contract drives a `Backend` with commands (open/close/send/settle) from user threads and the
dispatcher; the backend reports what happened through `BackendEvents`, from whatever thread it
owns. A backend never calls user code: every report is queued for the agent's dispatcher.

Reports are queued *quietly*: they do not wake a sleeping dispatcher by themselves. A backend
calls `BackendContext.wake` once it has reported a batch - before its network thread blocks,
and at the end of a command that reported something - so one socket read that turns into many
events costs one dispatcher wake-up, not one per event.

One `Backend` instance serves one `Connection`. Sessions, links and transfers are passed as the
contract's handles; a backend may keep its own per-handle state in ``handle.backend_state``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bridge.contract.message import Message


class Outcome(enum.Enum):
    """How a received delivery was settled."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    RELEASED = "released"


class SessionHandle(Protocol):
    """A session as a backend sees it (read-only, but for its own ``backend_state``)."""

    backend_state: Any

    @property
    def id(self) -> int: ...


class LinkHandle(Protocol):
    """A sender or receiver as a backend sees it."""

    backend_state: Any

    @property
    def id(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def role(self) -> str:
        """``"sender"`` or ``"receiver"``."""
        ...
    @property
    def session(self) -> SessionHandle: ...


class TransferHandle(Protocol):
    """A transfer as a backend sees it."""

    backend_state: Any

    @property
    def id(self) -> int: ...
    @property
    def link(self) -> LinkHandle: ...
    @property
    def message(self) -> Message: ...

    @property
    def cancelled(self) -> bool:
        """True once the application cancelled the transfer: a backend that has not written
        it yet must not (it reads this on its own thread; the contract sets it first)."""
        ...


@runtime_checkable
class BackendEvents(Protocol):
    """What a backend reports. Every method is thread-safe, returns at once and queues work
    for the dispatcher without waking it (see `BackendContext.wake`)."""

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


def _no_later(delay: float, fn: Callable[[], None]) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class BackendContext:
    """Everything a backend factory gets for one connection.

    The contract fills in what it owns (url, events, wake, later); the application layer that
    chose the backend adds ``config`` (the backend's own settings section) and ``settings`` (the
    whole configuration, for backends that compose others) before calling the factory.
    """

    url: str
    events: BackendEvents
    agent_id: str
    connection_index: int
    # Wake the agent's dispatcher for the reports queued so far (cheap when it is awake or
    # nothing is queued). Call it after reporting, before blocking.
    wake: Callable[[], None]
    # ``later(delay, fn)``: when called on the agent's dispatcher thread, runs *fn* there after
    # *delay* seconds and returns True; on any other thread it does nothing and returns False.
    # A backend uses it to hand work over in batches without ever leaving some behind (the
    # AMQP backend: settlements).
    later: Callable[[float, Callable[[], None]], bool] = _no_later
    close_timeout: float = 5.0
    config: Any = None
    settings: Any = None


BackendFactory = Callable[[BackendContext], Backend]

# How the contract gets a backend for a connection: the context it filled in, plus what the
# caller of `Amqp.open_with` passed (opaque here; the relay runs some connections on other
# settings). The application layer (bridge.agent) provides it.
BackendOpener = Callable[[BackendContext, Any], Backend]
