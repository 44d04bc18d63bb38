"""`amqp.multiplex`: many agents' connections on one physical AMQP connection.

IoT Hub's gateway pattern (up to ~995 device tokens on one AMQP connection; MQTT cannot):
agents whose connections go to the same host with the same TLS and SASL settings share a
physical connection, each keeping its own sessions, links, CBS put-token (its own ``$cbs``
links) and its own CONNECTION_* events. A `MemberHandler` is a `ConnectionHandler` whose
"connection" is a seat on a `SharedConnection`:

- the first member opens the physical connection (paced like any connect); later members find it
  open and report CONNECTIONOPEN at once, or wait for the peer's open with their own time-out;
- the peer's open, close and a lost transport reach every member, each reporting them itself;
- session, link and delivery events reach only the member that owns the session
  (``session.bridge_member``);
- a member that closes ends its sessions and leaves; the last one out closes the physical
  connection (and finishes when it is gone, so nothing written is cut short).

Groups are found by `connection_key` (endpoint, credentials, TLS, virtual host, idle time-out)
and hold at most ``amqp.multiplex`` members; a full or ended group is never joined again. All of
a group's members live on its reactor (the slot is placed there), so everything below runs on
that one thread except `MultiplexRegistry.seat`, which only counts seats under a lock.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

from proton import Connection, Endpoint, Event, Handler

from bridge.backends.amqp import codec
from bridge.backends.amqp.cbsmux import CBS_NODE, SharedCBS
from bridge.backends.amqp.endpoint import AMQPConnectOptions
from bridge.backends.amqp.handler import CONNECTING, OPEN, ConnectionHandler
from bridge.contract.backend import LinkHandle, Outcome, TransferHandle

if TYPE_CHECKING:
    from bridge.backends.amqp.reactor import Reactor, ReactorPool, ReactorSlot

log = logging.getLogger("bridge.backends.amqp")

# Events about the physical connection: every member hears them.
_CONNECTION_EVENTS = ("on_connection_remote_open", "on_connection_remote_close",
                      "on_transport_error", "on_transport_closed")


def connection_key(options: AMQPConnectOptions) -> tuple[Any, ...]:
    """What two connections must share to share a physical connection (never the container
    id: each member keeps its own for its link names)."""
    endpoint = options.endpoint
    return (endpoint.address, endpoint.host, endpoint.port, endpoint.tls, options.user,
            options.password, options.mechanisms, options.allow_insecure_plain,
            options.virtual_host, options.tls, options.idle_timeout)


class SharedConnection(Handler):
    """One physical connection and its members (reactor thread, but for the seat count)."""

    def __init__(self, key: tuple[Any, ...], reactor: Reactor, capacity: int) -> None:
        self.key = key
        self.reactor = reactor
        self.capacity = capacity
        self.seats = 0  # members placed (counted when their backend opens: any thread, locked)
        self.members: dict[int, MemberHandler] = {}
        self.leaving: list[MemberHandler] = []  # wait for the socket's end
        self.conn: Connection | None = None
        self.opened = False
        self.ended = False
        self.container_id = f"bridge-mux-{uuid.uuid4().hex[:12]}"
        self._ids = itertools.count(1)
        self._cbs: SharedCBS | None = None

    @property
    def cbs(self) -> SharedCBS:
        """The connection's one real ``$cbs`` pair (attached when a member first asks)."""
        if self._cbs is None:
            self._cbs = SharedCBS(self)
        return self._cbs

    # -- members (reactor thread) -------------------------------------------------------------
    def join(self, member: MemberHandler) -> int:
        member_id = next(self._ids)
        self.members[member_id] = member
        return member_id

    def leave(self, member: MemberHandler, registry: MultiplexRegistry) -> bool:
        """*member* is done; True when it must wait for the physical connection to end."""
        self.members.pop(member.member_id, None)
        if self.members or self.ended or self.conn is None:
            return False
        self.ended = True  # nobody joins a connection on its way out
        registry.forget(self)
        self.leaving.append(member)
        if self.conn.state & Endpoint.LOCAL_ACTIVE:
            self.conn.close()
        return True

    # -- proton events ------------------------------------------------------------------------
    def on_connection_remote_open(self, event: Event) -> None:
        self.opened = True
        self._to_all("on_connection_remote_open", event)

    def on_connection_remote_close(self, event: Event) -> None:
        self.ended = True
        self._to_all("on_connection_remote_close", event)

    def on_transport_error(self, event: Event) -> None:
        self.ended = True
        self._to_all("on_transport_error", event)

    def on_transport_closed(self, event: Event) -> None:
        self.ended = True
        self._to_all("on_transport_closed", event)
        for member in self.leaving:
            member.physical_gone()
        self.leaving.clear()

    def on_session_remote_open(self, event: Event) -> None:
        if getattr(event.session, "bridge_cbs", False):
            return  # the shared $cbs session
        member = self._owner(event)
        if member is not None:
            member.on_session_remote_open(event)
        elif event.session is not None and event.session.state & Endpoint.LOCAL_ACTIVE:
            # its member left before the peer's begin came (ending it earlier would have made
            # proton fail the whole connection: "begin reply to unknown channel")
            event.session.close()

    def on_unhandled(self, method: str, event: Event) -> None:
        if event.link is not None and getattr(event.link, "bridge_cbs", False):
            handler = getattr(self.cbs, method, None)
            if handler is not None:
                handler(event)
            return
        member = self._owner(event)
        if member is not None:
            handler = getattr(member, method, None)
            if handler is not None:
                handler(event)

    def _to_all(self, method: str, event: Event) -> None:
        for member in list(self.members.values()):
            getattr(member, method)(event)

    def _owner(self, event: Event) -> MemberHandler | None:
        link = event.link
        session = link.session if link is not None else event.session
        if session is None:
            return None
        return self.members.get(getattr(session, "bridge_member", 0))


class MultiplexRegistry:
    """The open groups of one reactor pool, by `connection_key`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[tuple[Any, ...], SharedConnection] = {}

    def seat(self, options: AMQPConnectOptions, capacity: int, pool: ReactorPool,
             on_crash: Any) -> tuple[SharedConnection, ReactorSlot]:
        """A seat for one more member (any thread): an open group with room, or a new one."""
        key = connection_key(options)
        with self._lock:
            group = self._groups.get(key)
            if group is None or group.ended or group.seats >= group.capacity:
                slot = pool.place(on_crash)
                group = SharedConnection(key, slot.reactor, capacity)
                self._groups[key] = group
            else:
                slot = pool.place_on(group.reactor, on_crash)
            group.seats += 1
            return group, slot

    def release(self, group: SharedConnection) -> None:
        with self._lock:
            group.seats -= 1

    def forget(self, group: SharedConnection) -> None:
        with self._lock:
            if self._groups.get(group.key) is group:
                del self._groups[group.key]


class MemberHandler(ConnectionHandler):
    """A `ConnectionHandler` seated on a `SharedConnection` instead of owning a socket."""

    group: SharedConnection
    registry: MultiplexRegistry
    member_id: int = 0

    def _opens_socket(self) -> bool:
        return self.group.conn is None  # later members join the open connection: not paced

    def _connect(self) -> None:
        assert self.reactor is not None
        if self.local_closed:
            self._finish()
            return
        group = self.group
        self.member_id = group.join(self)
        if group.conn is None:
            # The first member opens the physical connection for all, under the group's own
            # container id; its own id still names its links.
            options = self.options
            self.options = _with_container(options, group.container_id)
            try:
                super()._connect()
            finally:
                self.options = options
            group.conn = self.conn
            if self.conn is not None:
                self.conn.handler = group  # every event of the connection goes to the group
            return
        self.conn = group.conn
        if group.opened:
            self.on_connection_remote_open_member()
        else:
            self._schedule(self.options.connect_timeout, self._on_connect_timeout)

    def on_connection_remote_open_member(self) -> None:
        if self.state == CONNECTING and not self.local_closed:
            self.state = OPEN
            self.events.connection_opened()

    def on_connection_remote_open(self, event: Event) -> None:
        self.on_connection_remote_open_member()

    # -- $cbs: virtual links on the connection's shared pair (see cbsmux) ---------------------
    def cmd_open_link(self, handle: LinkHandle) -> None:
        if handle.path == CBS_NODE and not self.local_closed and self.state == OPEN:
            self.group.cbs.open_link(self, handle)
            return
        super().cmd_open_link(handle)

    def cmd_close_link(self, handle: LinkHandle) -> None:
        if self.group.cbs.owns(self, handle.id):
            self.group.cbs.close_link(self, handle)
            return
        super().cmd_close_link(handle)

    def cmd_send(self, transfer: TransferHandle) -> None:
        if self.group.cbs.owns(self, transfer.link.id):
            self.group.cbs.send(self, transfer)
            return
        super().cmd_send(transfer)

    def cmd_settle(self, handle: LinkHandle, token: Any, outcome: Outcome) -> None:
        if self.group.cbs.owns(self, handle.id):
            self.group.cbs.settle(self, token, outcome)
            return
        super().cmd_settle(handle, token, outcome)

    def _report_session_end(self, state: Any, condition: Any) -> None:
        if self.group._cbs is not None:
            self.group._cbs.session_ended(self, state.handle.id,
                                          codec.condition_text(condition, ""))
        super()._report_session_end(state, condition)

    def cmd_open_session(self, handle: Any) -> None:
        super().cmd_open_session(handle)
        state = self.sessions.get(handle.id)
        if state is not None:
            state.session.bridge_member = self.member_id

    def cmd_close(self) -> None:
        """The contract closed this member's connection: end its sessions and leave."""
        if self.local_closed:
            return
        self.local_closed = True
        for state in list(self.sessions.values()):
            session = state.session
            session.bridge_member = 0  # what the peer still says about it is nobody's
            if session.state & Endpoint.REMOTE_UNINIT:
                continue  # ended by the group once its begin is in (see on_session_remote_open)
            if session.state & Endpoint.LOCAL_ACTIVE:
                session.close()
        if self.group._cbs is not None:
            self.group._cbs.leave(self)
        self._leave()

    def _abort_transport(self) -> None:
        """A time-out of this member: it leaves; the socket is dropped only if it was the last."""
        group = self.group
        last = not any(m is not self for m in group.members.values())
        if last and self.conn is not None and self.conn.transport is not None:
            super()._abort_transport()
        else:
            self._leave()

    def _leave(self) -> None:
        if self.member_id and self.group.leave(self, self.registry):
            return  # the last one out: finished when the physical connection has gone
        self._finish()

    def physical_gone(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.finished:
            if self.member_id:
                self.group.members.pop(self.member_id, None)
            self.registry.release(self.group)  # the seat counted when the backend opened
        super()._finish()


def _with_container(options: AMQPConnectOptions, container_id: str) -> AMQPConnectOptions:
    return dataclasses.replace(options, container_id=container_id)


_registries: dict[int, MultiplexRegistry] = {}
_registries_lock = threading.Lock()


def registry_for(pool: ReactorPool) -> MultiplexRegistry:
    """The groups of *pool* (each pool's reactors hold their own groups)."""
    with _registries_lock:
        return _registries.setdefault(id(pool), MultiplexRegistry())

