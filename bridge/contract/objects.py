"""The imp AMQP objects: Connection, Session, Sender, Receiver, Transfer, Delivery.

Each user-facing object is a thin facade over an internal *core* that the backend and the
dispatcher see. Cores never refer to facades, so dropping the last reference to a facade lets
Python collect it, and its finalizer closes the core on the broker (imp's "close by dropping the
reference"). Children's facades hold their parent's facade, so a parent stays alive while any of
its children is referenced.

State changes happen under the runtime lock; user callbacks run on the dispatcher without it.
Rules (see docs/contract.md for the full table):

- an object's events go to its own callback, else to the connection's, once;
- nothing is ever delivered inside the call that created the object;
- an object ends with exactly one terminal event: ``*_CLOSED`` (close, parent closed, peer closed)
  or ``*_ERROR`` (refused or failed); a failed *transfer* is reported as ``SENDER_ERROR`` and
  leaves the sender open;
- when a parent ends, every open child hears ``*_CLOSED`` first (deepest first), and every
  ``isopen()`` in the subtree is already ``False`` at that point.
"""

from __future__ import annotations

import enum
import logging
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from bridge import events as ev
from bridge.contract.backend import Backend, BackendContext, Outcome
from bridge.contract.message import Message
from bridge.contract.outbox import OutboxFull
from bridge.contract.runtime import Coalescer, Runtime
from bridge.errors import ClosedError

log = logging.getLogger("bridge.contract")


class NodeState(enum.IntEnum):
    """The state of a connection, session, sender or receiver (``isopen()`` is ``OPEN``)."""

    OPENING = 0  # created; its *_OPEN event has not been delivered yet
    OPEN = 1
    CLOSED = 2  # closed, failed or never opened: never reopened


class TransferState(enum.IntEnum):
    """The state of one transfer (sent at most once)."""

    NEW = 0  # created; sendasync not called yet
    QUEUED = 1  # waiting for its sender to open (or for a window slot)
    SENT = 2  # handed to the backend
    DONE = 3  # confirmed by the far end
    FAILED = 4
    CANCELLED = 5


# module-level names for the hot paths (a global lookup instead of an attribute one)
OPENING, OPEN, CLOSED = NodeState

EventCallback = Callable[[str, str | None], Any]
MessageCallback = Callable[[list["Delivery"]], Any]

_EVENTS = {
    "connection": (ev.CONNECTION_OPEN, ev.CONNECTION_CLOSED, ev.CONNECTION_ERROR),
    "session": (ev.SESSION_OPEN, ev.SESSION_CLOSED, ev.SESSION_ERROR),
    "sender": (ev.SENDER_OPEN, ev.SENDER_CLOSED, ev.SENDER_ERROR),
    "receiver": (ev.RECEIVER_OPEN, ev.RECEIVER_CLOSED, ev.RECEIVER_ERROR),
}


def _check_callback(value: object, argument: str, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not callable(value):
        raise TypeError(f"{argument} must be callable{'' if required else ' or None'}, "
                        f"got {type(value).__name__}")


def _check_path(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"path must be str, got {type(value).__name__}")
    if not value:
        raise ValueError("path must not be empty")
    return value


# --------------------------------------------------------------------------------------------
# Cores
# --------------------------------------------------------------------------------------------


class _Node:
    """Internal state of a connection, session or link."""

    __slots__ = ("__weakref__", "backend_state", "callback", "children", "conn", "id", "kind",
                 "label", "parent", "requested", "rt", "state")

    def __init__(self, rt: Runtime, kind: str, callback: EventCallback | None,
                 parent: _Node | None, label: str) -> None:
        self.rt = rt
        self.id = rt.next_id()
        self.kind = kind
        self.callback = callback
        self.parent = parent
        self.conn: ConnectionCore = parent.conn if parent is not None else self  # type: ignore[assignment]
        self.children: dict[int, _Node] = {}
        self.state = OPENING
        self.requested = False  # has the backend been asked to open it?
        self.label = label
        self.backend_state: Any = None

    def __repr__(self) -> str:
        return f"<{self.label} {self.state.name.lower()}>"

    # -- subtree helpers (call with the lock held) ---------------------------------------------
    def _close_subtree(self) -> list[_Node]:
        """Mark this node and every live descendant closed; return them deepest first."""
        ended: list[_Node] = []
        for child in list(self.children.values()):
            ended.extend(child._close_subtree())
        if self.state != CLOSED:
            self.state = CLOSED
            self.rt.limits.give_back(self.kind)
            self._on_closed()
            ended.append(self)
        if self.parent is not None:
            self.parent.children.pop(self.id, None)
        return ended

    def _on_closed(self) -> None:
        """Hook: drop queued work when the node closes."""

    def _emit(self, event: str, detail: str | None) -> None:
        """Deliver one lifecycle event (dispatcher thread, lock not held)."""
        if detail is not None:  # *_ERROR (the only events with a detail)
            self.rt.errors += 1
        own = self.callback
        conn_cb = self.conn.callback
        target = own if own is not None else conn_cb
        if target is not None:
            self.rt.call_user(target, event, detail)
        if own is not None and conn_cb is not None and self.rt.also_notify_connection \
                and self is not self.conn:
            self.rt.call_user(conn_cb, event, detail)

    def _post_closed_events(self, ended: list[_Node], last_event: str,
                            detail: str | None) -> None:
        """Queue ``*_CLOSED`` for every descendant, then *last_event* for this node."""
        def deliver() -> None:
            for node in ended:
                if node is self:
                    continue
                node._emit(_EVENTS[node.kind][1], None)
            if self in ended:
                self._emit(last_event, detail)
        self.rt.post(deliver)

    def _end(self, terminal_index: int, detail: str | None, *, tell_backend: bool) -> None:
        """End this node (and subtree) from any thread; events are queued, not run."""
        with self.rt.lock:
            if self.state == CLOSED:
                return
            was_requested = self.requested
            ended = self._close_subtree()
            if tell_backend and was_requested:
                self._backend_close()
        self._post_closed_events(ended, _EVENTS[self.kind][terminal_index], detail)

    def _backend_close(self) -> None:
        raise NotImplementedError

    def close_silently(self) -> None:
        """Close without events: the facade was garbage-collected, nobody is listening."""
        with self.rt.lock:
            if self.state == CLOSED:
                return
            was_requested = self.requested
            self._close_subtree()
            if was_requested:
                self._backend_close()

    # -- backend reports, run on the dispatcher -------------------------------------------------
    def _handle_opened(self) -> None:
        with self.rt.lock:
            if self.state != OPENING:
                return
            self.state = OPEN
            for child in list(self.children.values()):
                if child.state == OPENING and not child.requested:
                    child._request_open()
            self._after_open()
        self._emit(_EVENTS[self.kind][0], None)

    def _after_open(self) -> None:
        """Hook (lock held): work to start once open."""

    def _handle_error(self, detail: str) -> None:
        self._end(2, detail or _EVENTS[self.kind][2], tell_backend=False)

    def _handle_closed(self) -> None:
        self._end(1, None, tell_backend=False)

    def _request_open(self) -> None:
        raise NotImplementedError


class ConnectionCore(_Node):
    """A connection's state; also the `BackendEvents` sink its backend reports to.

    Reports are queued for the dispatcher without waking it (the backend calls its context's
    ``wake`` once it has reported a batch).
    """

    __slots__ = ("_settled", "backend", "url")

    def __init__(self, rt: Runtime, url: str, callback: EventCallback,
                 variant: Any = None) -> None:
        super().__init__(rt, "connection", callback, None, f"Connection({url!r})")
        self.url = url
        self._settled = Coalescer(rt.post_quiet, self._handle_settled)
        # *variant* lets a service (the relay) run connections of one agent on other settings;
        # the opener (the application layer) knows what it means.
        context = BackendContext(url=url, events=self, agent_id=rt.agent_id,
                                 connection_index=self.id, wake=rt.wake, later=self._later,
                                 close_timeout=rt.options.close_timeout)
        self.backend: Backend = rt.open_backend(context, variant)

    def _later(self, delay: float, fn: Callable[[], None]) -> bool:
        dispatch = self.rt.dispatch
        if not dispatch.on_dispatcher_thread():
            return False
        dispatch.call_later(delay, fn, before_leaving=True)
        return True

    def _request_open(self) -> None:
        self.requested = True
        self.backend.open()

    def _backend_close(self) -> None:
        self.backend.close()

    def _on_closed(self) -> None:
        self.rt.connections.pop(self.id, None)

    # -- BackendEvents (any thread) -------------------------------------------------------------
    def connection_opened(self) -> None:
        self.rt.post_quiet(self._handle_opened)

    def connection_error(self, detail: str) -> None:
        self.rt.post_quiet(self._handle_error, detail)
        # the backend is done with this connection; let it release its threads and sockets
        self.rt.post_quiet(self.backend.close)

    def connection_closed(self) -> None:
        self.rt.post_quiet(self._handle_closed)
        self.rt.post_quiet(self.backend.close)

    def session_opened(self, session: Any) -> None:
        self.rt.post_quiet(session._handle_opened)

    def session_error(self, session: Any, detail: str) -> None:
        self.rt.post_quiet(session._handle_error, detail)

    def session_closed(self, session: Any) -> None:
        self.rt.post_quiet(session._handle_closed)

    def link_opened(self, link: Any) -> None:
        self.rt.post_quiet(link._handle_opened)

    def link_error(self, link: Any, detail: str) -> None:
        self.rt.post_quiet(link._handle_error, detail)

    def link_closed(self, link: Any) -> None:
        self.rt.post_quiet(link._handle_closed)

    def transfer_settled(self, transfer: Any) -> None:
        self._settled.add(transfer)

    def transfer_failed(self, transfer: Any, detail: str) -> None:
        self.rt.post_quiet(transfer._handle_failed, detail)

    def delivery(self, link: Any, message: Message, token: Any) -> None:
        link.incoming.add((message, token))

    def _handle_settled(self, transfers: list[Transfer]) -> None:
        for transfer in transfers:
            transfer._handle_settled()


class SessionCore(_Node):
    __slots__ = ()

    def __init__(self, conn: ConnectionCore, callback: EventCallback | None) -> None:
        super().__init__(conn.rt, "session", callback, conn, "Session")
        self.label = f"Session#{self.id}"

    def _request_open(self) -> None:
        self.requested = True
        self.conn.backend.open_session(self)

    def _backend_close(self) -> None:
        if self.conn.state != CLOSED:
            self.conn.backend.close_session(self)


class LinkCore(_Node):
    """A sender or receiver."""

    __slots__ = ("in_backend", "incoming", "message_callback", "outbox_rows", "path", "queued",
                 "role", "session", "warned_no_callback")

    def __init__(self, session: SessionCore, role: str, path: str,
                 callback: EventCallback | None,
                 message_callback: MessageCallback | None = None) -> None:
        title = "Sender" if role == "sender" else "Receiver"
        super().__init__(session.rt, role, callback, session, f"{title}({path!r})")
        self.role = role
        self.path = path
        self.session = session
        self.message_callback = message_callback
        self.queued: deque[Transfer] = deque()  # transfers started before the sender opened
        self.in_backend = 0  # transfers handed to the backend and not yet settled or failed
        self.outbox_rows: set[int] = set()  # outbox rows of this sender's live transfers
        self.incoming = Coalescer(self.rt.post_quiet, self._handle_deliveries)
        self.warned_no_callback = False

    def _request_open(self) -> None:
        self.requested = True
        self.conn.backend.open_link(self)

    def _backend_close(self) -> None:
        if self.conn.state != CLOSED:
            self.conn.backend.close_link(self)

    def _after_open(self) -> None:
        outbox = self.rt.outbox
        if outbox is not None and self.role == "sender":
            # Rows left by a lost connection or a previous process go first, oldest first.
            replay = []
            for row_id, message in outbox.pending(self.path, self.rt.outbox_live):
                transfer = Transfer(self, message)
                transfer.state = Transfer.QUEUED
                transfer.outbox_id = row_id
                self.rt.outbox_live.add(row_id)
                self.outbox_rows.add(row_id)
                replay.append(transfer)
            if replay:
                log.info("%s: resending %d message(s) from the outbox", self.label, len(replay))
                self.queued.extendleft(reversed(replay))
        self._pump()

    def _pump(self) -> None:
        """Hand queued transfers to the backend (lock held), at most the outbox window."""
        backend = self.conn.backend
        limit = self.rt.outbox_window
        queued = self.queued
        while queued and self.in_backend < limit:
            transfer = queued.popleft()
            transfer.state = Transfer.SENT
            self.in_backend += 1
            backend.send(transfer)

    def _on_closed(self) -> None:
        for transfer in self.queued:
            transfer.state = Transfer.FAILED
        self.queued.clear()
        if self.outbox_rows:
            # their rows stay stored: the next sender on this path resends them
            self.rt.outbox_live.difference_update(self.outbox_rows)
            self.outbox_rows.clear()

    def _handle_deliveries(self, items: list[tuple[Message, Any]]) -> None:
        backend = self.conn.backend
        if self.state == CLOSED:
            # Nobody will settle these: hand them back so the broker can redeliver elsewhere.
            if self.conn.state != CLOSED:
                for _, token in items:
                    backend.settle(self, token, Outcome.RELEASED)
            return
        self.rt.received += len(items)
        callback = self.message_callback
        if callback is None:
            if not self.warned_no_callback:
                self.warned_no_callback = True
                log.warning("%s has no messageCallback; its deliveries are accepted unread",
                            self.label)
            for _, token in items:
                backend.settle(self, token, Outcome.ACCEPTED)
            return
        deliveries = [Delivery(self, message, token) for message, token in items]
        self.rt.call_user(callback, deliveries)
        # Our references go here; a delivery the application did not keep auto-accepts now.


# --------------------------------------------------------------------------------------------
# Facades
# --------------------------------------------------------------------------------------------


class _Facade:
    __slots__ = ("__weakref__", "_core")

    _core: _Node

    def isopen(self) -> bool:
        """True once the ``*_OPEN`` event has been delivered, False after close or failure."""
        return self._core.state == OPEN

    def close(self) -> None:
        """Close now (``isopen()`` is False on return); ``*_CLOSED`` events follow, children
        first. Closing twice is a no-op. A closed object is never reopened."""
        self._core._end(1, None, tell_backend=True)

    def _require_usable(self, action: str) -> None:
        if self._core.state == CLOSED:
            raise ClosedError(f"{self._core.label} is closed; cannot {action}")

    def __repr__(self) -> str:
        return repr(self._core)


def _finalize(facade: _Facade, core: _Node) -> None:
    # Runs when the facade is collected: close on the dispatcher, never inside gc.
    finalizer = weakref.finalize(facade, core.rt.post, core.close_silently)
    finalizer.atexit = False


class Connection(_Facade):
    """``amqpconnection``: returned by ``amqp.openconnection``."""

    __slots__ = ()
    _core: ConnectionCore

    def __init__(self, core: ConnectionCore) -> None:
        self._core = core
        _finalize(self, core)

    def opensession(self, callback: EventCallback | None = None) -> Session:
        """Start a session; it is not open on return (``SESSION_OPEN`` / ``SESSION_ERROR``)."""
        _check_callback(callback, "callback")
        core = self._core
        rt = core.rt
        with rt.lock:
            self._require_usable("open a session")
            rt.limits.take("session", "opensession")
            session = SessionCore(core, callback)
            core.children[session.id] = session
            if core.state == OPEN:
                session._request_open()
        return Session(self, session)


class Session(_Facade):
    """``amqpsession``: returned by ``Connection.opensession``."""

    __slots__ = ("_connection",)
    _core: SessionCore

    def __init__(self, connection: Connection, core: SessionCore) -> None:
        self._connection = connection  # keeps the connection alive while the session is used
        self._core = core
        _finalize(self, core)

    def _open_link(self, role: str, path: str, callback: EventCallback | None,
                   message_callback: MessageCallback | None, method: str) -> LinkCore:
        core = self._core
        rt = core.rt
        validate = getattr(core.conn.backend, "validate_path", None)
        if validate is not None:
            validate(role, path)
        with rt.lock:
            self._require_usable(f"open a {role}")
            rt.limits.take("link", method)
            link = LinkCore(core, role, path, callback, message_callback)
            core.children[link.id] = link
            if core.state == OPEN:
                link._request_open()
        return link

    def opensender(self, path: str, callback: EventCallback | None = None) -> Sender:
        """Open a sending link to *path* (``SENDER_OPEN`` / ``SENDER_ERROR`` follow)."""
        _check_path(path)
        _check_callback(callback, "callback")
        return Sender(self, self._open_link("sender", path, callback, None, "opensender"))

    def openreceiver(self, path: str, eventCallback: EventCallback | None = None,
                     messageCallback: MessageCallback | None = None) -> Receiver:
        """Open a receiving link on *path*; messages arrive only on *messageCallback*."""
        _check_path(path)
        _check_callback(eventCallback, "eventCallback")
        _check_callback(messageCallback, "messageCallback")
        return Receiver(self, self._open_link("receiver", path, eventCallback, messageCallback,
                                              "openreceiver"))


class _LinkFacade(_Facade):
    __slots__ = ("_session",)
    _core: LinkCore

    def __init__(self, session: Session, core: LinkCore) -> None:
        self._session = session  # keeps the session (and connection) alive while used
        self._core = core
        _finalize(self, core)

    @property
    def path(self) -> str:
        return self._core.path


class Sender(_LinkFacade):
    """``amqpsender``: returned by ``Session.opensender``."""

    __slots__ = ()

    def createtransfer(self, message: Message) -> Transfer:
        """Wrap *message* for one send; nothing goes out until ``sendasync``."""
        if not isinstance(message, Message):
            raise TypeError(f"message must be a Message from amqp.createmessage or "
                            f"amqp.createbinarymessage, got {type(message).__name__}")
        self._require_usable("create a transfer")
        return Transfer(self._core, message)


class Receiver(_LinkFacade):
    """``amqpreceiver``: returned by ``Session.openreceiver``."""

    __slots__ = ()


class Transfer:
    """``amqptransfer``: one message, sent at most once.

    Dropping a transfer after ``sendasync`` does not cancel it (the sender keeps it until it
    completes); only ``cancel()`` does.
    """

    NEW, QUEUED, SENT, DONE, FAILED, CANCELLED = TransferState
    __slots__ = ("backend_state", "callback", "id", "link", "message", "outbox_id", "state")

    def __init__(self, link: LinkCore, message: Message) -> None:
        self.link = link
        self.message = message
        self.callback: Callable[[], Any] | None = None
        self.state = Transfer.NEW
        self.id = id(self)
        self.backend_state: Any = None
        self.outbox_id: int | None = None

    @property
    def cancelled(self) -> bool:
        """Cancelled by the application (read by backends on their own threads)."""
        return self.state == TransferState.CANCELLED

    def sendasync(self, callback: Callable[[], Any] | None = None) -> None:
        """Start the send. *callback()* runs once the far end confirmed the message."""
        _check_callback(callback, "callback")
        link = self.link
        with link.rt.lock:
            if self.state != Transfer.NEW:
                raise ClosedError("this transfer was already sent or cancelled; "
                                  "create a new one with createtransfer")
            if link.state == CLOSED:
                raise ClosedError(f"{link.label} is closed; cannot send")
            self.callback = callback
            if link.rt.outbox is not None and not self._store():
                return
            if link.state == OPEN and link.in_backend < link.rt.outbox_window \
                    and not link.queued:
                self.state = Transfer.SENT
                link.in_backend += 1
                link.conn.backend.send(self)
            else:
                self.state = Transfer.QUEUED
                link.queued.append(self)

    def _store(self) -> bool:
        """Lock held: put the message in the durable outbox; False (and SENDER_ERROR) if full."""
        link = self.link
        rt = link.rt
        assert rt.outbox is not None
        if rt.outbox_tag:
            message = self.message
            self.message = Message(message._body, {**message._properties,
                                                   rt.outbox_tag: uuid.uuid4().hex},
                                   message._kind)
        try:
            self.outbox_id = rt.outbox.put(link.path, self.message)
        except OutboxFull as exc:
            self.state = Transfer.FAILED
            rt.post(link._emit, ev.SENDER_ERROR, str(exc))
            return False
        rt.outbox_live.add(self.outbox_id)
        link.outbox_rows.add(self.outbox_id)
        return True

    def _forget(self) -> None:
        """Lock held: the transfer is finished; drop its outbox row and window slot."""
        link = self.link
        row = self.outbox_id
        if row is not None:
            self.outbox_id = None
            link.rt.outbox_live.discard(row)
            link.outbox_rows.discard(row)
            if link.rt.outbox is not None:
                link.rt.outbox.delete(row)

    def cancel(self) -> None:
        """Abandon the transfer if it has not completed; its callback will not run."""
        link = self.link
        with link.rt.lock:
            state = self.state
            if state in (Transfer.DONE, Transfer.FAILED, Transfer.CANCELLED):
                return
            self.state = Transfer.CANCELLED
            self._forget()
            if state == Transfer.QUEUED:
                link.queued.remove(self)
            elif state == Transfer.SENT:
                link.in_backend -= 1
                if link.conn.state != CLOSED:
                    link.conn.backend.cancel(self)

    # dispatcher thread
    def _handle_settled(self) -> None:
        link = self.link
        with link.rt.lock:  # cancel() on a user thread changes the same state and counter
            if self.state != Transfer.SENT:
                return
            self.state = Transfer.DONE
            self._left_backend()
            link.rt.confirmed += 1
        callback = self.callback
        if callback is not None:
            link.rt.call_user(callback)

    def _handle_failed(self, detail: str) -> None:
        link = self.link
        with link.rt.lock:
            if self.state != Transfer.SENT:
                return
            self.state = Transfer.FAILED
            self._left_backend()  # reported as SENDER_ERROR: its outbox row is not retried
        if link.state != CLOSED:
            link._emit(ev.SENDER_ERROR, detail or "send failed")

    def _left_backend(self) -> None:
        """Lock held. The backend settled or failed this transfer: free its window slot and
        outbox row, and hand the next queued transfer over."""
        link = self.link
        link.in_backend -= 1
        if link.rt.outbox is not None:
            self._forget()
            if link.state == OPEN:
                link._pump()

    def __repr__(self) -> str:
        return f"<Transfer on {self.link.label} {self.state.name.lower()}>"


class Delivery:
    """``amqpdelivery``: a received message awaiting settlement.

    A delivery nobody settled is accepted when the application no longer holds it (when the
    object is collected); while it is held it can be settled later. Settling twice is a no-op.
    """

    __slots__ = ("_link", "_message", "_settled", "_token")

    def __init__(self, link: LinkCore, message: Message, token: Any) -> None:
        self._link = link
        self._message = message
        self._token = token
        self._settled = False

    def message(self) -> Message:
        """The received message (still available after settlement)."""
        return self._message

    def accept(self) -> None:
        """Settle with the *accepted* outcome."""
        self._settle(Outcome.ACCEPTED)

    def reject(self) -> None:
        """Settle with the *rejected* outcome."""
        self._settle(Outcome.REJECTED)

    def release(self) -> None:
        """Settle with the *released* outcome (the message may be redelivered)."""
        self._settle(Outcome.RELEASED)

    @property
    def settled(self) -> bool:
        return self._settled

    def _settle(self, outcome: Outcome) -> None:
        if self._settled:
            return
        self._settled = True
        link = self._link
        if link.conn.state != CLOSED:
            link.conn.backend.settle(link, self._token, outcome)

    def __del__(self) -> None:
        if not self._settled:
            try:
                self._settle(Outcome.ACCEPTED)
            except Exception:  # never raise from a finalizer
                log.exception("auto-accept of a delivery failed")

    def __repr__(self) -> str:
        return f"<Delivery on {self._link.label} {'settled' if self._settled else 'unsettled'}>"
