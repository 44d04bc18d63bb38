"""Sending window, offline buffer, routing and settlement of the MQTT backend, with a fake client.

These are the driver-thread halves (`Outbound`, `Inbox`) fed by hand: no broker, no threads.
The real broker is exercised in tests/integration/mqtt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from bridge.contract.backend import Outcome
from bridge.contract.message import BodyKind, Message
from bridge.engines.mqtt.inbound import InboundOptions, Inbox, Token
from bridge.engines.mqtt.outbound import Outbound, Outgoing
from bridge.engines.mqtt.stats import Stats


@dataclass
class Info:
    mid: int
    rc: int = paho.MQTT_ERR_SUCCESS


class FakeClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int]] = []
        self.subscribed: list[tuple[str, int, Any]] = []
        self.unsubscribed: list[str] = []
        self.acks: list[tuple[int, int]] = []
        self.next_mid = 0
        self.publish_rc = paho.MQTT_ERR_SUCCESS
        self.on_publish: Callable[[int], None] | None = None  # QoS 0: confirmed inside publish

    def _mid(self) -> int:
        self.next_mid += 1
        return self.next_mid

    def publish(self, topic: str, payload: bytes, qos: int, properties: Any) -> Info:
        mid = self._mid()
        self.published.append((topic, payload, qos))
        if self.on_publish is not None:
            self.on_publish(mid)
        return Info(mid, self.publish_rc)

    def subscribe(self, topic: str, qos: int, properties: Any) -> tuple[int, int]:
        sub_id = getattr(properties, "SubscriptionIdentifier", [None])[0]
        self.subscribed.append((topic, qos, sub_id))
        return paho.MQTT_ERR_SUCCESS, self._mid()

    def unsubscribe(self, topic: str) -> tuple[int, int]:
        self.unsubscribed.append(topic)
        return paho.MQTT_ERR_SUCCESS, self._mid()

    def ack(self, mid: int, qos: int) -> int:
        self.acks.append((mid, qos))
        return paho.MQTT_ERR_SUCCESS


@dataclass
class Events:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: self.calls.append((name, args))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[Any]:
        return [args for n, args in self.calls if n == name]


@dataclass
class Transfer:
    id: int


@dataclass
class Link:
    id: int
    path: str = "/p"
    role: str = "receiver"
    session: Any = None
    backend_state: Any = None


PUBACK_OK = ReasonCode(PacketTypes.PUBACK, "Success")
PUBACK_DENIED = ReasonCode(PacketTypes.PUBACK, "Not authorized")
NO_SUBSCRIBERS = ReasonCode(PacketTypes.PUBACK, "No matching subscribers")


def outbound(max_inflight: int = 2, buffer_limit: int = 2) -> tuple[Outbound, FakeClient, Events]:
    events = Events()
    out = Outbound(events, Stats(), max_inflight=max_inflight, buffer_limit=buffer_limit,
                   broker="mqtt://b:1883")
    client = FakeClient()
    out.on_up(client, None, None)  # type: ignore[arg-type]
    return out, client, events


def item(n: int, qos: int = 1, link_id: int = 1) -> Outgoing:
    return Outgoing(f"t/{n}", b"x", None, qos, transfer=Transfer(n), link_id=link_id, size=4)


def test_window_holds_publishes_until_pubacks() -> None:
    out, client, events = outbound(max_inflight=2)
    for n in range(5):
        out.submit(item(n))
    assert [t for t, _, _ in client.published] == ["t/0", "t/1"]
    out.on_publish(1, PUBACK_OK)
    out.pump()  # the driver's next turn
    assert [t for t, _, _ in client.published] == ["t/0", "t/1", "t/2"]
    assert [args[0].id for args in events.of("transfer_settled")] == [0]


def test_broker_receive_maximum_caps_the_window() -> None:
    events = Events()
    out = Outbound(events, Stats(), max_inflight=20, buffer_limit=0, broker="b")
    client = FakeClient()
    out.on_up(client, 3, None)  # type: ignore[arg-type]
    for n in range(10):
        out.submit(item(n))
    assert len(client.published) == 3


def test_refused_puback_fails_the_transfer_with_the_reason() -> None:
    out, _, events = outbound()
    out.submit(item(0))
    out.on_publish(1, PUBACK_DENIED)
    (transfer, detail), = events.of("transfer_failed")
    assert transfer.id == 0
    assert detail.startswith("amqp:unauthorized-access:") and "0x87" in detail


def test_no_matching_subscribers_is_success_and_counted() -> None:
    out, _, events = outbound()
    out.submit(item(0))
    out.on_publish(1, NO_SUBSCRIBERS)
    assert events.names() == ["transfer_settled"] and out.stats.no_subscribers == 1


def test_qos0_confirmed_inside_publish_is_not_lost() -> None:
    out, client, events = outbound()
    client.on_publish = lambda mid: out.on_publish(mid, None)
    out.submit(item(0, qos=0))
    assert events.names() == ["transfer_settled"] and not out.inflight


def test_offline_buffer_is_bounded_and_overflow_names_the_cause() -> None:
    out, client, events = outbound(max_inflight=1, buffer_limit=2)
    out.on_down("amqp:connection:forced: lost")
    for n in range(3):
        out.submit(item(n))
    (transfer, detail), = events.of("transfer_failed")
    assert transfer.id == 2 and "buffer_limit = 2" in detail
    assert detail.startswith("amqp:resource-limit-exceeded:")
    assert client.published == [] and out.stats.buffered_peak == 2
    out.on_up(client, None, None)  # type: ignore[arg-type]
    out.pump()  # the driver's next turn (after paho resent what it holds)
    assert [t for t, _, _ in client.published] == ["t/0"]


def test_connection_loss_fails_unwritten_qos0_but_keeps_qos1() -> None:
    out, _, events = outbound(max_inflight=5)
    out.submit(item(0, qos=1))
    out.submit(item(1, qos=0))
    out.on_down("amqp:connection:forced: lost")
    (transfer, detail), = events.of("transfer_failed")
    assert transfer.id == 1 and "QoS 0" in detail
    assert list(out.inflight) == [1]  # paho resends it after the reconnect


def test_cancel_stops_waiting_sends_and_silences_sent_ones() -> None:
    out, client, events = outbound(max_inflight=1)
    first, second = item(0), item(1)
    out.submit(first)
    out.submit(second)
    out.cancel(second.transfer)  # type: ignore[arg-type]
    out.cancel(first.transfer)  # type: ignore[arg-type]
    out.on_publish(1, PUBACK_OK)
    assert events.calls == []
    assert len(client.published) == 1  # the cancelled waiting one never went out


def test_closed_sender_drops_its_waiting_sends() -> None:
    out, client, _ = outbound(max_inflight=1)
    out.submit(item(0, link_id=1))
    out.submit(item(1, link_id=1))
    out.submit(item(2, link_id=2))
    out.drop_link(1)
    out.on_publish(1, PUBACK_OK)
    out.pump()
    assert [t for t, _, _ in client.published] == ["t/0", "t/2"]


def test_oversized_message_fails_against_broker_maximum_packet_size() -> None:
    out, client, events = outbound()
    out.on_up(client, None, 100)  # type: ignore[arg-type]
    big = Outgoing("t", b"x" * 200, None, 1, transfer=Transfer(9), link_id=1, size=201)
    out.submit(big)
    (_, detail), = events.of("transfer_failed")
    assert "Maximum Packet Size 100" in detail and client.published == []


# -- receiving ------------------------------------------------------------------------------------


@dataclass
class Msg:
    topic: str
    mid: int
    qos: int = 1
    payload: bytes = b"body"
    dup: bool = False
    properties: Any = None


def msg(topic: str, mid: int, sub_ids: list[int] | None = None, **kw: Any) -> Msg:
    props = Properties(PacketTypes.PUBLISH)
    if sub_ids:
        props.SubscriptionIdentifier = sub_ids
    return Msg(topic, mid, properties=props, **kw)


class Harness:
    def __init__(self, *, v5: bool = True, dead_letter_topic: str | None = None,
                 max_delivery_count: int = 3) -> None:
        self.events = Events()
        self.client = FakeClient()
        self.timers: list[Callable[[], None]] = []
        self.epoch = 1
        self.stats = Stats()
        self.out = Outbound(self.events, self.stats, max_inflight=5, buffer_limit=5, broker="b")
        self.out.on_up(self.client, None, None)  # type: ignore[arg-type]
        self.inbox = Inbox(
            self.events, self.stats, self.out,
            InboundOptions(v5=v5, qos=1, release_delay=0.5,
                           max_delivery_count=max_delivery_count,
                           dead_letter_topic=dead_letter_topic),
            lambda m: Message(m.payload, {}, BodyKind.DATA),
            lambda delay, fn: self.timers.append(fn), lambda: self.epoch)
        self.inbox.on_up(self.client)  # type: ignore[arg-type]

    def suback(self, granted: str = "Granted QoS 1") -> None:
        mid = self.client.next_mid
        self.inbox.on_suback(mid, [ReasonCode(PacketTypes.SUBACK, granted)])

    def deliveries(self) -> list[tuple[int, Token]]:
        return [(args[0].id, args[2]) for args in self.events.of("delivery")]

    def run_timers(self) -> None:
        timers, self.timers = self.timers, []
        for fn in timers:
            fn()


def test_receiver_opens_on_suback_and_shares_the_subscription() -> None:
    h = Harness()
    one, two = Link(1), Link(2)
    h.inbox.open(one, "a/b")
    assert h.events.calls == [] and h.client.subscribed == [("a/b", 1, 1)]
    h.suback()
    h.inbox.open(two, "a/b")  # already granted: opens without a new SUBSCRIBE
    assert [args[0].id for args in h.events.of("link_opened")] == [1, 2]
    assert len(h.client.subscribed) == 1
    h.inbox.close(one)
    assert h.client.unsubscribed == []
    h.inbox.close(two)
    assert h.client.unsubscribed == ["a/b"]


def test_refused_suback_is_a_receiver_error() -> None:
    h = Harness()
    h.inbox.open(Link(1), "secret/x")
    h.suback("Not authorized")
    (link, detail), = h.events.of("link_error")
    assert link.id == 1 and detail.startswith("amqp:unauthorized-access:")
    assert "'secret/x'" in detail and not h.inbox.subs


def test_messages_before_suback_wait_for_receiver_open() -> None:
    h = Harness()
    h.inbox.open(Link(1), "a/#")
    h.inbox.on_message(msg("a/x", 7, [1]))  # type: ignore[arg-type]
    assert h.events.calls == []
    h.suback()
    assert h.events.names() == ["link_opened", "delivery"]


def test_routing_by_subscription_id_then_by_topic() -> None:
    h = Harness()
    h.inbox.open(Link(1), "a/#")
    h.suback()
    h.inbox.open(Link(2), "a/b")
    h.suback()
    h.inbox.on_message(msg("a/b", 10, [2]))  # type: ignore[arg-type]
    h.inbox.on_message(msg("a/c", 11))  # type: ignore[arg-type]  # no id: topic match
    assert [link for link, _ in h.deliveries()] == [2, 1]
    h.inbox.on_message(msg("zzz", 12))  # type: ignore[arg-type]  # nobody: acked, dropped
    assert h.client.acks == [(12, 1)] and h.stats.unrouted == 1


def test_accept_acks_once_every_receiver_settled() -> None:
    h = Harness()
    for n in (1, 2):
        h.inbox.open(Link(n), "a/b")
    h.suback()
    h.inbox.on_message(msg("a/b", 5, [1]))  # type: ignore[arg-type]
    (_, first), (_, second) = h.deliveries()
    h.inbox.settle(first, Outcome.ACCEPTED)
    assert h.client.acks == []
    h.inbox.settle(second, Outcome.ACCEPTED)
    h.inbox.settle(second, Outcome.ACCEPTED)  # twice: no-op
    assert h.client.acks == [(5, 1)]


def test_release_redelivers_locally_then_gives_up_after_max_deliveries() -> None:
    h = Harness(max_delivery_count=3)
    h.inbox.open(Link(1), "a")
    h.suback()
    h.inbox.on_message(msg("a", 5, [1]))  # type: ignore[arg-type]
    for expected in (2, 3):
        token = h.deliveries()[-1][1]
        h.inbox.settle(token, Outcome.RELEASED)
        assert h.client.acks == []
        h.run_timers()
        assert len(h.deliveries()) == expected
    h.inbox.settle(h.deliveries()[-1][1], Outcome.RELEASED)  # third release: over the limit
    assert h.client.acks == [(5, 1)] and h.stats.discarded == 1 and h.stats.redelivered == 2


def test_release_on_a_closed_receiver_is_acknowledged_and_counted() -> None:
    h = Harness()
    link = Link(1)
    h.inbox.open(link, "a")
    h.suback()
    h.inbox.on_message(msg("a", 5, [1]))  # type: ignore[arg-type]
    token = h.deliveries()[0][1]
    h.inbox.close(link)
    h.inbox.settle(token, Outcome.RELEASED)
    assert h.client.acks == [(5, 1)] and h.stats.discarded == 1


def test_reject_dead_letters_and_acks_after_the_copy_is_confirmed() -> None:
    h = Harness(dead_letter_topic="dead/letters")
    h.inbox.open(Link(1), "a")
    h.suback()
    h.inbox.on_message(msg("a", 5, [1], payload=b"bad"))  # type: ignore[arg-type]
    h.inbox.settle(h.deliveries()[0][1], Outcome.REJECTED)
    assert h.client.published == [("dead/letters", b"bad", 1)]
    assert h.client.acks == []
    copy_mid = next(iter(h.out.inflight))
    h.out.on_publish(copy_mid, PUBACK_OK)
    assert h.client.acks == [(5, 1)] and h.stats.dead_lettered == 1


def test_reject_without_dead_letter_topic_acks_and_counts() -> None:
    h = Harness()
    h.inbox.open(Link(1), "a")
    h.suback()
    h.inbox.on_message(msg("a", 5, [1]))  # type: ignore[arg-type]
    h.inbox.settle(h.deliveries()[0][1], Outcome.REJECTED)
    assert h.client.acks == [(5, 1)] and h.stats.rejected == 1 and h.stats.discarded == 1


def test_settling_after_a_reconnect_sends_no_stale_ack() -> None:
    h = Harness()
    h.inbox.open(Link(1), "a")
    h.suback()
    h.inbox.on_message(msg("a", 5, [1]))  # type: ignore[arg-type]
    token = h.deliveries()[0][1]
    h.inbox.on_down()
    h.epoch += 1
    h.inbox.on_up(h.client)  # type: ignore[arg-type]
    assert h.client.subscribed[-1][0] == "a"  # resubscribed
    h.inbox.settle(token, Outcome.ACCEPTED)
    assert h.client.acks == [] and h.stats.stale_acks == 1


def test_unsubscribe_while_down_is_sent_after_reconnect() -> None:
    h = Harness()
    link = Link(1)
    h.inbox.open(link, "a")
    h.suback()
    h.inbox.on_down()
    h.inbox.close(link)
    assert h.client.unsubscribed == []
    h.inbox.on_up(h.client)  # type: ignore[arg-type]
    assert h.client.unsubscribed == ["a"]


def test_mqtt311_routes_by_topic() -> None:
    h = Harness(v5=False)
    h.inbox.open(Link(1), "a/+")
    assert h.client.subscribed == [("a/+", 1, None)]
    h.suback()
    h.inbox.on_message(Msg("a/x", 3))  # type: ignore[arg-type]
    assert [link for link, _ in h.deliveries()] == [1]


def test_resumed_session_resend_is_matched_not_delivered_twice() -> None:
    h = Harness()
    h.inbox.open(Link(1), "a")
    h.suback()
    h.inbox.on_message(msg("a", 5, [1], payload=b"one"))  # type: ignore[arg-type]
    h.inbox.on_message(msg("a", 6, [1], payload=b"two"))  # type: ignore[arg-type]
    (_, first), (_, second) = h.deliveries()
    h.inbox.on_down()
    h.inbox.settle(first, Outcome.ACCEPTED)  # settled while down: no PUBACK possible
    h.epoch += 1
    h.inbox.on_up(h.client, session_present=True)  # type: ignore[arg-type]
    # the broker resends both with their packet ids and DUP set
    h.inbox.on_message(msg("a", 5, [1], payload=b"one", dup=True))  # type: ignore[arg-type]
    h.inbox.on_message(msg("a", 6, [1], payload=b"two", dup=True))  # type: ignore[arg-type]
    assert len(h.deliveries()) == 2  # nothing delivered twice
    assert h.client.acks == [(5, 1)]  # the settled one is acknowledged at once
    h.inbox.settle(second, Outcome.ACCEPTED)
    assert h.client.acks == [(5, 1), (6, 1)] and h.stats.resumed == 2
    # a fresh message that reuses a packet id is not mistaken for a resend
    h.inbox.on_message(msg("a", 5, [1], payload=b"three"))  # type: ignore[arg-type]
    assert len(h.deliveries()) == 3


def test_resend_of_a_message_acked_before_the_loss_is_acked_again_not_delivered() -> None:
    h = Harness()
    h.inbox.open(Link(1), "a")
    h.suback()
    h.inbox.on_message(msg("a", 5, [1], payload=b"one"))  # type: ignore[arg-type]
    h.inbox.settle(h.deliveries()[0][1], Outcome.ACCEPTED)
    assert h.client.acks == [(5, 1)]  # ... but the broker went down before reading it
    h.inbox.on_down()
    h.epoch += 1
    h.inbox.on_up(h.client, session_present=True)  # type: ignore[arg-type]
    h.inbox.on_message(msg("a", 5, [1], payload=b"one", dup=True))  # type: ignore[arg-type]
    assert len(h.deliveries()) == 1 and h.client.acks == [(5, 1), (5, 1)]
    # without DUP, or with other content, it is a new message
    h.inbox.on_message(msg("a", 5, [1], payload=b"one"))  # type: ignore[arg-type]
    assert len(h.deliveries()) == 2
