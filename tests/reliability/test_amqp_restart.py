"""A private RabbitMQ node is SIGKILLed and restarted five times during a stream: with the
durable outbox, a legacy-style agent loses nothing.

The AMQP backend does not reconnect: a lost connection is ``CONNECTION_ERROR`` and the contract
closes its sessions and links, as imp did. Legacy agent code answers that by opening everything
again (after a pause); `LegacyApp` does exactly that. What it cannot do by itself is know which
of its sends the broker had confirmed: that is the durable outbox's job. Every ``sendasync`` is
stored first; a row is deleted only once RabbitMQ accepted the transfer; rows left by the lost
connection are sent again, oldest first, by the next sender the app opens on the same address.
Messages RabbitMQ accepted but whose outcome never reached us are sent twice: duplicates, counted
by the receiving side (the outbox's ``tag_property`` gives each message a unique id).

The queue is a quorum queue declared on the private node: it keeps every confirmed message on
disk whatever the message's durable flag, so the broker's side of "nothing lost" holds across a
SIGKILL too; unsettled deliveries come back to the receiver after the restart (duplicates).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import Agent
from bridge.errors import ClosedError
from bridge.testing.rabbitmq import RabbitNode

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]

N = 1500
KILLS = 5
TAG = "x-msg-id"


class LegacyApp:
    """Agent code as it was written for imp: on ``CONNECTION_ERROR``, open it all again."""

    def __init__(self, agent: Agent, url: str, path: str, role: str,
                 on_messages: Callable[[list[Any]], None] | None = None) -> None:
        self.agent = agent
        self.url = url
        self.path = path
        self.role = role
        self.on_messages = on_messages
        self.errors: list[str | None] = []
        self.opened: list[float] = []  # when each connection opened
        self.failures = 0  # connection errors in a row: the pause before reopening grows
        self.link: Any = None
        self.open()

    def open(self) -> None:
        amqp = self.agent.amqp
        self.conn = amqp.openconnection(self.url, self.on_event)
        session = self.conn.opensession()
        if self.role == "sender":
            self.link = session.opensender(self.path)
        else:
            self.link = session.openreceiver(self.path, None, self.on_messages)

    def on_event(self, event: str, detail: str | None) -> None:
        if event == "CONNECTION_OPEN":
            self.failures = 0
            self.opened.append(time.monotonic())
        elif event == "CONNECTION_ERROR":
            self.errors.append(detail)
            self.failures += 1
            self.agent.imp.wakeup(min(1.0, 0.1 * 2 ** (self.failures - 1)), self.open)

    def send(self, body: str, on_done: Callable[[], None]) -> bool:
        """False while the connection is down (the sender is closed): try again later."""
        try:
            self.link.createtransfer(self.agent.amqp.createmessage(body)).sendasync(on_done)
        except ClosedError:
            return False
        return True


def _diagnosis(node: RabbitNode, sending: LegacyApp, receiving: LegacyApp, missing: int,
               stored: int, restarts: list[Any], failure: list[BaseException]) -> str:
    """Where a stalled stream stands, for the assertion message."""
    try:
        queue = node.ctl("list_queues", "name", "messages_ready", "messages_unacknowledged",
                         "consumers", "leader").strip().splitlines()[-1]
    except Exception as exc:
        queue = f"list_queues failed: {exc}"
    links = {app.role: (app.link.isopen(), app.conn.isopen(), len(app.opened), len(app.errors))
             for app in (sending, receiving)}
    core = sending.link._core
    return (f"{missing} missing, {stored} still in the outbox, {len(restarts)} restarts, "
            f"{failure}; links (open, conn open, opens, errors) {links}; sender in backend "
            f"{core.in_backend}, queued {len(core.queued)}; queue {queue}; last errors "
            f"{sending.errors[-2:]} {receiving.errors[-2:]}")


@pytest.mark.timeout(240)
def test_broker_killed_five_times_nothing_lost_with_the_outbox(
        rabbit_node: Callable[[], RabbitNode], agents: Callable[..., Agent], tmp_path: Path,
        record_property: Callable[[str, Any], None]) -> None:
    node = rabbit_node()
    address = node.declare_quorum_queue(f"rel-{uuid.uuid4().hex[:8]}")
    agent = agents(backend="amqp", amqp={"url": node.url, "connect_timeout": 5},
                   outbox={"path": str(tmp_path / "outbox.db"), "tag_property": TAG})

    cond = threading.Condition()
    bodies: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    arrivals: list[float] = []

    def on_messages(deliveries: list[Any]) -> None:
        now = time.monotonic()
        with cond:
            for delivery in deliveries:
                message = delivery.message()
                bodies[message.body()] += 1
                tags[message.properties()[TAG]] += 1
                delivery.accept()
            arrivals.append(now)
            cond.notify_all()

    receiving = LegacyApp(agent, "amqp://logical.example", address, "receiver", on_messages)
    sending = LegacyApp(agent, "amqp://logical.example", address, "sender")
    assert agent.run_until(lambda: receiving.link.isopen() and sending.link.isopen(), 15), \
        (receiving.errors, sending.errors)

    restarts: list[tuple[float, float]] = []
    failure: list[BaseException] = []

    def chaos() -> None:
        try:
            for k in range(1, KILLS + 1):
                with cond:
                    assert cond.wait_for(lambda k=k: len(bodies) >= k * N // (KILLS + 1), 60), \
                        f"stream stalled before kill {k}"
                killed = time.monotonic()
                node.kill()
                node.start()  # about 3.5 s of an Erlang VM booting: the outage
                restarts.append((killed, time.monotonic()))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=chaos, name="chaos", daemon=True)
    confirmed: list[int] = []
    sent_at: list[float] = []
    started = time.monotonic()
    thread.start()
    n = 0
    while n < N:
        if sending.send(f"m{n:05d}", lambda n=n: confirmed.append(n)):
            sent_at.append(time.monotonic())
            n += 1
            if n % 5 == 0:
                agent.run(timeout=0.005)  # paced, about 600/s
        else:
            agent.run(timeout=0.02)  # down: the app's reopen timer runs meanwhile
    outbox = agent._rt.outbox
    assert outbox is not None
    if not agent.run_until(lambda: len(bodies) == N and outbox.count == 0
                           and not thread.is_alive(), 60):
        missing = sorted(set(range(N)) - {int(b[1:]) for b in bodies})
        detail = [(m, m in confirmed, round(sent_at[m] - started, 3)) for m in missing[:10]]
        pytest.fail(f"missing (n, confirmed, sent at) {detail}; kills at "
                    f"{[(round(k - started, 3), round(r - started, 3)) for k, r in restarts]}; "
                    + _diagnosis(node, sending, receiving, len(missing), outbox.count,
                                 restarts, failure))
    elapsed = time.monotonic() - started
    thread.join(5)
    assert not failure, failure

    assert set(bodies) == {f"m{n:05d}" for n in range(N)}  # nothing lost
    assert len(tags) == N  # one id per message: a duplicate repeats an id, never a new one
    assert len(restarts) == KILLS
    # each crash was seen by both apps as a lost connection and answered by reopening
    assert len(sending.opened) > KILLS and len(receiving.opened) > KILLS
    assert all(sending.errors + receiving.errors)  # each with an errorDetail
    # callbacks: at most once each; those of transfers in flight at a crash died with their
    # connection (the outbox resent the messages without them)
    assert len(confirmed) == len(set(confirmed)) and len(confirmed) <= N

    duplicates = sum(count - 1 for count in bodies.values())
    recovery = []
    for _, running in restarts:
        back = min(t for t in receiving.opened if t >= running)
        recovery.append(min(t for t in arrivals if t >= back) - running)
    record_property("duplicates", duplicates)
    record_property("recovery_seconds", [round(r, 3) for r in recovery])
    boots = [round(b, 1) for b in node.boot_seconds]
    print(f"\n{N} messages, {KILLS} SIGKILLs of RabbitMQ (boots {boots} s): {duplicates} "
          f"duplicates, {N - len(confirmed)} resent "
          f"without callback; first delivery after the node was up again "
          f"{[round(r, 3) for r in recovery]} s; {len(sending.errors)} + "
          f"{len(receiving.errors)} CONNECTION_ERRORs answered by reopening; "
          f"{elapsed:.1f} s in all")
