"""Statements about connections, events in general, limits and closing (imp-amqp-api.md §6)."""

from __future__ import annotations

import gc

import pytest

from bridge import Agent, ClosedError, Connection, FeatureDisabledError, LimitError
from bridge.events import ALL_EVENTS

from .harness import Ctx, Recorder, deviates
from .profiles.base import Unsupported


def test_01_openconnection_returns_at_once_closed_until_open(ctx: Ctx) -> None:
    agent = ctx.agent()
    holder: list[Connection] = []
    rec = Recorder("connection", observe=lambda: holder[0].isopen())
    conn = agent.amqp.openconnection(ctx.profile.url(), rec)
    holder.append(conn)
    assert isinstance(conn, Connection)
    assert conn.isopen() is False
    assert rec.events == []
    ctx.wait(agent, lambda: rec.has("CONNECTION_OPEN"), "CONNECTION_OPEN")
    assert rec.observed == [True]  # isopen() is already true inside the OPEN callback
    assert conn.isopen() is True


def test_02_open_delivers_connection_open_exactly_once(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, rec = ctx.connect(agent)
    # drive more traffic through the connection callback, then count
    session = conn.opensession()
    ctx.wait(agent, lambda: rec.has("SESSION_OPEN"), "SESSION_OPEN")
    assert session.isopen()
    assert rec.events[0] == ("CONNECTION_OPEN", None)
    assert rec.count("CONNECTION_OPEN") == 1


def test_03_failed_open_reports_connection_error(ctx: Ctx) -> None:
    try:
        settings, url = ctx.profile.failing_open()
    except Unsupported:
        pytest.fail(f"{ctx.profile.name} profile must provide failing_open")
    agent = Agent(settings)
    ctx.agents.append(agent)
    rec = Recorder()
    conn = agent.amqp.openconnection(url, rec)
    ctx.wait(agent, lambda: rec.has("CONNECTION_ERROR"), "CONNECTION_ERROR")
    detail = rec.detail("CONNECTION_ERROR")
    assert isinstance(detail, str) and detail
    assert conn.isopen() is False
    assert not rec.has("CONNECTION_OPEN")


def test_04_05_events_are_the_twelve_strings_with_detail_rules(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, rec = ctx.connect(agent)
    session = conn.opensession()
    path = ctx.profile.address("events")
    receiver = session.openreceiver(path, None, lambda ds: None)
    sender = session.opensender(path)
    ctx.wait(agent, lambda: rec.has("SENDER_OPEN") and rec.has("RECEIVER_OPEN"), "links")
    assert receiver.isopen() and sender.isopen()
    conn.close()
    ctx.wait(agent, lambda: rec.has("CONNECTION_CLOSED"), "CONNECTION_CLOSED")
    settings, url = ctx.profile.failing_open()
    bad_agent = Agent(settings)
    ctx.agents.append(bad_agent)
    bad = Recorder()
    bad_conn = bad_agent.amqp.openconnection(url, bad)  # keep it: dropping it closes it
    ctx.wait(bad_agent, lambda: bad.has("CONNECTION_ERROR"), "CONNECTION_ERROR")
    assert not bad_conn.isopen()
    for event, detail in rec.events + bad.events:
        assert isinstance(event, str) and event in ALL_EVENTS
        if event.endswith("_ERROR"):
            assert isinstance(detail, str) and detail
        else:
            assert detail is None, (event, detail)


def test_10_no_event_fires_inside_open_calls(ctx: Ctx) -> None:
    agent = ctx.agent()
    inside = [False]
    violations: list[str] = []

    def watch(event: str, detail: str | None) -> None:
        if inside[0]:
            violations.append(event)
        if event == "CONNECTION_OPEN":
            inside[0] = True
            session = conn.opensession(watch)
            inside[0] = False
            holder.append(session)
        elif event == "SESSION_OPEN":
            inside[0] = True
            holder.append(holder[0].opensender(path, watch))
            holder.append(holder[0].openreceiver(path, watch, lambda ds: None))
            inside[0] = False

    holder: list = []
    path = ctx.profile.address("inside")
    inside[0] = True
    conn = agent.amqp.openconnection(ctx.profile.url(), watch)
    inside[0] = False
    ctx.wait(agent, lambda: len(holder) == 3 and holder[1].isopen() and holder[2].isopen(),
             "sender and receiver open")
    assert violations == []


def test_11_fifth_connection_hits_the_limit(ctx: Ctx) -> None:
    agent = ctx.agent()
    conns = [agent.amqp.openconnection(ctx.profile.url(), Recorder()) for _ in range(4)]
    with pytest.raises(LimitError, match="max connection limit reached") as info:
        agent.amqp.openconnection(ctx.profile.url(), Recorder())
    assert isinstance(info.value, RuntimeError)
    conns[0].close()  # closing frees a slot
    conns.append(agent.amqp.openconnection(ctx.profile.url(), Recorder()))
    assert len(conns) == 5


def test_14_feature_gate_off_makes_every_amqp_call_raise(ctx: Ctx) -> None:
    agent = ctx.agent(amqp_enabled=False)
    amqp = agent.amqp
    for call in (lambda: amqp.openconnection(ctx.profile.url(), Recorder()),
                 lambda: amqp.createmessage("x"),
                 lambda: amqp.createbinarymessage(b"x")):
        with pytest.raises(FeatureDisabledError) as info:
            call()
        assert isinstance(info.value, RuntimeError)


def test_40_connection_close_is_immediate_and_object_survives(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, rec = ctx.connect(agent)
    assert conn.close() is None
    assert conn.isopen() is False
    assert conn is not None
    with pytest.raises(ClosedError, match="Connection"):
        conn.opensession()
    conn.close()  # closing twice is a no-op
    ctx.wait(agent, lambda: rec.has("CONNECTION_CLOSED"), "CONNECTION_CLOSED")
    assert rec.count("CONNECTION_CLOSED") == 1


def test_43_dropping_last_reference_closes_on_the_broker(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    path = ctx.profile.address("dropped")
    receiver, _ = ctx.receiver(agent, session, path, lambda ds: None)
    sender, _ = ctx.sender(agent, session, path)
    cores = [receiver._core, sender._core, session._core, conn._core]
    # every profile can ask its broker (no silent skip): the receiver is attached there ...
    assert ctx.profile.attached_receivers(agent, path) == 1
    del receiver, sender, session, conn
    gc.collect()
    ctx.wait(agent, lambda: all(core.state == 2 for core in cores), "objects closed by GC")
    # ... and is not once the last reference is gone
    ctx.wait(agent, lambda: ctx.profile.attached_receivers(agent, path) == 0,
             "broker sees the receiver detached")


def test_44_closed_session_cannot_reopen_new_one_is_distinct(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    first, _ = ctx.session(agent, conn)
    first.close()
    assert first.isopen() is False
    with pytest.raises(ClosedError):
        first.opensender(ctx.profile.address("x"))
    second, _ = ctx.session(agent, conn)
    assert second is not first and second.isopen() and not first.isopen()


def test_46_connection_loss_closes_sessions_after_connection(ctx: Ctx) -> None:
    if deviates(ctx, 46):
        return
    agent = ctx.agent()
    holder: list = []
    conn_rec = Recorder("connection")
    session_rec = Recorder("session", observe=lambda: holder[0].isopen())
    conn = agent.amqp.openconnection(ctx.profile.url(), conn_rec)
    holder.append(conn)
    ctx.wait(agent, lambda: conn_rec.has("CONNECTION_OPEN"), "CONNECTION_OPEN")
    sessions = [conn.opensession(session_rec) for _ in range(2)]
    ctx.wait(agent, lambda: session_rec.count("SESSION_OPEN") == 2, "two sessions open")
    try:
        ctx.profile.drop_connection(agent)
    except Unsupported:
        pytest.fail(f"{ctx.profile.name} must implement drop_connection or pin deviation 46")
    ctx.wait(agent, lambda: session_rec.count("SESSION_CLOSED") == 2
             and conn_rec.has("CONNECTION_ERROR"), "SESSION_CLOSED on every session")
    assert session_rec.observed[-2:] == [False, False]  # connection already closed
    assert not conn.isopen() and not any(s.isopen() for s in sessions)


def test_47_anonymous_url_connects_and_cbs_put_token_answers(ctx: Ctx) -> None:
    if deviates(ctx, 47):
        return
    agent = ctx.agent()
    conn, _ = ctx.connect(agent, url=ctx.profile.anonymous_url())
    if not ctx.profile.supports_cbs:
        assert conn.isopen()
        return
    session, _ = ctx.session(agent, conn)
    replies: list = []

    def on_reply(deliveries: list) -> None:
        for delivery in deliveries:
            delivery.accept()
            replies.append(delivery.message().properties())

    cbs_receiver, _ = ctx.receiver(agent, session, "$cbs", on_reply)
    sender, _ = ctx.sender(agent, session, "$cbs")
    token = agent.amqp.createmessage("SharedAccessSignature sr=x&sig=y&se=1", {
        "operation": "put-token", "type": "azure-devices.net:sastoken",
        "name": "bridge-conformance.example/devices/d1"})
    sender.createtransfer(token).sendasync()
    ctx.wait(agent, lambda: bool(replies), "CBS reply")
    assert cbs_receiver.isopen()
    assert replies[0]["status-code"] == 200 and isinstance(replies[0]["status-code"], int)
    assert replies[0]["status-description"] == "OK"


def test_48_no_options_argument(ctx: Ctx) -> None:
    agent = ctx.agent()
    with pytest.raises(TypeError):
        agent.amqp.openconnection(ctx.profile.url(), Recorder(), {"idle": 1})  # type: ignore[call-arg]
    conn, _ = ctx.connect(agent)
    with pytest.raises(TypeError):
        conn.opensession(Recorder(), {"x": 1})  # type: ignore[call-arg]
