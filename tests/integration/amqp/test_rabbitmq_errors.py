"""Refusals and failures produced by the real RabbitMQ (and by the network under it)."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from tests.support.tcp_proxy import TcpProxy

from .conftest import Harness, Rec
from .rabbit import HOST, PORT, URL, queue_address

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq")]


def test_broker_refuses_sender_and_receiver_addresses(harness: Harness) -> None:
    """RabbitMQ answers an attach to a missing exchange by ending the session with
    amqp:not-found: the attaching links get *_ERROR with the condition, the session
    SESSION_ERROR, an already open link of that session SENDER_CLOSED."""
    agent = harness.agent()
    conn, conn_rec, session, session_rec = harness.open(agent, URL)
    good, good_rec = harness.link(agent, session, "sender", queue_address("refused-good"))
    bad_path = f"/exchange/no-such-exchange-{uuid.uuid4().hex[:8]}/key"
    sender_rec, receiver_rec = Rec(), Rec()
    sender = session.opensender(bad_path, sender_rec)
    receiver = session.openreceiver(bad_path, receiver_rec, lambda ds: None)
    harness.wait(agent, lambda: session_rec.has("SESSION_ERROR"), "SESSION_ERROR")
    assert sender_rec.names() == ["SENDER_ERROR"]
    assert sender_rec.detail("SENDER_ERROR").startswith("amqp:not-found: NOT_FOUND - no exchange")
    # The receiver's attach went out before the session's end came back (then it is refused
    # like the sender's), or after: then the session's end closes it unopened, like any child
    # of an ending session (the contract's cascade); which one is a race on the wire.
    assert receiver_rec.names() in (["RECEIVER_ERROR"], ["RECEIVER_CLOSED"])
    if receiver_rec.names() == ["RECEIVER_ERROR"]:
        assert receiver_rec.detail("RECEIVER_ERROR").startswith(
            "amqp:not-found: NOT_FOUND - no exchange")
    assert session_rec.detail("SESSION_ERROR").startswith("amqp:not-found: ")
    assert good_rec.names() == ["SENDER_OPEN", "SENDER_CLOSED"]
    assert not (sender.isopen() or receiver.isopen() or good.isopen() or session.isopen())
    assert conn.isopen() and conn_rec.names() == ["CONNECTION_OPEN"]
    again, again_rec = harness.link(agent, conn.opensession(), "sender", queue_address("after"))
    assert again_rec.names() == ["SENDER_OPEN"] and again.isopen()


def test_broker_refuses_credentials(harness: Harness) -> None:
    agent = harness.agent()
    rec = Rec()
    conn = agent.amqp.openconnection(f"amqp://guest:not-the-password@{HOST}:{PORT}", rec)
    harness.wait(agent, lambda: rec.has("CONNECTION_ERROR"), "CONNECTION_ERROR")
    detail = rec.detail("CONNECTION_ERROR")
    assert detail == "amqp:unauthorized-access: Authentication failed [mech=PLAIN]"
    assert "not-the-password" not in detail and not conn.isopen()


def test_no_credentials_means_sasl_anonymous(harness: Harness) -> None:
    agent = harness.agent()
    conn, *_ = harness.open(agent, f"amqp://{HOST}:{PORT}", session=False)
    assert conn.isopen()  # RabbitMQ lets ANONYMOUS in as its default user
    plain_only = harness.agent(sasl_mechanisms="PLAIN")
    rec = Rec()
    refused = plain_only.amqp.openconnection(f"amqp://{HOST}:{PORT}", rec)
    harness.wait(plain_only, lambda: rec.has("CONNECTION_ERROR"), "CONNECTION_ERROR")
    assert rec.detail("CONNECTION_ERROR").startswith("amqp:unauthorized-access: ")
    assert not refused.isopen()


def test_settings_url_replaces_the_agent_url(harness: Harness) -> None:
    agent = harness.agent(url=URL)
    conn, *_ = harness.open(agent, "amqps://legacy-hub.example", session=False)
    assert conn.isopen()


def test_unusable_agent_url_is_a_connection_error(harness: Harness) -> None:
    agent = harness.agent()
    rec = Rec()
    conn = agent.amqp.openconnection("mqtt://127.0.0.1:1883", rec)
    harness.wait(agent, lambda: bool(rec.events), "CONNECTION_ERROR")
    assert not conn.isopen()
    assert rec.events == [("CONNECTION_ERROR", "amqp:invalid-field: unsupported URL scheme "
                                               "'mqtt'; use amqp:// or amqps://")]


def test_connection_refused(harness: Harness) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connect is refused
        agent = harness.agent()
        rec = Rec()
        conn = agent.amqp.openconnection(f"amqp://127.0.0.1:{port}", rec)
        harness.wait(agent, lambda: bool(rec.events), "CONNECTION_ERROR")
    assert rec.names() == ["CONNECTION_ERROR"] and not conn.isopen()
    assert "Connection refused" in rec.detail("CONNECTION_ERROR")


def test_unresolvable_host_is_a_connection_error_naming_it(harness: Harness,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    agent = harness.agent()
    rec = Rec()
    conn = agent.amqp.openconnection("amqp://no-such-broker.invalid:5672", rec)
    harness.wait(agent, lambda: bool(rec.events), "CONNECTION_ERROR")
    assert rec.names() == ["CONNECTION_ERROR"] and not conn.isopen()
    detail = rec.detail("CONNECTION_ERROR")
    assert detail.startswith("amqp:connection:forced: cannot resolve")
    assert "'no-such-broker.invalid'" in detail
    assert not any(record.exc_info for record in caplog.records)  # no crash traceback


def test_connect_timeout_when_the_peer_never_speaks(harness: Harness) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        agent = harness.agent(connect_timeout=0.5)
        rec = Rec()
        started = time.monotonic()
        conn = agent.amqp.openconnection(f"amqp://127.0.0.1:{silent.getsockname()[1]}", rec)
        harness.wait(agent, lambda: bool(rec.events), "CONNECTION_ERROR")
        elapsed = time.monotonic() - started
    assert rec.names() == ["CONNECTION_ERROR"]
    assert "within 0.5 s (amqp.connect_timeout)" in rec.detail("CONNECTION_ERROR")
    assert 0.4 < elapsed < 3 and not conn.isopen()
    assert conn._core.backend.wait_closed(5)  # the reactor thread is gone


def test_idle_timeout_ends_a_silent_connection(harness: Harness) -> None:
    proxy = TcpProxy(PORT, chunk=65536)
    try:
        agent = harness.agent(idle_timeout=1.0)
        conn, conn_rec, session, session_rec = harness.open(agent,
                                                            proxy.url("amqp", "guest:guest"))
        proxy.stall()  # the broker's heartbeats stop arriving
        started = time.monotonic()
        harness.wait(agent, lambda: conn_rec.has("CONNECTION_ERROR"), "idle time-out")
        elapsed = time.monotonic() - started
    finally:
        proxy.close()
    assert conn_rec.detail("CONNECTION_ERROR") == \
        "amqp:resource-limit-exceeded: local-idle-timeout expired"
    assert 0.2 < elapsed < 4  # not at once: only after a silent interval
    assert session_rec.names() == ["SESSION_OPEN", "SESSION_CLOSED"]
    assert not conn.isopen() and not session.isopen()


def test_network_loss_closes_the_tree_then_reports_connection_error(harness: Harness) -> None:
    proxy = TcpProxy(PORT, chunk=65536)
    try:
        agent = harness.agent()
        order: list[tuple[str, bool]] = []
        holder: list = []
        conn = agent.amqp.openconnection(proxy.url("amqp", "guest:guest"),
                                         lambda e, d: order.append((e, holder[0].isopen())))
        holder.append(conn)
        harness.wait(agent, conn.isopen, "open")
        session = conn.opensession()
        path = queue_address("loss")
        sender = session.opensender(path)
        receiver = session.openreceiver(path, None, lambda ds: None)
        harness.wait(agent, lambda: sender.isopen() and receiver.isopen(), "links")
        slot = conn._core.backend._reactor
        assert slot in slot.reactor.slots  # on one of the process's shared reactors
        assert proxy.cut_all() == 1
        harness.wait(agent, lambda: any(e == "CONNECTION_ERROR" for e, _ in order), "loss")
    finally:
        proxy.close()
    names = [e for e, _ in order]
    assert names[-4:-1] in (["SENDER_CLOSED", "RECEIVER_CLOSED", "SESSION_CLOSED"],
                            ["RECEIVER_CLOSED", "SENDER_CLOSED", "SESSION_CLOSED"])
    assert names[-1] == "CONNECTION_ERROR" and all(not open_ for _, open_ in order[-4:])
    assert conn._core.backend.wait_closed(5)
    assert slot not in slot.reactor.slots  # the lost connection left its reactor


def test_close_releases_the_connection_and_adds_no_thread(harness: Harness) -> None:
    """Connections share a few reactor threads: closing one leaves its reactor, and opening
    more adds no thread (before: a reactor thread per connection)."""
    agent = harness.agent()
    threads_after_first: set[str] | None = None
    for _ in range(3):
        conn, conn_rec, _, _ = harness.open(agent, URL)
        slot = conn._core.backend._reactor
        assert slot in slot.reactor.slots and slot.reactor.on_reactor_thread() is False
        assert slot.reactor._thread.name.startswith("bridge-amqp-")
        conn.close()
        harness.wait(agent, lambda rec=conn_rec: rec.has("CONNECTION_CLOSED"),
                     "CONNECTION_CLOSED")
        assert conn._core.backend.wait_closed(5)
        assert slot not in slot.reactor.slots
        names = {t.name for t in threading.enumerate()}
        if threads_after_first is None:
            threads_after_first = names
        assert names <= threads_after_first
