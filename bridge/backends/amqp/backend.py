"""`AMQPBackend`: the command side of one AMQP connection, callable from any thread.

Every command only queues a call for the connection's reactor thread (its `reactor.ReactorSlot`
on one of the process's shared reactors), so
none of them touches a socket or blocks; what happens on the wire comes back through the
`BackendEvents` of the connection (see `handler.ConnectionHandler`).
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.backends.amqp.endpoint import AMQPConnectOptions, connect_options
from bridge.backends.amqp.handler import ConnectionHandler
from bridge.backends.amqp.multiplex import MemberHandler, registry_for
from bridge.backends.amqp.reactor import Deferred, ReactorPool, ReactorSlot, shared_reactors
from bridge.backends.amqp.settings import AMQPSettings
from bridge.contract.backend import (
    BackendContext,
    LinkHandle,
    Outcome,
    SessionHandle,
    TransferHandle,
)

log = logging.getLogger("bridge.backends.amqp")

# Settlements are handed to the reactor in batches of up to SETTLE_BATCH, or after
# SETTLE_DELAY seconds: a stream that arrives one message per reactor pass otherwise costs a
# reactor wake-up (a pipe write, a pass, a thread switch) per message. The delay only holds
# back the disposition (and the credit it returns), never a delivery.
SETTLE_BATCH = 16
SETTLE_DELAY = 0.005


class AMQPBackend:
    """One `Connection` on a real AMQP 1.0 peer."""

    def __init__(self, context: BackendContext, reactors: ReactorPool | None = None) -> None:
        self.events = context.events
        self.wake = context.wake
        self._name = f"bridge-amqp-{context.agent_id}-{context.connection_index}"
        self._problem: str | None = None
        self._reactor: ReactorSlot | None = None
        self._closed = False
        self.options: AMQPConnectOptions | None
        config: AMQPSettings = context.config or AMQPSettings()
        self._multiplex = config.multiplex
        try:
            self.options = connect_options(config, context.url, context.agent_id,
                                           context.connection_index)
        except ValueError as exc:  # reported as CONNECTION_ERROR by open(): it is asynchronous
            self.options = None
            self._problem = f"amqp:invalid-field: {exc}"
            return
        handler_class = MemberHandler if self._multiplex else ConnectionHandler
        self._handler = handler_class(self.options, self.events, context.close_timeout,
                                      context.wake)
        self._later = context.later
        threads = getattr(context.settings, "threads", None)
        self._reactors: ReactorPool = reactors or shared_reactors(
            threads.amqp_reactors if threads is not None else None)
        # A quarter of the credit at most waits in a batch: the peer never runs dry for it.
        self._settle_batch = min(SETTLE_BATCH, self.options.prefetch // 4)

    # -- connection ---------------------------------------------------------------------------
    def open(self) -> None:
        if self._problem is not None:
            self.events.connection_error(self._problem)
            self.wake()
            return
        if self._reactor is not None or self._closed:
            return
        handler = self._handler
        if isinstance(handler, MemberHandler):
            assert self.options is not None
            registry = registry_for(self._reactors)
            handler.group, slot = registry.seat(self.options, self._multiplex, self._reactors,
                                                self._on_crash)
            handler.registry = registry
        else:
            slot = self._reactors.place(self._on_crash)
        handler.reactor = slot
        self._reactor = slot
        slot.start(self._handler.start)

    def _on_crash(self, exc: BaseException) -> None:
        if not self._handler.ended:
            self.events.connection_error(f"amqp:internal-error: the AMQP reactor failed: {exc!r}")
            self.wake()

    def close(self) -> None:
        self._closed = True
        if self._reactor is not None:
            self._reactor.submit(self._handler.cmd_close)

    def wait_closed(self, timeout: float) -> bool:
        return self._reactor is None or self._reactor.join(timeout)

    # -- sessions and links ---------------------------------------------------------------------
    def _submit(self, fn: Any, *args: Any) -> bool:
        reactor = self._reactor
        return reactor is not None and reactor.submit(fn, *args)

    def open_session(self, session: SessionHandle) -> None:
        self._submit(self._handler.cmd_open_session, session)

    def close_session(self, session: SessionHandle) -> None:
        self._submit(self._handler.cmd_close_session, session)

    def open_link(self, link: LinkHandle) -> None:
        self._submit(self._handler.cmd_open_link, link)

    def close_link(self, link: LinkHandle) -> None:
        self._submit(self._handler.cmd_close_link, link)

    # -- transfers and deliveries ---------------------------------------------------------------
    def send(self, transfer: TransferHandle) -> None:
        # Not accepted once the reactor has ended: the connection's end is reported by itself
        # (or the contract closed it), and the transfer stays unsettled like those in flight
        # at the loss, so a durable-outbox row is resent rather than deleted as refused.
        self._submit(self._handler.cmd_send, transfer)

    def cancel(self, transfer: TransferHandle) -> None:
        # The contract marked the transfer cancelled before calling this (`transfer.cancelled`,
        # which the reactor checks before writing it); the command forgets it on the reactor.
        self._submit(self._handler.cmd_cancel, transfer)

    def settle(self, link: LinkHandle, token: Any, outcome: Outcome) -> None:
        reactor = self._reactor
        if reactor is None:
            return
        if self._settle_batch < 2 or self._later is None:
            reactor.submit(self._handler.cmd_settle, link, token, outcome)
            return
        # Settlements made on the dispatcher go to the reactor in batches: at most
        # `_settle_batch` of them, or whatever `SETTLE_DELAY` collected.
        queued = reactor.submit_deferred(self._handler.cmd_settle, link, token, outcome,
                                         batch=self._settle_batch)
        if queued is Deferred.FIRST and not self._later(SETTLE_DELAY, reactor.kick):
            reactor.kick()  # not on the dispatcher thread: nothing would come back for it

    def status(self) -> str:
        """``up``, ``connecting`` or ``down`` (AMQP does not reconnect: a loss ends it)."""
        if self._reactor is None or self._handler.ended:
            return "down" if self._reactor is not None or self._problem else "connecting"
        return "up" if self._handler.opened else "connecting"

    def __repr__(self) -> str:
        where = self.options.address if self.options is not None else "invalid URL"
        return f"<AMQPBackend {where}>"


def create(context: BackendContext) -> AMQPBackend:
    """Backend factory (its module imports proton: the registry imports it lazily)."""
    return AMQPBackend(context)
