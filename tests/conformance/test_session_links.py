"""Statements about sessions, senders, receivers and event routing (imp-amqp-api.md §6)."""

from __future__ import annotations

import pytest

from bridge import ClosedError, LimitError, Receiver, Sender, Session

from .harness import Ctx, Recorder, deviates
from .profiles.base import Unsupported


def test_06_opensession_closed_until_session_open(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    holder: list[Session] = []
    rec = Recorder("session", observe=lambda: holder[0].isopen())
    session = conn.opensession(rec)
    holder.append(session)
    assert isinstance(session, Session) and session.isopen() is False
    ctx.wait(agent, lambda: rec.has("SESSION_OPEN"), "SESSION_OPEN")
    assert rec.observed == [True] and session.isopen() is True


def test_07_session_without_callback_reports_to_connection(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, conn_rec = ctx.connect(agent)
    session = conn.opensession()
    ctx.wait(agent, lambda: conn_rec.has("SESSION_OPEN"), "SESSION_OPEN on connection cb")
    assert session.isopen()
    explicit_none = conn.opensession(None)
    ctx.wait(agent, lambda: conn_rec.count("SESSION_OPEN") == 2, "second SESSION_OPEN")
    assert explicit_none.isopen()


def test_08_09_child_callback_gets_its_events_once(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, conn_rec = ctx.connect(agent)
    session_rec = Recorder("session")
    session = conn.opensession(session_rec)
    ctx.wait(agent, lambda: session_rec.has("SESSION_OPEN"), "SESSION_OPEN on session cb")
    path = ctx.profile.address("routing")
    sender_rec = Recorder("sender")
    sender = session.opensender(path, sender_rec)
    ctx.wait(agent, lambda: sender_rec.has("SENDER_OPEN"), "SENDER_OPEN")
    session.close()
    ctx.wait(agent, lambda: session_rec.has("SESSION_CLOSED"), "SESSION_CLOSED")
    assert session_rec.names() == ["SESSION_OPEN", "SESSION_CLOSED"]
    assert sender_rec.names() == ["SENDER_OPEN", "SENDER_CLOSED"]
    assert conn_rec.names() == ["CONNECTION_OPEN"]  # nothing copied to the connection
    assert not sender.isopen()


def test_09_option_also_notifies_connection(ctx: Ctx) -> None:
    agent = ctx.agent(routing={"also_notify_connection": True})
    conn, conn_rec = ctx.connect(agent)
    session_rec = Recorder("session")
    session = conn.opensession(session_rec)  # keep it: dropping it closes it
    ctx.wait(agent, lambda: conn_rec.has("SESSION_OPEN"), "copy on the connection cb")
    assert session_rec.names() == ["SESSION_OPEN"] and session.isopen()


def test_12_seventeenth_session_hits_the_limit(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    sessions = [conn.opensession() for _ in range(16)]
    with pytest.raises(LimitError, match="max session limit reached"):
        conn.opensession()
    sessions[0].close()
    sessions.append(conn.opensession())


def test_13_sixty_fifth_link_hits_the_limit(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    path = ctx.profile.address("limit")
    links = [session.opensender(path) for _ in range(32)]
    links += [session.openreceiver(path, None, lambda ds: None) for _ in range(32)]
    with pytest.raises(LimitError, match="max link limit reached"):
        session.opensender(path)
    with pytest.raises(LimitError, match="max link limit reached"):
        session.openreceiver(path)
    links[0].close()
    links.append(session.openreceiver(path))


def test_13_limits_are_configurable(ctx: Ctx) -> None:
    agent = ctx.agent(limits={"connections": 1, "sessions": 1, "links": 1})
    conn, _ = ctx.connect(agent)
    with pytest.raises(LimitError):
        agent.amqp.openconnection(ctx.profile.url(), Recorder())
    session = conn.opensession()
    with pytest.raises(LimitError):
        conn.opensession()
    session.opensender(ctx.profile.address("x"))
    with pytest.raises(LimitError):
        session.opensender(ctx.profile.address("y"))


def test_15_16_links_closed_until_their_open_event(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    path = ctx.profile.address("links")
    holder: list = []
    sender_rec = Recorder("sender", observe=lambda: holder[0].isopen())
    receiver_rec = Recorder("receiver", observe=lambda: holder[1].isopen())
    sender = session.opensender(path, sender_rec)
    receiver = session.openreceiver(path, receiver_rec, lambda ds: None)
    holder += [sender, receiver]
    assert isinstance(sender, Sender) and isinstance(receiver, Receiver)
    assert sender.isopen() is False and receiver.isopen() is False
    ctx.wait(agent, lambda: sender_rec.has("SENDER_OPEN") and receiver_rec.has("RECEIVER_OPEN"),
             "links open")
    assert sender_rec.observed == [True] and receiver_rec.observed == [True]


def test_17_cbs_and_device_paths_are_accepted(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    recs = []
    links = []
    for path in ("$cbs", "/devices/x/messages/events"):
        s_rec, r_rec = Recorder("sender"), Recorder("receiver")
        links.append(session.opensender(path, s_rec))
        links.append(session.openreceiver(path, r_rec, lambda ds: None))
        recs += [s_rec, r_rec]
    ctx.wait(agent, lambda: all(r.events for r in recs), "an answer for every link")
    if ctx.profile.opens_any_path:
        assert [r.names()[0] for r in recs] == ["SENDER_OPEN", "RECEIVER_OPEN"] * 2
    else:  # the broker decides; the answer is an event, never an exception at the call
        assert all(r.names()[0].endswith(("_OPEN", "_ERROR")) for r in recs), \
            [r.names() for r in recs]


def test_41_session_and_sender_close(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, session_rec = ctx.session(agent, conn)
    sender, sender_rec = ctx.sender(agent, session, ctx.profile.address("close"))
    assert sender.close() is None and sender.isopen() is False
    with pytest.raises(ClosedError, match="Sender"):
        sender.createtransfer(agent.amqp.createmessage("x"))
    assert session.close() is None and session.isopen() is False
    with pytest.raises(ClosedError, match="Session"):
        session.opensender(ctx.profile.address("y"))
    ctx.wait(agent, lambda: session_rec.has("SESSION_CLOSED") and sender_rec.has("SENDER_CLOSED"),
             "closed events")
    assert conn.isopen()


def test_42_receiver_close(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    receiver, rec = ctx.receiver(agent, session, ctx.profile.address("rclose"), lambda ds: None)
    assert receiver.close() is None and receiver.isopen() is False
    ctx.wait(agent, lambda: rec.has("RECEIVER_CLOSED"), "RECEIVER_CLOSED")
    assert rec.names() == ["RECEIVER_OPEN", "RECEIVER_CLOSED"]


def test_cascade_children_closed_first_with_parent_already_closed(ctx: Ctx) -> None:
    agent = ctx.agent()
    holder: list = []
    order: list[tuple[str, bool]] = []
    conn = agent.amqp.openconnection(
        ctx.profile.url(), lambda e, d: order.append((e, holder[0].isopen())))
    holder.append(conn)
    ctx.wait(agent, lambda: conn.isopen(), "open")
    session = conn.opensession()
    path = ctx.profile.address("cascade")
    sender = session.opensender(path)
    receiver = session.openreceiver(path, None, lambda ds: None)
    ctx.wait(agent, lambda: sender.isopen() and receiver.isopen(), "links")
    order.clear()
    conn.close()
    ctx.wait(agent, lambda: ("CONNECTION_CLOSED", False) in order, "CONNECTION_CLOSED")
    names = [e for e, _ in order]
    assert names.index("SESSION_CLOSED") > max(names.index("SENDER_CLOSED"),
                                               names.index("RECEIVER_CLOSED"))
    assert names[-1] == "CONNECTION_CLOSED"
    assert all(open_ is False for _, open_ in order)


def test_45_peer_detach_with_error_reports_sender_error(ctx: Ctx) -> None:
    if deviates(ctx, 45):
        return
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    path = ctx.profile.address("detach")
    sender, rec = ctx.sender(agent, session, path)
    try:
        condition = ctx.profile.detach_with_error(agent, path)
    except Unsupported:
        pytest.fail(f"{ctx.profile.name} must implement detach_with_error or pin deviation 45")
    ctx.wait(agent, lambda: rec.has("SENDER_ERROR"), "SENDER_ERROR")
    assert condition in (rec.detail("SENDER_ERROR") or "")
    assert sender.isopen() is False


def test_argument_types_are_checked(ctx: Ctx) -> None:
    agent = ctx.agent()
    with pytest.raises(TypeError, match="url"):
        agent.amqp.openconnection(42, Recorder())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        agent.amqp.openconnection(ctx.profile.url(), "not callable")  # type: ignore[arg-type]
    conn, _ = ctx.connect(agent)
    with pytest.raises(TypeError, match="callback"):
        conn.opensession(5)  # type: ignore[arg-type]
    session, _ = ctx.session(agent, conn)
    with pytest.raises(TypeError, match="path"):
        session.opensender(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="messageCallback"):
        session.openreceiver(ctx.profile.address("x"), None, "nope")  # type: ignore[arg-type]
    sender, _ = ctx.sender(agent, session, ctx.profile.address("types"))
    with pytest.raises(TypeError, match="message"):
        sender.createtransfer("not a message")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        sender.createtransfer(agent.amqp.createmessage("x")).sendasync(3)  # type: ignore[arg-type]
