"""The in-process broker: queues, competing receivers, credit, settlement outcomes."""

from __future__ import annotations

import uuid
from typing import Any

from bridge import Agent, Delivery, Message, Settings
from bridge.backends.memory import get_broker


def _agent(broker: str, **memory: Any) -> Agent:
    return Agent(Settings(memory={"broker": broker, **memory}))


def _session(agent: Agent, url: str = "amqps://x") -> Any:
    conn = agent.amqp.openconnection(url, lambda e, d: None)
    session = conn.opensession()
    agent.run_until(session.isopen, 5)
    return conn, session


def test_messages_wait_for_a_receiver_and_receivers_compete() -> None:
    name = uuid.uuid4().hex
    agent = _agent(name)
    _conn, session = _session(agent)
    sender = session.opensender("/work")
    for i in range(10):
        sender.createtransfer(agent.amqp.createmessage(str(i))).sendasync()
    agent.run_until(lambda: get_broker(name).stats("/work").depth == 10, 5)
    got: dict[str, list[str]] = {"a": [], "b": []}
    receivers = [session.openreceiver("/work", None,
                                      lambda ds, k=k: got[k].extend(d.message().body() for d in ds))
                 for k in ("a", "b")]
    assert agent.run_until(lambda: len(got["a"]) + len(got["b"]) == 10, 5)
    assert agent.run_until(lambda: all(r.isopen() for r in receivers), 5)
    for i in range(10, 20):  # both attached now: round robin
        sender.createtransfer(agent.amqp.createmessage(str(i))).sendasync()
    assert agent.run_until(lambda: len(got["a"]) + len(got["b"]) == 20, 5)
    assert len(got["a"]) >= 5 and len(got["b"]) >= 5  # both took a share
    assert sorted(got["a"] + got["b"], key=int) == [str(i) for i in range(20)]
    assert all(r.isopen() for r in receivers)
    agent.close()


def test_prefetch_bounds_unsettled_deliveries() -> None:
    name = uuid.uuid4().hex
    agent = _agent(name, prefetch=3)
    _conn, session = _session(agent)
    held: list[Delivery] = []
    receiver = session.openreceiver("/pf", None, held.extend)
    sender = session.opensender("/pf")
    for i in range(10):
        sender.createtransfer(agent.amqp.createmessage(str(i))).sendasync()
    assert agent.run_until(lambda: len(held) == 3, 5)
    agent.run(timeout=0.1)
    assert len(held) == 3 and get_broker(name).stats("/pf").depth == 7
    held.pop(0).accept()
    assert agent.run_until(lambda: len(held) == 3 and held[-1].message().body() == "3", 5)
    assert receiver.isopen()
    agent.close()


def test_release_until_max_delivery_count_then_dead_letter() -> None:
    name = uuid.uuid4().hex
    agent = _agent(name, max_delivery_count=3)
    _conn, session = _session(agent)
    attempts: list[int] = []

    def always_release(deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            attempts.append(1)
            delivery.release()

    receiver = session.openreceiver("/dlq", None, always_release)
    sender = session.opensender("/dlq")
    sender.createtransfer(agent.amqp.createmessage("poison", {"p": 1})).sendasync()
    broker = get_broker(name)
    assert agent.run_until(lambda: len(broker.stats("/dlq").dead_lettered) == 1, 5)
    stats = broker.stats("/dlq")
    assert len(attempts) == 3 and stats.released == 3 and stats.depth == 0
    assert stats.dead_lettered[0] == Message.value("poison", {"p": 1})
    assert receiver.isopen()
    agent.close()


def test_reject_is_counted_and_dead_lettered() -> None:
    name = uuid.uuid4().hex
    agent = _agent(name)
    _conn, session = _session(agent)
    receiver = session.openreceiver("/rej", None, lambda ds: [d.reject() for d in ds])
    sender = session.opensender("/rej")
    sender.createtransfer(agent.amqp.createmessage("bad")).sendasync()
    broker = get_broker(name)
    assert agent.run_until(lambda: broker.stats("/rej").rejected == 1, 5)
    assert broker.stats("/rej").dead_lettered[0].body() == "bad"
    assert receiver.isopen()
    agent.close()


def test_closing_a_receiver_returns_unsettled_messages_in_order() -> None:
    name = uuid.uuid4().hex
    agent = _agent(name)
    _conn, session = _session(agent)
    held: list[Delivery] = []
    receiver = session.openreceiver("/back", None, held.extend)
    sender = session.opensender("/back")
    for i in range(3):
        sender.createtransfer(agent.amqp.createmessage(str(i))).sendasync()
    assert agent.run_until(lambda: len(held) == 3, 5)
    receiver.close()
    broker = get_broker(name)
    assert broker.stats("/back").depth == 3
    again: list[str] = []
    session.openreceiver("/back", None, lambda ds: again.extend(d.message().body() for d in ds))
    assert agent.run_until(lambda: len(again) == 3, 5)
    assert again == ["0", "1", "2"]
    held.clear()  # settling on the closed receiver is a no-op, nothing is counted twice
    assert broker.stats("/back").accepted == 3
    agent.close()


def test_two_agents_share_a_named_broker() -> None:
    name = uuid.uuid4().hex
    device, cloud = _agent(name), _agent(name)
    _, device_session = _session(device)
    _, cloud_session = _session(cloud)
    got: list[Any] = []
    receiver = cloud_session.openreceiver("/shared", None,
                                          lambda ds: got.extend(d.message() for d in ds))
    sender = device_session.opensender("/shared")
    device.run_until(sender.isopen, 5)
    cloud.run_until(receiver.isopen, 5)
    sender.createtransfer(device.amqp.createbinarymessage(b"\x01", {"n": 1})).sendasync()
    device.run(timeout=0.05)
    assert cloud.run_until(lambda: len(got) == 1, 5)
    assert got[0].body() == b"\x01" and got[0].properties() == {"n": 1}
    device.close()
    cloud.close()


def test_users_require_matching_credentials() -> None:
    name = uuid.uuid4().hex
    agent = _agent(name, users={"dev": "p@ss word"})
    results: list[tuple[str, str | None]] = []
    agent.amqp.openconnection("amqps://dev:p%40ss%20word@h", lambda e, d: results.append((e, d)))
    agent.amqp.openconnection("amqps://dev:nope@h", lambda e, d: results.append((e, d)))
    assert agent.run_until(lambda: len(results) == 2, 5)
    assert sorted(e for e, _ in results) == ["CONNECTION_ERROR", "CONNECTION_OPEN"]
    detail = next(d for e, d in results if e == "CONNECTION_ERROR")
    assert detail is not None and "amqp:unauthorized-access" in detail
    assert "nope" not in detail and "p@ss" not in detail
    agent.close()


def test_cbs_replies_are_per_connection() -> None:
    name = uuid.uuid4().hex
    agent = _agent(name)
    replies: dict[int, list[dict]] = {1: [], 2: []}
    keep = []
    for n in (1, 2):
        conn, session = _session(agent)
        receiver = session.openreceiver(
            "$cbs", None, lambda ds, n=n: replies[n].extend(d.message().properties() for d in ds))
        sender = session.opensender("$cbs")
        keep += [conn, session, receiver, sender]
        agent.run_until(lambda s=sender, r=receiver: s.isopen() and r.isopen(), 5)
        sender.createtransfer(agent.amqp.createmessage("token", {"operation": "put-token"})
                              ).sendasync()
    assert agent.run_until(lambda: len(replies[1]) == 1 and len(replies[2]) == 1, 5)
    agent.run(timeout=0.05)
    assert replies[1] == replies[2] == [{"status-code": 200, "status-description": "OK"}]
    agent.close()
