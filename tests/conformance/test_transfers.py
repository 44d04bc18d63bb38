"""Statements about transfers, credit and cancel (imp-amqp-api.md §6)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import ClosedError, Transfer

from .harness import Ctx, Recorder, deviates
from .profiles.base import Unsupported


def test_35_createtransfer_sends_nothing(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "create35")
    idle = pipe.sender.createtransfer(agent.amqp.createmessage("never"))
    assert isinstance(idle, Transfer)
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("sent"))
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")
    ctx.settle_briefly(agent)
    assert [m.body() for m in pipe.messages] == ["sent"]


def test_36_sendasync_returns_none_and_calls_back_without_arguments(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "send36")
    calls: list[tuple[Any, ...]] = []
    result = pipe.sender.createtransfer(agent.amqp.createmessage("x")).sendasync(
        lambda *args: calls.append(args))
    assert result is None
    assert calls == []  # never inside the call
    ctx.wait(agent, lambda: bool(calls), "sendasync callback")
    assert calls == [()]
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")


def test_36_sendasync_without_callback(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "nocb36")
    pipe.sender.createtransfer(agent.amqp.createmessage("x")).sendasync()
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")


def test_37_transfer_waits_for_credit(ctx: Ctx) -> None:
    if deviates(ctx, 37):
        return
    path = ctx.profile.address("credit37")
    try:
        overrides = ctx.profile.starve_credit(path)
    except Unsupported:
        pytest.fail(f"{ctx.profile.name} must implement starve_credit or pin deviation 37")
    agent = ctx.agent(**overrides)
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    sender, _ = ctx.sender(agent, session, path)
    done: list[str] = []
    sender.createtransfer(agent.amqp.createmessage("first")).sendasync(
        lambda: done.append("first"))
    ctx.wait(agent, lambda: done == ["first"], "first transfer (credit available)")
    sender.createtransfer(agent.amqp.createmessage("second")).sendasync(
        lambda: done.append("second"))
    ctx.settle_briefly(agent)
    assert done == ["first"], "second transfer completed without credit"
    received: list[str] = []

    def take(deliveries: list) -> None:
        for delivery in deliveries:
            received.append(delivery.message().body())
            delivery.accept()

    receiver, _ = ctx.receiver(agent, session, path, take)
    ctx.wait(agent, lambda: done == ["first", "second"] and len(received) == 2,
             "credit after the receiver drained the queue")
    assert received == ["first", "second"] and receiver.isopen()


def test_38_transfer_is_sent_once(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "once38")
    transfer = pipe.sender.createtransfer(agent.amqp.createmessage("x"))
    transfer.sendasync()
    with pytest.raises(ClosedError, match="already sent"):
        transfer.sendasync()
    cancelled = pipe.sender.createtransfer(agent.amqp.createmessage("y"))
    cancelled.cancel()
    with pytest.raises(ClosedError):
        cancelled.sendasync()
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")


def test_39_cancel_before_the_sender_opens(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    path = ctx.profile.address("cancel39")
    received: list[str] = []
    receiver, _ = ctx.receiver(agent, session, path,
                               lambda ds: received.extend(d.message().body() for d in ds))
    sender_rec = Recorder("sender")
    sender = session.opensender(path, sender_rec)
    fired: list[str] = []
    doomed = sender.createtransfer(agent.amqp.createmessage("cancelled"))
    doomed.sendasync(lambda: fired.append("cancelled"))  # queued: the sender is not open yet
    doomed.cancel()
    doomed.cancel()  # idempotent
    sender.createtransfer(agent.amqp.createmessage("kept")).sendasync(lambda: fired.append("kept"))
    ctx.wait(agent, lambda: "kept" in received and fired == ["kept"], "kept message")
    ctx.settle_briefly(agent)
    assert received == ["kept"] and fired == ["kept"]
    assert receiver.isopen()


def test_39_cancel_while_waiting_for_credit(ctx: Ctx) -> None:
    if deviates(ctx, 39):
        return
    path = ctx.profile.address("cancel39credit")
    try:
        overrides = ctx.profile.starve_credit(path)
    except Unsupported:
        pytest.fail(f"{ctx.profile.name} must implement starve_credit or pin deviation 39")
    agent = ctx.agent(**overrides)
    conn, _ = ctx.connect(agent)
    session, _ = ctx.session(agent, conn)
    sender, _ = ctx.sender(agent, session, path)
    fired: list[str] = []
    sender.createtransfer(agent.amqp.createmessage("first")).sendasync(
        lambda: fired.append("first"))
    ctx.wait(agent, lambda: fired == ["first"], "first transfer")
    waiting = sender.createtransfer(agent.amqp.createmessage("cancelled"))
    waiting.sendasync(lambda: fired.append("cancelled"))
    ctx.settle_briefly(agent)
    waiting.cancel()
    received: list[str] = []
    receiver, _ = ctx.receiver(agent, session, path,
                               lambda ds: received.extend(d.message().body() for d in ds))
    sender.createtransfer(agent.amqp.createmessage("marker")).sendasync()
    ctx.wait(agent, lambda: "marker" in received, "marker")
    assert received == ["first", "marker"] and fired == ["first"]
    assert receiver.isopen()


def test_sender_queue_before_open_is_sent_in_order(ctx: Ctx) -> None:
    agent = ctx.agent()
    conn = agent.amqp.openconnection(ctx.profile.url(), Recorder())
    session = conn.opensession()
    path = ctx.profile.address("order")
    received: list[str] = []

    def take(deliveries: list) -> None:
        received.extend(d.message().body() for d in deliveries)

    receiver = session.openreceiver(path, None, take)
    ctx.wait(agent, lambda: receiver.isopen(), "receiver")
    sender = session.opensender(path)
    for i in range(20):  # before SENDER_OPEN: queued by the contract, sent in order on open
        sender.createtransfer(agent.amqp.createmessage(f"m{i:02d}")).sendasync()
    ctx.wait(agent, lambda: len(received) == 20, "20 messages")
    assert received == [f"m{i:02d}" for i in range(20)]
