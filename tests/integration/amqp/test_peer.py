"""The backend against a raw proton peer: what RabbitMQ 3.10 cannot show.

A peer-initiated detach with an error (statement 45), attach refusal the AMQP way, rejected /
released / modified outcomes, a transfer that really waits for credit (37) and cancel while it
waits (39), an IoT-Hub-like ``$cbs`` put-token over amqps:// with SASL ANONYMOUS (47), TLS
verification, and bodies RabbitMQ mangles (an amqp-value list, a described value).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from proton import Delivery, Described, symbol
from proton import Message as ProtonMessage

from tests.support.mosquitto import make_tls_material

from .conftest import Harness, Rec
from .peer import AmqpPeer

pytestmark = pytest.mark.integration

EVENTS = "/devices/d1/messages/events"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_tls_material(tmp_path_factory.mktemp("amqp-tls"), "localhost")


def test_iothub_style_cbs_put_token_over_amqps_with_sasl_anonymous(
        harness: Harness, tls_files: tuple[Path, Path, Path]) -> None:
    ca, cert, key = tls_files
    with AmqpPeer(tls=(cert, key)) as peer:
        agent = harness.agent(ca_file=str(ca))
        conn, _, session, _ = harness.open(agent, peer.url(host="localhost"))
        replies: list[dict[str, Any]] = []

        def on_reply(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                delivery.accept()  # the legacy library accepts first, then reads
                replies.append(delivery.message().properties())

        _, r_rec = harness.link(agent, session, "receiver", "$cbs", on_reply)
        sender, s_rec = harness.link(agent, session, "sender", "$cbs")
        assert r_rec.names() == ["RECEIVER_OPEN"] and s_rec.names() == ["SENDER_OPEN"]
        token = agent.amqp.createmessage("SharedAccessSignature sr=hub%2Fdevices%2Fd1&sig=x", {
            "operation": "put-token", "type": "azure-devices.net:sastoken",
            "name": "localhost/devices/d1"})
        sender.createtransfer(token).sendasync()
        harness.wait(agent, lambda: bool(replies), "the CBS reply")
        events, e_rec = harness.link(agent, conn.opensession(), "sender", EVENTS)
        assert e_rec.names() == ["SENDER_OPEN"] and events.isopen()
        assert peer.wait_for(lambda seen: len(seen.dispositions) == 1)
    assert replies == [{"status-code": 200, "status-description": "OK"}]
    assert type(replies[0]["status-code"]) is int
    [info] = peer.seen.connections
    assert info["mech"] == "ANONYMOUS" and info["hostname"] == "localhost"
    # addresses arrive verbatim: no broker-specific rewriting
    assert ("receiver", "$cbs") in peer.seen.attaches and ("sender", "$cbs") in peer.seen.attaches
    assert ("sender", EVENTS) in peer.seen.attaches
    [request] = peer.seen.messages["$cbs"]
    assert request.inferred is False and request.body.startswith("SharedAccessSignature ")
    assert request.properties == {"operation": "put-token", "type": "azure-devices.net:sastoken",
                                  "name": "localhost/devices/d1"}
    assert peer.seen.dispositions == [("$cbs", Delivery.ACCEPTED)]


def test_tls_verification_is_on_by_default(harness: Harness,
                                           tls_files: tuple[Path, Path, Path]) -> None:
    _, cert, key = tls_files
    with AmqpPeer(tls=(cert, key)) as peer:
        agent = harness.agent()  # the system store does not know the test CA
        rec = Rec()
        refused = agent.amqp.openconnection(peer.url(host="localhost"), rec)
        harness.wait(agent, lambda: bool(rec.events), "CONNECTION_ERROR")
        assert rec.names() == ["CONNECTION_ERROR"] and not refused.isopen()
        assert "certificate verify failed" in rec.detail("CONNECTION_ERROR")
        lax = harness.agent(verify=False)
        conn, *_ = harness.open(lax, peer.url(host="localhost"), session=False)
        assert conn.isopen()


def test_peer_detach_with_error_is_sender_error_with_condition(harness: Harness) -> None:
    with AmqpPeer() as peer:
        agent = harness.agent()
        conn, conn_rec, session, session_rec = harness.open(agent, peer.url())
        sender, rec = harness.link(agent, session, "sender", EVENTS)
        peer.detach(EVENTS, "amqp:unauthorized-access", "token expired")
        harness.wait(agent, lambda: rec.has("SENDER_ERROR"), "SENDER_ERROR")
        assert rec.events == [("SENDER_OPEN", None),
                              ("SENDER_ERROR", "amqp:unauthorized-access: token expired")]
        assert not sender.isopen() and session.isopen() and conn.isopen()
        assert session_rec.names() == ["SESSION_OPEN"] and conn_rec.names() == ["CONNECTION_OPEN"]
        again, again_rec = harness.link(agent, session, "sender", EVENTS)  # reopen after a token
        assert again_rec.names() == ["SENDER_OPEN"] and again.isopen()


def test_refused_attach_is_a_link_error(harness: Harness) -> None:
    with AmqpPeer(refuse={"/nowhere": ("amqp:not-found", "no such node")}) as peer:
        agent = harness.agent()
        _, _, session, session_rec = harness.open(agent, peer.url())
        sender, s_rec = harness.link(agent, session, "sender", "/nowhere")
        receiver, r_rec = harness.link(agent, session, "receiver", "/nowhere")
    assert s_rec.events == [("SENDER_ERROR", "amqp:not-found: no such node")]
    assert r_rec.events == [("RECEIVER_ERROR", "amqp:not-found: no such node")]
    assert not sender.isopen() and not receiver.isopen()
    assert session_rec.names() == ["SESSION_OPEN"]


def test_outcomes_other_than_accepted_are_sender_errors(harness: Harness) -> None:
    def outcome(message: ProtonMessage) -> Any:
        return {"reject": ("rejected", "amqp:unauthorized-access", "bad token"),
                "release": "released", "modify": "modified"}.get(message.body, "accepted")

    with AmqpPeer(outcomes={EVENTS: outcome}) as peer:
        agent = harness.agent()
        _, _, session, _ = harness.open(agent, peer.url())
        sender, rec = harness.link(agent, session, "sender", EVENTS)
        fired: list[str] = []
        for body in ("reject", "release", "modify", "ok"):
            sender.createtransfer(agent.amqp.createmessage(body)).sendasync(
                lambda body=body: fired.append(body))
        harness.wait(agent, lambda: fired == ["ok"] and rec.names().count("SENDER_ERROR") == 3,
                     "three failures and one success")
        assert sender.isopen()  # a failed transfer leaves the sender open
    # the peer's dispositions may come in any order (proton coalesces them by outcome)
    assert sorted(detail for event, detail in rec.events if event == "SENDER_ERROR") == [
        "modified: not delivered (delivery-failed, undeliverable-here)",
        "rejected: amqp:unauthorized-access: bad token",
        "released: the peer did not take the message"]


def test_transfer_waits_for_credit_and_cancel_while_waiting(harness: Harness) -> None:
    with AmqpPeer(credit=0) as peer:
        agent = harness.agent()
        _, _, session, _ = harness.open(agent, peer.url())
        sender, _ = harness.link(agent, session, "sender", EVENTS)
        fired: list[str] = []
        for body in ("first", "cancelled", "second"):
            transfer = sender.createtransfer(agent.amqp.createmessage(body))
            transfer.sendasync(lambda body=body: fired.append(body))
            if body == "cancelled":
                transfer.cancel()
        agent.run(timeout=0.3)
        assert fired == [] and peer.messages(EVENTS) == []  # no credit: nothing moves
        peer.grant(EVENTS, 1)
        harness.wait(agent, lambda: fired == ["first"], "first, with one credit")
        agent.run(timeout=0.2)
        assert [m.body for m in peer.messages(EVENTS)] == ["first"]
        peer.grant(EVENTS, 5)
        harness.wait(agent, lambda: fired == ["first", "second"], "second")
        assert [m.body for m in peer.messages(EVENTS)] == ["first", "second"]


def test_received_outcomes_reach_the_peer_and_credit_comes_back(harness: Harness) -> None:
    with AmqpPeer() as peer:
        agent = harness.agent(prefetch=1)
        _, _, session, _ = harness.open(agent, peer.url())
        bodies: list[Any] = []

        def settle(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                body = delivery.message().body()
                bodies.append(body)
                {"a": delivery.accept, "r": delivery.reject, "l": delivery.release}[body[0]]()

        receiver, _ = harness.link(agent, session, "receiver", "/c2d", settle)
        for body in ("accept", "reject", "l-release"):
            peer.send("/c2d", ProtonMessage(body=body))
        harness.wait(agent, lambda: len(bodies) == 3, "three deliveries with credit 1")
        assert peer.wait_for(lambda seen: len(seen.dispositions) == 3) and receiver.isopen()
    assert [state for _, state in peer.seen.dispositions] == [
        Delivery.ACCEPTED, Delivery.REJECTED, Delivery.RELEASED]


def test_bodies_rabbitmq_cannot_carry(harness: Harness) -> None:
    with AmqpPeer() as peer:
        agent = harness.agent()
        _, _, session, _ = harness.open(agent, peer.url())
        got: list[Any] = []
        receiver, _ = harness.link(agent, session, "receiver", "/c2d",
                     lambda ds: got.extend(d.message() for d in ds))
        peer.send("/c2d", ProtonMessage(body=[1, "a", symbol("s")]))  # amqp-value list
        peer.send("/c2d", ProtonMessage(body=Described(symbol("x:y"), "v")))
        peer.send("/c2d", ProtonMessage(body=None))  # no body section at all
        harness.wait(agent, lambda: len(got) == 3, "three messages")
        assert receiver.isopen()
    assert got[0].body() == [1, "a", "s"]
    assert got[1].body() == "Unhandled message body type described"
    assert got[2].body() is None and got[2].properties() == {}


def test_peer_closing_the_connection_with_an_error(harness: Harness) -> None:
    with AmqpPeer() as peer:
        agent = harness.agent()
        conn, conn_rec, _, session_rec = harness.open(agent, peer.url())
        peer.close_connections("amqp:connection:forced", "maintenance")
        harness.wait(agent, lambda: conn_rec.has("CONNECTION_ERROR"), "CONNECTION_ERROR")
    assert conn_rec.events[-1] == ("CONNECTION_ERROR", "amqp:connection:forced: maintenance")
    assert session_rec.names() == ["SESSION_OPEN", "SESSION_CLOSED"] and not conn.isopen()
