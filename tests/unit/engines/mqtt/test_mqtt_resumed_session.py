"""A session resumed by a new process: what the broker queued waits for its receiver.

Found by the relay's SIGTERM test: a relay restarted with ``clean_start = false`` got the
messages queued for its session right after CONNACK, before it had opened its receiver, and the
backend acknowledged them as unrouted: lost. Now they are held (unacknowledged) for the first
receiver opened on a matching filter, and acknowledged only after a grace period if none is.
"""

from __future__ import annotations

from collections.abc import Callable

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bridge.contract.backend import Outcome
from bridge.contract.message import BodyKind, Message
from bridge.engines.mqtt.inbound import _ORPHAN_GRACE, InboundOptions, Inbox
from bridge.engines.mqtt.outbound import Outbound
from bridge.engines.mqtt.stats import Stats
from tests.unit.engines.mqtt.test_mqtt_flow import Events, FakeClient, Link, msg


class Resumed:
    def __init__(self, hold: bool = True) -> None:
        self.events, self.client, self.stats = Events(), FakeClient(), Stats()
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.epoch = 1
        out = Outbound(self.events, self.stats, max_inflight=5, buffer_limit=5, broker="b")
        self.inbox = Inbox(self.events, self.stats, out,
                           InboundOptions(v5=True, qos=1, release_delay=0.5,
                                          max_delivery_count=3, dead_letter_topic=None,
                                          hold_resumed=hold),
                           lambda m: Message(m.payload, {}, BodyKind.DATA),
                           lambda delay, fn: self.timers.append((delay, fn)),
                           lambda: self.epoch)

    def up(self, session_present: bool) -> None:
        self.inbox.on_up(self.client, session_present)  # type: ignore[arg-type]

    def suback(self) -> None:
        self.inbox.on_suback(self.client.next_mid,
                             [ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")])


def test_queued_messages_wait_for_the_receiver_opened_after_connect() -> None:
    h = Resumed()
    h.up(session_present=True)
    for mid in (1, 2):  # arrive before any receiver: the old session's subscription
        h.inbox.on_message(msg("relay/in", mid, payload=f"m{mid}".encode()))  # type: ignore[arg-type]
    h.inbox.on_message(msg("other/x", 3))  # type: ignore[arg-type]
    assert h.client.acks == [] and h.stats.unrouted == 0
    h.inbox.open(Link(7), "relay/#")
    h.suback()
    delivered = h.events.of("delivery")
    assert [(args[0].id, args[1].body()) for args in delivered] == [(7, b"m1"), (7, b"m2")]
    for args in delivered:
        h.inbox.settle(args[2], Outcome.ACCEPTED)
    assert sorted(h.client.acks) == [(1, 1), (2, 1)]
    # the one nobody claimed is acknowledged (dropped, counted) after the grace period
    (delay, expire), = h.timers
    assert delay == _ORPHAN_GRACE
    expire()
    assert (3, 1) in h.client.acks and h.stats.unrouted == 1


def test_without_hold_resumed_unrouted_messages_are_dropped_as_before() -> None:
    h = Resumed(hold=False)  # the IoT Hub backend's inbox (its own deviation pins this)
    h.up(session_present=True)
    h.inbox.on_message(msg("a/b", 1))  # type: ignore[arg-type]
    assert h.client.acks == [(1, 1)] and h.stats.unrouted == 1 and h.timers == []


def test_the_mqtt_backend_holds_them() -> None:
    from types import SimpleNamespace

    from bridge import Settings
    from bridge.backends.mqtt.backend import MQTTBackend
    from tests.support.contexts import backend_context

    backend = MQTTBackend(backend_context(Settings(backend="mqtt"), url="amqps://hub",
                                          events=SimpleNamespace(), agent_id="a"))
    try:
        assert backend.inbox.options.hold_resumed is True
    finally:  # never opened: nothing to release but the driver itself
        backend.close()


def test_clean_or_reconnected_sessions_still_drop_unrouted_messages() -> None:
    h = Resumed()
    h.up(session_present=False)
    h.inbox.on_message(msg("a/b", 1))  # type: ignore[arg-type]
    assert h.client.acks == [(1, 1)] and h.stats.unrouted == 1
    h.inbox.on_down()
    h.up(session_present=True)  # a reconnect of the same process: its receivers are known
    h.inbox.on_message(msg("a/b", 2))  # type: ignore[arg-type]
    assert h.client.acks == [(1, 1), (2, 1)] and h.timers == []


def test_held_messages_are_forgotten_on_a_reconnect_and_held_again() -> None:
    h = Resumed()
    h.up(session_present=True)
    h.inbox.on_message(msg("a/b", 1))  # type: ignore[arg-type]
    h.inbox.on_down()
    h.epoch = 2
    h.up(session_present=True)  # lost before any receiver opened: the broker resends it
    first, second = (fn for _, fn in h.timers)
    first()  # the first connection's timer: nothing of this connection to acknowledge
    assert h.client.acks == [] and h.stats.unrouted == 0
    h.inbox.on_message(msg("a/b", 5, dup=True))  # type: ignore[arg-type]
    h.inbox.open(Link(1), "a/b")
    h.suback()
    (args,) = h.events.of("delivery")
    h.inbox.settle(args[2], Outcome.ACCEPTED)
    assert h.client.acks == [(5, 1)]
    second()
    assert h.stats.unrouted == 0


def test_commands_queued_during_the_last_batch_still_run_at_shutdown() -> None:
    """A draining relay settles its last deliveries, then closes: if the driver was busy with
    an earlier batch, those settlements (their PUBACKs) must still go out before DISCONNECT."""
    from types import SimpleNamespace

    from bridge import Settings
    from bridge.backends.mqtt.backend import MQTTBackend
    from bridge.engines.mqtt.transport import Driver
    from bridge.loop.network import LoopPool
    from tests.support.contexts import backend_context

    backend = MQTTBackend(backend_context(Settings(backend="mqtt"), url="amqps://hub",
                                          events=SimpleNamespace(), agent_id="a"))
    pool = LoopPool(1, name="test-shutdown")
    # on demand: started without connecting, so only the commands and the stop are at work
    driver = Driver(backend._make_client, backend.driver.options, backend, "test",
                    wake_reports=lambda: None, on_demand=True, loops=pool)
    ran: list[int] = []
    try:
        driver.start()
        driver.call(ran.append, 1)  # queued just before the stop, behind other work
        driver.stop()
        assert driver.join(5)
        assert ran == [1]
        driver.call(ran.append, 2)  # after shutdown: dropped, as before
        assert ran == [1]
    finally:
        for loop in pool.loops:
            loop.stop()
