"""Conformance profile of the AMQP 1.0 backend against the shared RabbitMQ 3.10 (AMQP 1.0 plugin).

Agents connect through a loopback TCP proxy (`TcpProxy`), so a lost connection is a real
socket failure. Queues are ``/queue/bridge-amqp-test-*``; a broker policy deletes them two minutes
after their last consumer left. Faults RabbitMQ can produce are produced on it (wrong password,
deleted exchange); what it cannot do is a documented deviation (docs/backends/amqp.md), pinned
below against the real broker. The raw-peer integration tests (tests/integration/amqp) show the
contract behaviour for the same statements with a peer that can do them.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from typing import Any

from proton import Message as ProtonMessage
from proton import symbol

from bridge import Agent, Settings
from tests.integration.amqp.rabbit import (
    HOST,
    PORT,
    RawClient,
    broker_available,
    consumers,
    declare_exchange,
    delete_exchange,
    queue_address,
)
from tests.support.tcp_proxy import TcpProxy

from ..harness import Ctx
from .base import BackendProfile

# case -> proton message a foreign AMQP application publishes (statements 30, 32, 33)
_INJECTED: dict[str, ProtonMessage] = {
    "unconvertible_property": ProtonMessage(body="x", properties={"ok": 1, "bad": uuid.uuid4()}),
    "unsupported_body": ProtonMessage(body=uuid.uuid4()),
    # RabbitMQ 3.10 drops the connection on an amqp-value list of two or more items, so the list
    # travels as an amqp-sequence section (the bridge maps both to a list; the amqp-value form
    # is covered by the codec unit tests and the raw-peer integration test).
    "list_body": ProtonMessage(body=[1, "a"], inferred=True),
    "map_body": ProtonMessage(body={"k": 1}),
    "symbol_body": ProtonMessage(body=symbol("sym")),
}


class AMQPProfile(BackendProfile):
    name = "amqp"
    timeout = 10.0
    # the AMQP backend gives both; RabbitMQ, the suite's peer, does not:
    opens_any_path = False  # RabbitMQ refuses /devices/... (it ends the session: link errors)
    supports_cbs = False  # no $cbs node on RabbitMQ ("$cbs" is just a queue there)

    def __init__(self) -> None:
        self._proxy: TcpProxy | None = None
        self._lock = threading.Lock()

    # -- endpoints ------------------------------------------------------------------------------
    def proxy(self) -> TcpProxy:
        with self._lock:
            if self._proxy is None:
                self._proxy = TcpProxy(PORT, chunk=65536)
                weakref.finalize(self, self._proxy.close)
            return self._proxy

    def available(self) -> str | None:
        return broker_available()

    def url(self) -> str:
        return self.proxy().url("amqp", "guest:guest")

    def anonymous_url(self) -> str:
        return self.proxy().url("amqp")  # no userinfo: SASL ANONYMOUS (RabbitMQ maps it to guest)

    def address(self, label: str) -> str:
        return queue_address(label)

    # -- fault hooks ----------------------------------------------------------------------------
    def failing_open(self) -> tuple[Settings, str]:
        return self.settings(), f"amqp://guest:wrong-password@{HOST}:{PORT}"

    def drop_connection(self, agent: Agent) -> None:
        # Cuts every connection through the proxy; only the calling test's agent is live then.
        assert self.proxy().cut_all() > 0, "no connection went through the proxy"

    def inject(self, agent: Agent, path: str, case: str) -> None:
        with RawClient() as client:
            client.send(path, _INJECTED[case])

    def attached_receivers(self, agent: Agent, path: str) -> int:
        count = consumers(path)
        if count:
            # The suite polls this from a run_until predicate, which is only re-evaluated when
            # the dispatcher has work: give it a turn soon so a broker-side change is seen.
            agent.imp.wakeup(0.2, lambda: None)
        return count

    # -- pinned deviations --------------------------------------------------------------------
    def pin_deviation(self, n: int, ctx: Ctx) -> None:
        {37: self._pin_37, 39: self._pin_39, 45: self._pin_45}[n](ctx)

    def _pin_37(self, ctx: Ctx) -> None:
        """No receiver, no credit shortage: every transfer completes; the queue holds them."""
        agent = ctx.agent()
        conn, _ = ctx.connect(agent)
        session, _ = ctx.session(agent, conn)
        path = self.address("credit37")
        sender, _ = ctx.sender(agent, session, path)
        done: list[int] = []
        for i in range(3):
            sender.createtransfer(agent.amqp.createmessage(f"m{i}")).sendasync(
                lambda i=i: done.append(i))
        ctx.wait(agent, lambda: len(done) == 3, "all transfers confirmed without a receiver")
        received: list[str] = []

        def take(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                received.append(delivery.message().body())
                delivery.accept()

        receiver, _ = ctx.receiver(agent, session, path, take)
        ctx.wait(agent, lambda: len(received) == 3, "queued messages delivered")
        assert done == [0, 1, 2] and received == ["m0", "m1", "m2"] and receiver.isopen()

    def _pin_39(self, ctx: Ctx) -> None:
        """cancel() right after sendasync: the callback never runs; the message is normally
        already on the wire (it arrives at most once, before the next one)."""
        agent = ctx.agent()
        pipe = ctx.pipe(agent, "cancel39")
        fired: list[str] = []
        transfer = pipe.sender.createtransfer(agent.amqp.createmessage("cancelled"))
        transfer.sendasync(lambda: fired.append("cancelled"))
        transfer.cancel()
        ctx.send(agent, pipe.sender, agent.amqp.createmessage("marker"))
        ctx.wait(agent, lambda: "marker" in [m.body() for m in pipe.messages], "marker")
        ctx.settle_briefly(agent)
        bodies = [m.body() for m in pipe.messages]
        assert fired == []
        assert bodies in (["marker"], ["cancelled", "marker"])

    def _pin_45(self, ctx: Ctx) -> None:
        """A sender whose exchange is deleted: RabbitMQ ends the session with amqp:not-found."""
        exchange = f"bridge-amqp-test-x-{uuid.uuid4().hex[:12]}"
        declare_exchange(exchange)
        try:
            agent = ctx.agent()
            conn, conn_rec = ctx.connect(agent)
            session, session_rec = ctx.session(agent, conn)
            sender, sender_rec = ctx.sender(agent, session, f"/exchange/{exchange}/key")
        finally:
            delete_exchange(exchange)
        sender.createtransfer(agent.amqp.createmessage("to a deleted exchange")).sendasync()
        ctx.wait(agent, lambda: session_rec.has("SESSION_ERROR"), "SESSION_ERROR")
        detail = session_rec.detail("SESSION_ERROR") or ""
        assert detail.startswith("amqp:not-found: ") and exchange in detail
        assert sender_rec.names() == ["SENDER_OPEN", "SENDER_CLOSED"]
        assert not sender.isopen() and not session.isopen() and conn.isopen()
        assert conn_rec.names() == ["CONNECTION_OPEN"]


PROFILE = AMQPProfile()
