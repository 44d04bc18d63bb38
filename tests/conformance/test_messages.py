"""Statements about receiving, settlement, bodies and properties (imp-amqp-api.md §6)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import Delivery, Message
from bridge.events import ALL_EVENTS

from .harness import Ctx, Recorder, deviates
from .profiles.base import Unsupported


def _bodies(messages: list[Message]) -> list[Any]:
    return [m.body() for m in messages]


def test_18_messages_never_reach_lifecycle_callbacks(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "routing18")
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("hello"))
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")
    for rec in (pipe.conn_rec, pipe.receiver_rec, pipe.sender_rec):
        assert rec is not None
        assert all(event in ALL_EVENTS for event in rec.names())


def test_19_20_message_callback_gets_one_mutable_list(ctx: Ctx) -> None:
    agent = ctx.agent()
    calls: list[tuple[Any, ...]] = []
    taken: list[Message] = []

    def on_messages(*args: Any) -> None:
        calls.append(args)
        deliveries = args[0]
        while len(deliveries):  # the legacy library consumes the array with remove(0)
            delivery = deliveries.pop(0)
            taken.append(delivery.message())
            delivery.accept()

    pipe = ctx.pipe(agent, "list19", on_messages)
    for i in range(3):
        pipe.sender.createtransfer(agent.amqp.createmessage(f"m{i}")).sendasync()
    ctx.wait(agent, lambda: len(taken) == 3, "three messages")
    assert all(len(args) == 1 and isinstance(args[0], list) for args in calls)
    assert sorted(_bodies(taken)) == ["m0", "m1", "m2"]


def test_21_22_message_after_accept_and_settlement_returns_none(ctx: Ctx) -> None:
    agent = ctx.agent()
    results: list[Any] = []

    def on_messages(deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            assert isinstance(delivery, Delivery)
            results.append(delivery.accept())
            results.append(delivery.message())
            results.append(delivery.accept())  # settling twice is a no-op

    pipe = ctx.pipe(agent, "accept21", on_messages)
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("body21"))
    ctx.wait(agent, lambda: len(results) == 3, "settled delivery")
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Message) and results[1].body() == "body21"


def test_22_release_redelivers_and_reject_drops(ctx: Ctx) -> None:
    if deviates(ctx, 22):
        return
    agent = ctx.agent()
    seen: list[str] = []

    def on_messages(deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            body = delivery.message().body()
            seen.append(body)
            if body == "release-me" and seen.count(body) == 1:
                assert delivery.release() is None
            elif body == "reject-me":
                assert delivery.reject() is None
            else:
                delivery.accept()

    pipe = ctx.pipe(agent, "settle22", on_messages)
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("release-me"))
    ctx.wait(agent, lambda: seen.count("release-me") == 2, "redelivery after release")
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("reject-me"))
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("marker"))
    ctx.wait(agent, lambda: "marker" in seen, "marker after the rejected message")
    ctx.settle_briefly(agent)
    assert seen.count("reject-me") == 1


def test_23_unsettled_delivery_is_accepted_automatically(ctx: Ctx) -> None:
    agent = ctx.agent()
    seen: list[str] = []
    pipe = ctx.pipe(agent, "auto23", lambda ds: seen.extend(d.message().body() for d in ds))
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("auto"))
    ctx.wait(agent, lambda: seen == ["auto"], "delivery")
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("marker"))
    ctx.wait(agent, lambda: "marker" in seen, "marker")
    # reattach: an unsettled message would come back now
    pipe.receiver.close()
    again, _ = ctx.receiver(agent, pipe.session, pipe.path,
                            lambda ds: seen.extend(d.message().body() for d in ds))
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("marker2"))
    ctx.wait(agent, lambda: "marker2" in seen, "second marker")
    assert seen.count("auto") == 1
    assert again.isopen()


def test_24_held_delivery_can_be_settled_later(ctx: Ctx) -> None:
    if deviates(ctx, 24):
        return
    agent = ctx.agent()
    held: list[Delivery] = []
    seen: list[str] = []

    def on_messages(deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            seen.append(delivery.message().body())
            if len(seen) == 1:
                held.append(delivery)  # keep it: no auto-accept while referenced
                agent.imp.wakeup(0.05, lambda: held[0].release())
            else:
                delivery.accept()

    pipe = ctx.pipe(agent, "defer24", on_messages)
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("later"))
    ctx.wait(agent, lambda: len(seen) == 2, "redelivery after a deferred release")
    assert seen == ["later", "later"]
    assert held[0].settled


def test_25_31_value_and_data_bodies(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "bodies25")
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("text", {"k": "v"}))
    ctx.send(agent, pipe.sender, agent.amqp.createbinarymessage(b"\x00\x01\xff", {"k": 1}))
    ctx.send(agent, pipe.sender, agent.amqp.createbinarymessage('{"json": true}'))
    ctx.wait(agent, lambda: len(pipe.messages) == 3, "three messages")
    by_body = {repr(m.body()): m for m in pipe.messages}
    value = by_body["'text'"]
    assert value.kind == "value" and value.body() == "text"
    data = by_body[repr(b"\x00\x01\xff")]
    assert data.kind == "data" and isinstance(data.body(), bytes)
    assert by_body[repr(b'{"json": true}')].kind == "data"


def test_26_properties_are_optional(ctx: Ctx) -> None:
    agent = ctx.agent()
    msg = agent.amqp.createmessage("Hello!")
    assert msg.body() == "Hello!" and msg.properties() == {}
    assert agent.amqp.createbinarymessage("Hello!").body() == b"Hello!"


def test_27_29_property_types_end_to_end(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "props27")
    props = {"status-code": 200, "ratio": 0.5, "ok": True, "off": False, "name": "dev",
             "negative": -7, "big": 2**40, "list": [1, 2], "none": None}
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("p", props))
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")
    got = pipe.messages[0].properties()
    expected = {"status-code": 200, "ratio": 0.5, "ok": True, "off": False, "name": "dev",
                "negative": -7, "big": 2**40, "list": "[1, 2]", "none": "None"}
    assert got == expected
    for key, value in expected.items():
        assert type(got[key]) is type(value), key


def test_27_non_str_keys_are_rejected(ctx: Ctx) -> None:
    agent = ctx.agent()
    with pytest.raises(TypeError, match="keys must be str"):
        agent.amqp.createmessage("x", {1: "one"})
    with pytest.raises(TypeError, match="properties"):
        agent.amqp.createmessage("x", ["not", "a", "table"])


def test_28_no_properties_gives_empty_table(ctx: Ctx) -> None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "noprops28")
    ctx.send(agent, pipe.sender, agent.amqp.createbinarymessage(b"bare"))
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")
    assert pipe.messages[0].properties() == {}


def _injected(ctx: Ctx, case: str) -> Message | None:
    agent = ctx.agent()
    pipe = ctx.pipe(agent, case)
    try:
        ctx.profile.inject(agent, pipe.path, case)
    except Unsupported:
        return None
    ctx.wait(agent, lambda: len(pipe.messages) == 1, f"injected {case}")
    return pipe.messages[0]


def test_30_unconvertible_property_is_left_out(ctx: Ctx) -> None:
    if deviates(ctx, 30):
        return
    message = _injected(ctx, "unconvertible_property")
    assert message is not None, "profile must implement inject or pin deviation 30"
    assert message.properties() == {"ok": 1}


def test_32_unsupported_body_gives_warning_string(ctx: Ctx) -> None:
    if deviates(ctx, 32):
        return
    message = _injected(ctx, "unsupported_body")
    assert message is not None, "profile must implement inject or pin deviation 32"
    assert isinstance(message.body(), str)
    assert message.body().startswith("Unhandled message body type")


@pytest.mark.parametrize(("case", "expected"), [
    ("list_body", [1, "a"]), ("map_body", {"k": 1}), ("symbol_body", "sym")])
def test_33_list_map_symbol_bodies(ctx: Ctx, case: str, expected: Any) -> None:
    if deviates(ctx, 33):
        return
    message = _injected(ctx, case)
    assert message is not None, "profile must implement inject or pin deviation 33"
    assert message.body() == expected and type(message.body()) is type(expected)


def test_34_properties_table_is_a_copy(ctx: Ctx) -> None:
    agent = ctx.agent()
    local = agent.amqp.createmessage("x", {"a": 1})
    local.properties()["a"] = 2
    assert local.properties() == {"a": 1}
    source = {"a": 1}
    made = agent.amqp.createmessage("x", source)
    source["a"] = 3
    assert made.properties() == {"a": 1}
    pipe = ctx.pipe(agent, "copy34")
    ctx.send(agent, pipe.sender, made)
    ctx.wait(agent, lambda: len(pipe.messages) == 1, "message")
    received = pipe.messages[0]
    received.properties()["a"] = 99
    assert received.properties() == {"a": 1}


def test_recorder_sanity() -> None:
    rec = Recorder()
    rec("CONNECTION_OPEN", None)
    assert rec.has("CONNECTION_OPEN") and rec.count("CONNECTION_OPEN") == 1
