"""``amqp.multiplex`` against RabbitMQ: many agents' connections on a few physical connections.

The proxy in front of RabbitMQ counts physical connections (what a gateway saves); each agent
still sees only its own sessions, links, deliveries and CONNECTION_* events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bridge import Agent, Settings
from tests.integration.amqp.rabbit import PORT, broker_available, queue_address
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


class Member:
    """One agent with one connection, a receiver and a sender on its own queue."""

    def __init__(self, settings: Settings, url: str, n: int) -> None:
        self.agent = Agent(settings.model_copy(update={"agent_id": f"mux-{n}"}))
        self.events: list[tuple[str, str | None]] = []
        self.received: list[Any] = []
        self.confirmed = 0
        self.changed = threading.Condition()
        self.address = queue_address(f"mux-{n}")
        self.conn = self.agent.amqp.openconnection(url, self._event)
        self.agent.start()

    def _event(self, event: str, detail: str | None) -> None:
        with self.changed:
            self.events.append((event, detail))
            self.changed.notify_all()
        if event == "CONNECTION_OPEN":
            self.session = self.conn.opensession()
            self.receiver = self.session.openreceiver(self.address, None, self._deliveries)
            self.sender = self.session.opensender(self.address)

    def _deliveries(self, deliveries: list[Any]) -> None:
        for delivery in deliveries:
            delivery.accept()
        with self.changed:
            self.received.extend(d.message().body() for d in deliveries)
            self.changed.notify_all()

    def _confirmed(self) -> None:
        with self.changed:
            self.confirmed += 1
            self.changed.notify_all()

    def send(self, body: str) -> None:
        self.agent.call_soon(lambda: self.sender.createtransfer(
            self.agent.amqp.createmessage(body)).sendasync(self._confirmed))

    def wait(self, predicate: Any, timeout: float = 20) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def has(self, event: str) -> bool:
        return any(name == event for name, _ in self.events)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    problem = broker_available()
    if problem is not None:
        pytest.fail(problem)
    started = TcpProxy(PORT, chunk=65536)
    yield started
    started.close()


def test_fifty_agents_share_three_physical_connections_and_keep_their_own_traffic(
        proxy: TcpProxy) -> None:
    settings = Settings(backend="amqp", amqp={"multiplex": 20})
    members = [Member(settings, proxy.url("amqp", "guest:guest"), n) for n in range(50)]
    try:
        for m in members:
            assert m.wait(lambda m=m: m.has("RECEIVER_OPEN") and m.has("SENDER_OPEN")), m.events
        assert proxy.live() == 3  # 20 + 20 + 10
        for n, m in enumerate(members):
            m.send(f"for-{n}")
        for n, m in enumerate(members):
            assert m.wait(lambda m=m: m.received and m.confirmed == 1), (n, m.events)
            assert m.received == [f"for-{n}"]  # its own queue's message, nobody else's
        # one agent closes: only it hears its CONNECTION_CLOSED; its neighbours go on
        leaving = members.pop(0)
        leaving.agent.close()
        assert leaving.has("CONNECTION_CLOSED")
        assert not any(m.has("CONNECTION_CLOSED") or m.has("CONNECTION_ERROR") for m in members)
        members[0].send("after")
        assert members[0].wait(lambda: members[0].received[-1:] == ["after"])
        assert proxy.live() == 3
    finally:
        for m in members:
            m.agent.close()
    assert proxy.live() == 0 or _eventually(lambda: proxy.live() == 0)


def test_a_lost_physical_connection_reaches_every_member(proxy: TcpProxy) -> None:
    settings = Settings(backend="amqp", amqp={"multiplex": 10})
    members = [Member(settings, proxy.url("amqp", "guest:guest"), n) for n in range(10)]
    try:
        for m in members:
            assert m.wait(lambda m=m: m.has("SENDER_OPEN")), m.events
        assert proxy.live() == 1
        proxy.cut_all()
        for m in members:
            assert m.wait(lambda m=m: m.has("CONNECTION_ERROR")), m.events
        # a new connection after the loss gets a new physical connection
        fresh = Member(settings, proxy.url("amqp", "guest:guest"), 99)
        members.append(fresh)
        assert fresh.wait(lambda: fresh.has("SENDER_OPEN")), fresh.events
        assert proxy.live() == 1
    finally:
        for m in members:
            m.agent.close()


def _eventually(predicate: Any, timeout: float = 10) -> bool:
    done = threading.Event()
    deadline = timeout
    while deadline > 0 and not predicate():
        done.wait(0.05)  # the proxy sees the sockets close a moment after the agents do
        deadline -= 0.05
    return bool(predicate())
