"""The AMQP surface: a python-qpid-proton server on its own thread (behind `amqp_front`).

What a device sees (spec azure-iothub-protocols §1):

- ``$cbs``: a link *to* ``$cbs`` carries put-token requests (application properties
  ``operation=put-token``, ``type`` = ``servicebus.windows.net:sastoken`` or the legacy
  ``azure-devices.net:sastoken``, ``name`` = audience; body = the token as an AMQP string). The
  reply goes out on the connection's link *from* ``$cbs``: ``correlation-id`` = the request's
  ``message-id`` (when it has one), application properties ``status-code`` (int) and
  ``status-description``; empty body. 200 ``OK``: the token's signature, audience and expiry
  were verified against the registry; 401 with the reason otherwise; 400 for a malformed request.
  A reply that finds no ``$cbs`` receiver (or no credit) waits for one.
- ``/devices/{id}/messages/events`` (device sender: D2C) and ``/devices/{id}/messages/devicebound``
  (device receiver: C2D), also as ``amqps://{host}/devices/...``, ``devicebound`` matched
  case-insensitively. They attach only when the connection holds an unexpired grant for the
  device (put-token, or SASL PLAIN); otherwise the link is attached and at once detached with
  ``amqp:unauthorized-access``. When the grant expires, the device's links on that connection
  are detached with ``amqp:unauthorized-access`` and the description ``Token Invalid: ...``
  (so both substring checks of the legacy library match); a renewed put-token lets the device
  attach again. A PLAIN connection whose token expires is closed with the same condition.
- Any other address: attach + detach with ``amqp:not-found``.

D2C deliveries are stored and accepted. C2D messages are sent while the link has credit
(``data`` body for bytes, ``amqp-value`` for str; ``message-id``, ``correlation-id``,
``content-type``, ``content-encoding``, ``to``; header ``delivery-count``; application
properties plus ``iothub-ack``); the device's outcome is applied to the queue
(`Registry.settle_c2d`); unsettled deliveries of a link that goes away lose their lock.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proton import Condition, Delivery, Endpoint, Event, Message, int32
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

from bridge.backends.amqp.reactor import ProtonTimerTask
from bridge.backends.iothub import sas
from bridge.testing.hub.amqp_codec import c2d_message, d2c_body, d2c_system, parse_address
from bridge.testing.hub.amqp_front import Identities, PeerIdentity
from bridge.testing.hub.registry import AuthError, C2DOutcome, Grant, Registry, Surface

log = logging.getLogger("bridge.testing.hub.amqp")

UNAUTHORIZED = "amqp:unauthorized-access"
NOT_FOUND = "amqp:not-found"
TOKEN_TYPES = (sas.CBS_TOKEN_TYPE, sas.LEGACY_CBS_TOKEN_TYPE)
PREFETCH = 100


@dataclass(eq=False)
class ConnState:
    identity: PeerIdentity
    grants: list[Grant] = field(default_factory=list)
    cbs_senders: list[Any] = field(default_factory=list)
    cbs_pending: list[Message] = field(default_factory=list)
    device_links: list[Any] = field(default_factory=list)


class _Injector(EventInjector):
    """An EventInjector whose pipe is closed when the container is done (proton's is not)."""

    def __init__(self) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self._released = False

    def trigger(self, event: ApplicationEvent) -> None:
        with self._guard:
            if not self._released and not self._closed:
                super().trigger(event)

    def release(self) -> None:
        with self._guard:
            if not self._released:
                self._released = True
                for fd in self.pipe:
                    with contextlib.suppress(OSError):
                        os.close(fd)


def _guarded(method: Callable[[AMQPSurface, Event], None]) -> Callable[[AMQPSurface, Event], None]:
    """Log (and count) an exception in a handler instead of letting it end the container:
    one bad frame must not take the whole surface down."""

    @functools.wraps(method)
    def wrapper(self: AMQPSurface, event: Event) -> None:
        try:
            method(self, event)
        except Exception:
            log.exception("hub amqp: %s failed", method.__name__)
            self.registry.count("amqp.handler_errors")

    return wrapper


class AMQPSurface(MessagingHandler):
    """The proton server. Every method except `start`, `stop` and `c2d_available` runs on the
    container thread."""

    def __init__(self, registry: Registry, identities: Identities) -> None:
        super().__init__(prefetch=PREFETCH, auto_accept=False, auto_settle=True)
        self.registry = registry
        self.identities = identities
        self.port = 0
        self.container = Container(self)
        self.container.container_id = "iothub-standin"
        self._injector = _Injector()
        self.container.selectable(self._injector)
        self._acceptor: Any = None
        self._connections: dict[Any, ConnState] = {}
        self._c2d_links: dict[str, list[Any]] = {}
        self._timers: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="hub-amqp", daemon=True)

    # -- lifecycle (caller's thread) ---------------------------------------------------------
    def start(self, port: int) -> None:
        """Listen on 127.0.0.1:*port* (plain AMQP, no SASL: the front did that) and run."""
        self.port = port
        self._acceptor = self.container.listen(f"127.0.0.1:{port}")
        self.registry.add_c2d_listener(self.c2d_available)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.registry.remove_c2d_listener(self.c2d_available)
        if self._thread.is_alive():
            self._injector.trigger(ApplicationEvent("hub_stop"))
            self._thread.join(timeout)
        self._injector.release()

    def _run(self) -> None:
        try:
            self.container.run()
        except Exception:
            log.exception("hub amqp: the proton container crashed")

    def c2d_available(self, device_id: str) -> None:
        """Registry listener (any thread): hand the device id to the container thread."""
        self._injector.trigger(ApplicationEvent("hub_c2d", subject=device_id))

    # -- application events ------------------------------------------------------------------
    def on_hub_stop(self, event: Event) -> None:
        for task in self._timers:
            task.cancel()
        self._timers.clear()
        for conn in list(self._connections):
            self._forget_connection(conn)
            if not conn.state & Endpoint.LOCAL_CLOSED:
                conn.close()
        if self._acceptor is not None:
            self._acceptor.close()
        self._injector.close()
        self.container.stop()

    @_guarded
    def on_hub_c2d(self, event: Event) -> None:
        for link in list(self._c2d_links.get(event.subject, ())):
            self._pump_c2d(link)

    # -- connections -------------------------------------------------------------------------
    @_guarded
    def on_connection_opening(self, event: Event) -> None:
        conn = event.connection
        url = getattr(conn, "url", None)
        identity = self.identities.take(int(url.port) if url is not None else None)
        state = ConnState(identity or PeerIdentity("NONE"))
        self._connections[conn] = state
        self.registry.count("amqp.connections")
        if state.identity.grant is not None:
            self._add_grant(conn, state, state.identity.grant)

    @_guarded
    def on_connection_remote_close(self, event: Event) -> None:
        self._forget_connection(event.connection)

    @_guarded
    def on_transport_closed(self, event: Event) -> None:
        if event.connection is not None:
            self._forget_connection(event.connection)

    def on_connection_error(self, event: Event) -> None:
        pass  # the peer closed with an error: nothing to report, the base class only logs

    def on_session_error(self, event: Event) -> None:
        pass  # the base class would close the whole connection

    def on_link_error(self, event: Event) -> None:
        pass  # the base class would close the whole connection

    def on_transport_error(self, event: Event) -> None:
        cond = event.transport.condition
        log.debug("hub amqp: transport error %s", cond.name if cond else "?")

    def _forget_connection(self, conn: Any) -> None:
        state = self._connections.pop(conn, None)
        if state is None:
            return
        for link in list(state.device_links) + list(state.cbs_senders):
            self._forget_link(link)

    # -- links -------------------------------------------------------------------------------
    @_guarded
    def on_link_opening(self, event: Event) -> None:
        link = event.link
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        address = link.remote_source.address if link.is_sender else link.remote_target.address
        kind, device_id = parse_address(address)
        state = self._connections.get(event.connection)
        link.hub_kind = "refused"
        link.hub_device = device_id
        link.hub_unsettled = {}
        link.hub_forgotten = False
        if state is None:
            link.hub_refusal = Condition(UNAUTHORIZED, "connection not known to the hub")
        elif kind == "cbs":
            link.hub_kind = "cbs-out" if link.is_sender else "cbs-in"
            if link.is_sender:
                state.cbs_senders.append(link)
        elif (kind == "events" and link.is_sender) or (kind == "devicebound"
                                                       and link.is_receiver):
            role = "receiver" if link.is_sender else "sender"
            link.hub_refusal = Condition(NOT_FOUND, f"a {role} cannot attach to {address!r}")
        elif kind in ("events", "devicebound"):
            assert device_id is not None
            if self._authorised(state, device_id):
                link.hub_kind = "d2c" if kind == "events" else "c2d"
                state.device_links.append(link)
                if kind == "devicebound":
                    self._c2d_links.setdefault(device_id, []).append(link)
            else:
                self.registry.count("amqp.links_unauthorized")
                link.hub_refusal = Condition(
                    UNAUTHORIZED, f"Token Invalid: no valid put-token for device "
                                  f"{device_id!r} on this connection")
        else:
            link.hub_refusal = Condition(NOT_FOUND, f"unknown address {str(address)[:120]!r}; "
                                                    "the stand-in serves $cbs, /devices/{id}/"
                                                    "messages/events and .../devicebound")

    @_guarded
    def on_link_opened(self, event: Event) -> None:
        link = event.link
        refusal = getattr(link, "hub_refusal", None)
        if refusal is not None:
            log.info("hub amqp: refusing link %r: %s %s", link.name, refusal.name,
                     refusal.description)
            link.condition = refusal
            link.close()
        elif getattr(link, "hub_kind", None) == "c2d":
            self._pump_c2d(link)

    @_guarded
    def on_link_remote_close(self, event: Event) -> None:
        self._forget_link(event.link)

    @_guarded
    def on_link_local_close(self, event: Event) -> None:
        self._forget_link(event.link)

    def _forget_link(self, link: Any) -> None:
        if getattr(link, "hub_forgotten", True):
            return
        link.hub_forgotten = True
        state = self._connections.get(link.connection)
        if state is not None:
            for group in (state.device_links, state.cbs_senders):
                if link in group:
                    group.remove(link)
        device = getattr(link, "hub_device", None)
        if device is not None and link in self._c2d_links.get(device, ()):
            self._c2d_links[device].remove(link)
        unsettled: dict[Any, str] = getattr(link, "hub_unsettled", {})
        for message_id in unsettled.values():
            self.registry.settle_c2d(message_id, C2DOutcome.LOCK_LOST, Surface.AMQP)
        unsettled.clear()

    @_guarded
    def on_sendable(self, event: Event) -> None:
        link = event.link
        kind = getattr(link, "hub_kind", None)
        if kind == "c2d":
            self._pump_c2d(link)
        elif kind == "cbs-out":
            state = self._connections.get(link.connection)
            if state is not None:
                self._flush_cbs(state)

    # -- authorisation -------------------------------------------------------------------------
    def _authorised(self, state: ConnState, device_id: str) -> bool:
        now = time.time()
        return self.registry.device(device_id) is not None and any(
            not g.expired(now) and g.covers_device(self.registry.host_name, device_id)
            for g in state.grants)

    def _add_grant(self, conn: Any, state: ConnState, grant: Grant) -> None:
        state.grants.append(grant)
        delay = max(0.0, grant.expiry - time.time())

        def fire() -> None:
            if task in self._timers:  # a renewing client must not grow the list forever
                self._timers.remove(task)
            self._check_expiry(conn)

        task = self.container.schedule(delay + 0.01, ProtonTimerTask(fire))
        self._timers.append(task)

    def _check_expiry(self, conn: Any) -> None:
        state = self._connections.get(conn)
        if state is None:
            return
        now = time.time()
        plain = state.identity.grant
        if plain is not None and plain.expired(now):
            log.info("hub amqp: SASL PLAIN token of %s expired: closing", state.identity.user)
            self.registry.count("amqp.connections_expired")
            self._forget_connection(conn)
            conn.condition = Condition(UNAUTHORIZED, "Token Invalid: the SASL PLAIN token "
                                                     "expired")
            conn.close()
            return
        state.grants = [g for g in state.grants if not g.expired(now)]
        for link in list(state.device_links):
            device = link.hub_device
            if not self._authorised(state, device):
                log.info("hub amqp: token for %s expired: detaching link %r", device, link.name)
                self.registry.count("amqp.links_expired")
                self._forget_link(link)
                link.condition = Condition(UNAUTHORIZED, f"Token Invalid: the SAS token for "
                                                         f"device {device!r} expired")
                link.close()

    # -- messages ------------------------------------------------------------------------------
    @_guarded
    def on_message(self, event: Event) -> None:
        link, delivery, message = event.link, event.delivery, event.message
        kind = getattr(link, "hub_kind", None)
        if kind == "cbs-in":
            self._settle_incoming(delivery, Delivery.ACCEPTED)
            self._put_token(event.connection, message)
        elif kind == "d2c" and (state := self._connections.get(event.connection)) is not None \
                and self._authorised(state, link.hub_device):
            self.registry.add_d2c(link.hub_device, d2c_body(message),
                                  dict(message.properties or {}), d2c_system(message),
                                  Surface.AMQP)
            self._settle_incoming(delivery, Delivery.ACCEPTED)
        else:
            self._settle_incoming(delivery, Delivery.REJECTED)

    @staticmethod
    def _settle_incoming(delivery: Any, outcome: int) -> None:
        if not delivery.settled:
            delivery.update(outcome)
            delivery.settle()

    def _put_token(self, conn: Any, request: Message) -> None:
        props: dict[str, Any] = request.properties or {}
        operation, token_type, name = props.get("operation"), props.get("type"), props.get("name")
        token = request.body
        status, description = 200, "OK"
        if operation != "put-token":
            status, description = 400, f"unsupported operation {str(operation)[:40]!r}"
        elif token_type not in TOKEN_TYPES:
            status, description = 400, (f"unsupported token type {str(token_type)[:60]!r}; "
                                        f"expected {' or '.join(TOKEN_TYPES)}")
        elif not isinstance(name, str) or not name:
            status, description = 400, "the name (audience) application property is missing"
        elif not isinstance(token, str):
            status, description = 400, "the body must be the SAS token as an AMQP string"
        else:
            state = self._connections.get(conn)
            try:
                grant = self.registry.authenticate(token, name, Surface.AMQP)
            except AuthError as exc:
                status, description = 401, f"{exc.reason} ({exc.kind})"
            else:
                if state is not None:
                    self._add_grant(conn, state, grant)
        self.registry.count(f"amqp.put_token.{status}")
        log.info("hub amqp: put-token for %r: %d %s", str(name)[:120], status, description)
        reply = Message(correlation_id=request.id, address=request.reply_to,
                        properties={"status-code": int32(status),
                                    "status-description": description})
        state = self._connections.get(conn)
        if state is not None:
            state.cbs_pending.append(reply)
            self._flush_cbs(state)

    def _flush_cbs(self, state: ConnState) -> None:
        for link in state.cbs_senders:
            while state.cbs_pending and link.credit > 0 and \
                    link.state & Endpoint.LOCAL_ACTIVE:
                link.send(state.cbs_pending.pop(0))

    # -- C2D -----------------------------------------------------------------------------------
    def _pump_c2d(self, link: Any) -> None:
        device = link.hub_device
        while link.credit > 0 and link.state & Endpoint.LOCAL_ACTIVE:
            state = self._connections.get(link.connection)
            if state is None or not self._authorised(state, device):
                return
            message = self.registry.take_c2d(device, Surface.AMQP)
            if message is None:
                return
            amqp = c2d_message(message)
            delivery = link.send(amqp)
            link.hub_unsettled[delivery] = message.message_id

    @_guarded
    def on_accepted(self, event: Event) -> None:
        self._outcome(event, C2DOutcome.ACCEPTED)

    @_guarded
    def on_rejected(self, event: Event) -> None:
        self._outcome(event, C2DOutcome.REJECTED)

    @_guarded
    def on_released(self, event: Event) -> None:
        delivery = event.delivery
        if delivery.remote_state == Delivery.MODIFIED:
            self._outcome(event, C2DOutcome.MODIFIED, undeliverable=delivery.remote.undeliverable)
        else:
            self._outcome(event, C2DOutcome.RELEASED)

    @_guarded
    def on_settled(self, event: Event) -> None:
        # Settled by the device without an outcome: IoT Hub would keep the lock until it
        # times out; the stand-in re-enqueues at once.
        self._outcome(event, C2DOutcome.LOCK_LOST)

    def _outcome(self, event: Event, outcome: C2DOutcome, undeliverable: bool = False) -> None:
        link = event.link
        if getattr(link, "hub_kind", None) != "c2d":
            return
        message_id = link.hub_unsettled.pop(event.delivery, None)
        if message_id is not None:
            self.registry.settle_c2d(message_id, outcome, Surface.AMQP,
                                     undeliverable=undeliverable)
