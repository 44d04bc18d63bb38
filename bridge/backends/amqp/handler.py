"""The reactor side of one AMQP connection: proton events in, `BackendEvents` reports out.

Everything here runs on the connection's reactor thread (see `reactor.py`); commands from other
threads arrive through the command queue as calls to the ``cmd_*`` methods. The mapping is 1:1:
one proton connection, session and link per contract object, and every report comes from a real
frame (open/begin/attach, close/end/detach with their error conditions, dispositions, flow).

Rules kept here:

- nothing is reported for an object the contract closed itself (``local_closed``);
- a peer ``close``/``end``/``detach`` carrying an error -> ``*_error("<condition>: <text>")``,
  without one -> ``*_closed`` (a link the peer refused without saying why -> ``link_error``);
- a session ended with an error while some of its links were still attaching: those links'
  attaches were refused, so each gets ``link_error`` with the session's condition first
  (RabbitMQ answers a bad attach this way);
- transfers wait for link credit (``on_link_flow``); ``transfer_settled`` on *accepted*,
  ``transfer_failed`` naming the outcome on rejected/released/modified;
- a receiver holds ``prefetch`` credit and gets one back per settled delivery, so credit is the
  number of deliveries the application may hold unsettled.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proton import Condition, Delivery, Disposition, Endpoint, Handler, SSLDomain, Terminus
from proton import Message as ProtonMessage

from bridge.backends.amqp import codec
from bridge.backends.amqp.endpoint import plaintext_credentials_problem
from bridge.backends.amqp.reactor import ProtonTimerTask
from bridge.contract.backend import Outcome
from bridge.contract.message import Message
from bridge.loop.pacing import connect_pacer

if TYPE_CHECKING:
    from proton import Connection, Event, Link, Session

    from bridge.backends.amqp.endpoint import AMQPConnectOptions
    from bridge.backends.amqp.reactor import ReactorSlot
    from bridge.contract.backend import BackendEvents, LinkHandle, SessionHandle, TransferHandle

log = logging.getLogger("bridge.backends.amqp")

_OUTCOMES = {Outcome.ACCEPTED: Delivery.ACCEPTED, Outcome.REJECTED: Delivery.REJECTED,
             Outcome.RELEASED: Delivery.RELEASED}
CONNECTING, OPEN, ENDED = range(3)
_MALFORMED_LOGGED = 10  # malformed deliveries logged one by one per connection
CBS_NODE = "$cbs"


class _SessionState:
    __slots__ = ("handle", "links", "local_closed", "opened", "session")

    def __init__(self, handle: SessionHandle, session: Session) -> None:
        self.handle = handle
        self.session = session
        self.links: dict[int, _LinkState] = {}
        self.opened = False
        self.local_closed = False


class _LinkState:
    __slots__ = ("ended", "handle", "inflight", "link", "local_closed", "opened", "pending",
                 "session", "tags", "tokens", "unsettled")

    def __init__(self, handle: LinkHandle, link: Link, session: _SessionState) -> None:
        self.handle = handle
        self.link = link
        self.session = session
        self.opened = False
        self.ended = False
        self.local_closed = False
        # sender: transfers waiting for credit, and those on the wire awaiting an outcome
        self.pending: deque[TransferHandle] = deque()
        self.inflight: dict[int, Delivery] = {}
        self.tags = itertools.count(1)
        # receiver: token -> proton delivery awaiting the application's settlement
        self.unsettled: dict[int, Delivery] = {}
        self.tokens = itertools.count(1)

    @property
    def is_sender(self) -> bool:
        return self.handle.role == "sender"

    @property
    def usable(self) -> bool:
        return not (self.ended or self.local_closed)


class ConnectionHandler(Handler):
    """The proton handler of one connection (connection-scoped, on a shared reactor)."""

    def __init__(self, options: AMQPConnectOptions, events: BackendEvents,
                 close_timeout: float, wake: Callable[[], None] | None = None) -> None:
        self.options = options
        # every report also asks the reactor to wake this agent's dispatcher before it waits
        self.events: BackendEvents = _Reporting(events, self._reported)
        # the dispatcher, for what this reactor reported (None: a handler driven by a test)
        self.wake: Callable[[], None] = wake or (lambda: None)
        self.close_timeout = close_timeout
        self.reactor: ReactorSlot | None = None  # set by the backend before it starts
        self.conn: Connection | None = None
        self.state = CONNECTING
        self.local_closed = False
        self.finished = False
        self.sessions: dict[int, _SessionState] = {}
        self.links: dict[int, _LinkState] = {}
        self._closing: dict[int, _LinkState] = {}  # receivers we closed holding deliveries
        self.malformed = 0  # received messages that were undecodable or needed mapping/dropping
        self._timers: list[Any] = []

    def _reported(self) -> None:
        slot = self.reactor
        if slot is not None:
            slot.reactor.reported(id(self), self.wake)
        else:
            self.wake()

    # -- connection ---------------------------------------------------------------------------
    def start(self) -> None:
        """(Reactor thread.) Connect (the first command of this connection's slot), in the
        slot the process's connect pacer gives it (`bridge.loop.pacing`)."""
        assert self.reactor is not None
        if self.local_closed:  # closed before the thread got going
            self._finish()
            return
        problem = plaintext_credentials_problem(self.options)
        if problem is not None:  # decided before connect(): no socket is ever opened
            self._fail_connection(problem)
            self._finish()
            return
        delay = connect_pacer().delay() if self._opens_socket() else 0.0
        if delay > 0:
            self._schedule(delay, self._connect)
        else:
            self._connect()

    def _opens_socket(self) -> bool:
        """Whether `_connect` opens a socket (paced); a multiplexed member may not."""
        return True

    def _connect(self) -> None:
        assert self.reactor is not None
        opts = self.options
        if self.local_closed:  # closed while it waited for its slot
            self._finish()
            return
        log.info("AMQP connecting to %s", opts.describe())
        host = opts.endpoint.host
        try:
            # proton resolves the name inside its IO handler, where a failure ends the reactor
            # thread with a traceback; resolved here first, it is a connection error like any
            # other unreachable broker.
            socket.getaddrinfo(host, opts.endpoint.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._fail_connection(f"amqp:connection:forced: cannot resolve the AMQP broker's "
                                  f"host name {host!r} ({opts.address}): {reason}")
            self._finish()
            return
        kwargs: dict[str, Any] = {
            "sasl_enabled": True, "allowed_mechs": opts.mechanisms,
            "allow_insecure_mechs": opts.allow_insecure_plain,
            "container_id": opts.container_id,
        }
        if opts.user:
            kwargs.update(user=opts.user, password=opts.password or "")
        if opts.virtual_host:
            kwargs["virtual_host"] = opts.virtual_host
        try:
            ssl_domain = self._ssl_domain()
            self.conn = self.reactor.container.connect(
                url=opts.address, handler=self, reconnect=False,
                heartbeat=opts.idle_timeout or None, ssl_domain=ssl_domain, **kwargs)
        except Exception as exc:  # bad CA/cert file, SSL unavailable ...
            self._fail_connection(f"amqp:invalid-field: cannot start the connection to "
                                  f"{opts.address}: {exc}")
            self._finish()
            return
        self._schedule(opts.connect_timeout, self._on_connect_timeout)

    def _ssl_domain(self) -> SSLDomain | None:
        tls = self.options.tls
        if tls is None:
            return None
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        if tls.ca_file is not None:
            domain.set_trusted_ca_db(str(tls.ca_file))
        if tls.verify:
            domain.set_peer_authentication(
                SSLDomain.VERIFY_PEER_NAME, str(tls.ca_file) if tls.ca_file else None)
        else:
            log.warning("AMQP TLS certificate verification is OFF for %s (amqp.verify = false): "
                        "the broker's identity is not checked", self.options.address)
            domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
        if tls.cert_file is not None:
            domain.set_credentials(str(tls.cert_file),
                                   str(tls.key_file) if tls.key_file else str(tls.cert_file),
                                   tls.key_password)
        return domain

    def _schedule(self, delay: float, fn: Any) -> None:
        assert self.reactor is not None
        self._timers.append(self.reactor.container.schedule(delay, ProtonTimerTask(fn)))

    def _on_connect_timeout(self) -> None:
        if self.state == CONNECTING and not self.local_closed:
            self._fail_connection(
                f"amqp:resource-limit-exceeded: no AMQP open from {self.options.address} "
                f"within {self.options.connect_timeout:g} s (amqp.connect_timeout)")
            self._abort_transport()

    def on_connection_remote_open(self, event: Event) -> None:
        if self.state == CONNECTING and not self.local_closed:
            self.state = OPEN
            log.info("AMQP connection open: %s", self.options.address)
            self.events.connection_opened()

    def on_connection_remote_close(self, event: Event) -> None:
        conn = event.connection
        if not self.local_closed and self.state != ENDED:
            condition = conn.remote_condition
            if condition is not None:
                self._fail_connection(codec.condition_text(condition, "amqp:connection:forced"))
            else:
                self.state = ENDED
                self.events.connection_closed()
        if conn.state & Endpoint.LOCAL_ACTIVE:
            conn.close()  # answer the peer's close

    def on_transport_error(self, event: Event) -> None:
        if not self.local_closed and self.state != ENDED:
            self._fail_connection(codec.condition_text(
                event.transport.condition, "amqp:connection:framing-error: transport error"))

    def on_transport_closed(self, event: Event) -> None:
        if not self.local_closed and self.state != ENDED:
            self._fail_connection("amqp:connection:framing-error: the connection was lost")
        self._finish()

    @property
    def opened(self) -> bool:
        """The peer's open frame came and the connection has not ended."""
        return self.state == OPEN

    @property
    def ended(self) -> bool:
        """Closed by the contract or ended by the peer: nothing more is reported."""
        return self.local_closed or self.state == ENDED

    def _fail_connection(self, detail: str) -> None:
        self.state = ENDED
        log.warning("AMQP connection to %s failed: %s", self.options.address, detail)
        self.events.connection_error(detail)

    def _abort_transport(self) -> None:
        """Drop the socket without waiting for the peer (time-outs)."""
        conn = self.conn
        transport = conn.transport if conn is not None else None
        if transport is None:
            self._finish()
            return
        transport.close_tail()
        transport.close_head()

    def _session_state(self, session: Session | None) -> _SessionState | None:
        return self.sessions.get(getattr(session, "bridge_id", None))  # type: ignore[arg-type]

    def _link_state(self, link: Link | None) -> _LinkState | None:
        return self.links.get(getattr(link, "bridge_id", None))  # type: ignore[arg-type]

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.sessions.clear()
        self.links.clear()
        self._closing.clear()
        if self.reactor is not None:
            self.reactor.finish()

    def cmd_close(self) -> None:
        """The contract closed the connection (or is done with it after an error)."""
        if self.local_closed:
            return
        self.local_closed = True
        conn = self.conn
        if conn is None or self.finished:
            self._finish()
            return
        if conn.state & Endpoint.LOCAL_ACTIVE:
            conn.close()
        if self.state == CONNECTING:
            self._abort_transport()  # nothing to say goodbye to yet
        else:
            self._schedule(self.close_timeout, self._abort_transport)

    # -- sessions -----------------------------------------------------------------------------
    def cmd_open_session(self, handle: SessionHandle) -> None:
        if self.conn is None or self.local_closed or self.state != OPEN:
            return  # the connection is ending; the contract closes the session with it
        session = self.conn.session()
        state = _SessionState(handle, session)
        session.bridge_id = handle.id  # an id, not the state: no C <-> Python cycle
        self.sessions[handle.id] = state
        session.open()

    def cmd_close_session(self, handle: SessionHandle) -> None:
        state = self.sessions.get(handle.id)
        if state is None or state.local_closed:
            return
        state.local_closed = True
        for link_state in state.links.values():
            link_state.local_closed = True
            self.links.pop(link_state.handle.id, None)
        state.links.clear()
        session = state.session
        if session.state & Endpoint.REMOTE_UNINIT:
            # proton-c fails the whole connection ("begin reply to unknown channel") when the
            # peer's begin arrives after our end: end it once the begin is in
            return
        self.sessions.pop(handle.id, None)
        if session.state & Endpoint.LOCAL_ACTIVE:
            session.close()

    def on_session_remote_open(self, event: Event) -> None:
        state = self._session_state(event.session)
        if state is None:
            return
        if state.local_closed:  # closed by the contract while its begin was on the way
            self.sessions.pop(state.handle.id, None)
            event.session.close()
        elif not state.opened:
            state.opened = True
            self.events.session_opened(state.handle)

    def on_session_remote_close(self, event: Event) -> None:
        session = event.session
        state = self._session_state(session)
        if state is not None:
            self.sessions.pop(state.handle.id, None)
            if not state.local_closed:
                state.local_closed = True
                self._report_session_end(state, session.remote_condition)
        if session.state & Endpoint.LOCAL_ACTIVE:
            session.close()

    def _report_session_end(self, state: _SessionState, condition: Condition | None) -> None:
        detail = codec.condition_text(condition, "")
        for link_state in state.links.values():
            self.links.pop(link_state.handle.id, None)
            if detail and not link_state.opened and not link_state.ended:
                # its attach was never answered: this end is the refusal (RabbitMQ does this)
                self.events.link_error(link_state.handle, detail)
            link_state.ended = True
        state.links.clear()
        if detail:
            self.events.session_error(state.handle, detail)
        else:
            self.events.session_closed(state.handle)

    # -- links --------------------------------------------------------------------------------
    def cmd_open_link(self, handle: LinkHandle) -> None:
        session_state = self.sessions.get(handle.session.id)
        if session_state is None or session_state.local_closed:
            return  # the session is ending; the contract closes the link with it
        session = session_state.session
        name = f"{self.options.container_id}-{handle.role}-{handle.id}"
        if handle.role == "sender":
            link: Link = session.sender(name)
            terminus = link.target
        else:
            link = session.receiver(name)
            terminus = link.source
        terminus.address = handle.path  # verbatim: "$cbs", "/queue/x", "/devices/..."
        if self.options.durable:
            # RabbitMQ declares the queue durable for any durability but "none"; it refuses a
            # link whose durability differs from the existing queue's (precondition-failed).
            terminus.durability = Terminus.CONFIGURATION
        state = _LinkState(handle, link, session_state)
        link.bridge_id = handle.id
        session_state.links[handle.id] = state
        self.links[handle.id] = state
        link.open()
        if handle.role == "receiver":
            link.flow(self.options.prefetch)

    def cmd_close_link(self, handle: LinkHandle) -> None:
        state = self.links.pop(handle.id, None)
        if state is None:
            return
        state.local_closed = True
        state.session.links.pop(handle.id, None)
        state.pending.clear()
        if state.link.state & Endpoint.LOCAL_ACTIVE:
            state.link.close()
        if not state.is_sender:
            # What the application still holds (and what arrives before the peer's detach)
            # is released once the peer confirmed the detach: released before it, RabbitMQ
            # hands the message straight back to this detaching link and keeps it until the
            # session ends.
            self._closing[handle.id] = state

    @staticmethod
    def _release_unsettled(state: _LinkState) -> None:
        """Hand back what the application still held when its receiver closed, so the broker
        can deliver it elsewhere now. A later accept() on such a delivery is a no-op, as on
        every closed receiver."""
        for delivery in state.unsettled.values():
            delivery.update(Delivery.RELEASED)
            delivery.settle()
        state.unsettled.clear()

    def on_link_remote_open(self, event: Event) -> None:
        link = event.link
        state = self._link_state(link)
        if state is None or not state.usable or state.opened:
            return
        # A peer refusing an attach answers with a null terminus and then detaches.
        terminus = link.remote_target if state.is_sender else link.remote_source
        if terminus.type == Terminus.UNSPECIFIED:
            return
        state.opened = True
        self.events.link_opened(state.handle)
        if state.is_sender:
            self._pump(state)

    def on_link_remote_close(self, event: Event) -> None:
        link = event.link
        closing = self._closing.pop(getattr(link, "bridge_id", None), None)  # type: ignore[arg-type]
        if closing is not None:
            self._release_unsettled(closing)
        state = self._link_state(link)
        if state is not None and state.usable:
            state.ended = True
            self.links.pop(state.handle.id, None)
            state.session.links.pop(state.handle.id, None)
            state.pending.clear()
            condition = link.remote_condition
            if condition is not None:
                self.events.link_error(state.handle, codec.condition_text(
                    condition, "amqp:link:detach-forced"))
            elif not state.opened:
                self.events.link_error(state.handle, "amqp:not-found: the peer refused to "
                                                     f"attach a link to {state.handle.path!r}")
            else:
                self.events.link_closed(state.handle)
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.close()

    on_link_remote_detach = on_link_remote_close  # a detach we cannot resume ends the link

    # -- sending ------------------------------------------------------------------------------
    def cmd_send(self, transfer: TransferHandle) -> None:
        state = self.links.get(transfer.link.id)
        if state is None or not state.usable:
            # The link (or the connection) has ended, and that end is reported by itself: the
            # transfer stays unsettled like those in flight at the end, so a durable-outbox row
            # is kept and resent by the next sender - failing it would delete the row as if the
            # broker had refused the message.
            return
        state.pending.append(transfer)
        if state.opened:
            self._pump(state)

    def cmd_cancel(self, transfer: TransferHandle) -> None:
        state = self.links.get(transfer.link.id)
        if state is None:
            return
        try:
            state.pending.remove(transfer)  # still waiting for credit: it never goes out
        except ValueError:
            delivery = state.inflight.pop(transfer.id, None)
            if delivery is not None:  # already on the wire: forget it, report nothing
                delivery.bridge_transfer = None

    def on_link_flow(self, event: Event) -> None:
        state = self._link_state(event.link)
        if state is not None and state.is_sender and state.usable and state.opened:
            self._pump(state)

    def _pump(self, state: _LinkState) -> None:
        """Send waiting transfers while the peer grants credit."""
        link = state.link
        while state.pending and link.credit > 0:
            transfer = state.pending.popleft()
            if transfer.cancelled:  # set by the contract before it told us: never written
                continue
            try:
                payload = codec.encode_message(transfer.message, durable=self.options.durable)
            except Exception as exc:
                self.events.transfer_failed(transfer, f"amqp:decode-error: the message cannot "
                                                      f"be encoded: {exc}")
                continue
            delivery = link.delivery(str(next(state.tags)))
            link.stream(payload)
            link.advance()
            delivery.bridge_transfer = transfer
            state.inflight[transfer.id] = delivery

    def _on_sender_delivery(self, state: _LinkState, delivery: Delivery) -> None:
        outcome = delivery.remote_state
        if outcome not in _TERMINAL and not delivery.settled:
            return  # no outcome yet (or a non-terminal "received" state)
        transfer = getattr(delivery, "bridge_transfer", None)
        delivery.settle()
        if transfer is None:  # cancelled, or not ours
            return
        state.inflight.pop(transfer.id, None)
        remote = delivery.remote
        if outcome == Delivery.ACCEPTED or outcome not in _TERMINAL:
            # settled without an outcome: the receiver took it (settle mode "first")
            self.events.transfer_settled(transfer)
        elif outcome == Delivery.REJECTED:
            self.events.transfer_failed(transfer, codec.outcome_text("rejected",
                                                                     remote.condition))
        elif outcome == Delivery.RELEASED:
            self.events.transfer_failed(transfer, codec.outcome_text("released"))
        else:
            self.events.transfer_failed(transfer, codec.outcome_text(
                "modified", failed=remote.failed, undeliverable=remote.undeliverable))

    # -- receiving ----------------------------------------------------------------------------
    def on_delivery(self, event: Event) -> None:
        link = event.link
        delivery = event.delivery
        assert link is not None and delivery is not None  # a delivery event has both
        state = self._link_state(link)
        if state is None:
            closing = self._closing.get(getattr(link, "bridge_id", None))  # type: ignore[arg-type]
            if closing is not None and delivery.readable and not delivery.partial:
                link.recv(delivery.pending)  # arrived after our detach: hand it back later
                link.advance()
                closing.unsettled[next(closing.tokens)] = delivery
            return
        if not state.usable:
            return
        if state.is_sender:
            self._on_sender_delivery(state, delivery)
            return
        if delivery.aborted:
            delivery.settle()
            link.flow(1)
            return
        if not delivery.readable or delivery.partial:
            return  # wait for the rest of a multi-frame message
        data = link.recv(delivery.pending) or b""
        link.advance()
        try:
            with codec.collect_problems() as problems:
                message = codec.decode_message(data)
        except Exception as exc:  # not an AMQP message at all (RecursionError included)
            self._report_malformed(state, f"undecodable, rejected: {exc}"[:300])
            delivery.local.condition = Condition("amqp:decode-error", str(exc)[:200])
            delivery.update(Delivery.REJECTED)
            delivery.settle()
            link.flow(1)
            return
        if self.options.subject_property or self.options.to_property:
            message = self._with_envelope(message, data)
        if problems and not (problems == [codec.NO_BODY] and state.handle.path == CBS_NODE):
            # (a CBS reply carries its status in properties; its body is empty by definition)
            self._report_malformed(state, "; ".join(problems))
        token = next(state.tokens)
        if delivery.settled:  # sent pre-settled: nothing to answer, credit comes back now
            delivery.settle()
            link.flow(1)
        else:
            state.unsettled[token] = delivery
        self.events.delivery(state.handle, message, token)

    def _with_envelope(self, message: Message, data: bytes) -> Message:
        """*message* with its AMQP subject and to as the configured application properties
        (``amqp.subject_property`` / ``to_property``; only then is the properties section read
        a second time, by proton)."""
        envelope = ProtonMessage()
        try:
            envelope.decode(data)
        except Exception:  # already decoded once: nothing new to learn from a failure here
            return message
        added = {name: value for name, value in ((self.options.subject_property,
                                                  envelope.subject),
                                                 (self.options.to_property, envelope.address))
                 if name and isinstance(value, str) and value}
        if not added:
            return message
        return Message(message._body, {**message._properties, **added}, message.kind)

    def _report_malformed(self, state: _LinkState, what: str) -> None:
        """Count a malformed delivery and log it: each of the first few per connection, then
        every thousandth, so hostile traffic cannot flood the log."""
        self.malformed += 1
        count = self.malformed
        if count <= _MALFORMED_LOGGED or count % 1000 == 0:
            log.warning("malformed AMQP message on %r from %s: %s (%d malformed on this "
                        "connection)", state.handle.path, self.options.address, what, count)

    def cmd_settle(self, handle: LinkHandle, token: Any, outcome: Outcome) -> None:
        state = self.links.get(handle.id)
        if state is None or not state.usable:
            return
        delivery = state.unsettled.pop(token, None)
        if delivery is None:
            return
        delivery.update(_OUTCOMES[outcome])
        delivery.settle()
        state.link.flow(1)


_TERMINAL = frozenset({Disposition.ACCEPTED, Disposition.REJECTED, Disposition.RELEASED,
                       Disposition.MODIFIED})


class _Reporting:
    """`BackendEvents` that note each report (the reactor wakes the dispatcher once, later)."""

    def __init__(self, events: BackendEvents, note: Callable[[], None]) -> None:
        self._events = events
        self._note = note

    def __getattr__(self, name: str) -> Any:
        report = getattr(self._events, name)
        note = self._note

        def noted(*args: Any) -> Any:
            note()
            return report(*args)

        setattr(self, name, noted)  # built once per report kind
        return noted
