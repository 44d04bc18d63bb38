"""``mqtt.shared_group``: receivers subscribe as MQTT 5 shared subscriptions (relay scale-out).

The group is a subscription-level option, not part of any path: paths still map to plain
topics (the mapping refuses '$'), only SUBSCRIBE / UNSUBSCRIBE carry ``$share/<group>/``.
"""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bridge import ConfigError, Settings
from bridge.contract.message import BodyKind, Message
from bridge.engines.mqtt.inbound import InboundOptions, Inbox
from bridge.engines.mqtt.outbound import Outbound
from bridge.engines.mqtt.stats import Stats
from tests.unit.engines.mqtt.test_mqtt_flow import Events, FakeClient, Link, msg


def _inbox(group: str | None, v5: bool = True) -> tuple[Inbox, FakeClient, Events]:
    events, client, stats = Events(), FakeClient(), Stats()
    out = Outbound(events, stats, max_inflight=5, buffer_limit=5, broker="b")
    inbox = Inbox(events, stats, out,
                  InboundOptions(v5=v5, qos=1, release_delay=0.5, max_delivery_count=3,
                                 dead_letter_topic=None, shared_group=group),
                  lambda m: Message(m.payload, {}, BodyKind.DATA),
                  lambda delay, fn: None, lambda: 1)
    inbox.on_up(client)  # type: ignore[arg-type]
    return inbox, client, events


@pytest.mark.parametrize("v5", [True, False])
def test_shared_group_subscribes_share_filter_and_routes_plain_topics(v5: bool) -> None:
    inbox, client, events = _inbox("relays", v5)
    link = Link(1)
    inbox.open(link, "devices/+/messages/events")
    assert [t for t, _, _ in client.subscribed] == ["$share/relays/devices/+/messages/events"]
    inbox.on_suback(client.next_mid, [ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")])
    assert [args[0].id for args in events.of("link_opened")] == [1]
    # No subscription identifier (3.1.1, or a broker that leaves it out of shared deliveries):
    # the PUBLISH names the plain topic and must still reach the receiver.
    inbox.on_message(msg("devices/d1/messages/events", 7))  # type: ignore[arg-type]
    assert [args[0].id for args in events.of("delivery")] == [1]
    # resubscribed after a reconnect, unsubscribed when the receiver closes: same filter
    inbox.on_up(client)  # type: ignore[arg-type]
    assert client.subscribed[-1][0] == "$share/relays/devices/+/messages/events"
    inbox.close(link)
    assert client.unsubscribed == ["$share/relays/devices/+/messages/events"]


def test_without_a_group_the_filter_is_plain() -> None:
    inbox, client, _ = _inbox(None)
    inbox.open(Link(1), "a/b")
    assert [t for t, _, _ in client.subscribed] == ["a/b"]


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "x\x00"])
def test_group_names_mqtt_refuses_are_refused_at_startup(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.shared_group"):
        Settings(mqtt={"shared_group": bad})


def test_backend_passes_the_group_to_its_inbox() -> None:
    from types import SimpleNamespace

    from bridge.backends.mqtt.backend import MQTTBackend
    from tests.support.contexts import backend_context

    backend = MQTTBackend(backend_context(Settings(backend="mqtt", mqtt={
        "shared_group": "g1"}), url="amqps://hub", events=SimpleNamespace(), agent_id="a"))
    try:
        assert backend.inbox.options.shared_group == "g1"
    finally:  # never opened: nothing to release but the driver itself
        backend.close()
