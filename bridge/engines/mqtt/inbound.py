"""The receiving side of one MQTT connection (driver thread only).

- **Subscriptions**: receivers on the same topic filter share one MQTT subscription (MQTT keeps
  one per filter and client); it is unsubscribed when its last receiver closes. A receiver opens
  on SUBACK; a refused grant is ``link_error`` (``RECEIVER_ERROR``). With MQTT 5 each
  subscription carries a Subscription Identifier, so a PUBLISH is routed by the ids it carries;
  otherwise (3.1.1, or an id we do not know) by matching its topic against the filters.
- **Deliveries**: PUBLISHes arrive with manual acknowledgement. Each receiver the message is
  routed to gets its own delivery (token); the PUBACK goes out when every token is finally
  settled: accept -> PUBACK; reject -> PUBACK (after the copy to ``dead_letter_topic`` was
  confirmed, if one is set); release -> redelivered locally to the same receiver after
  ``release_delay`` (counted; after ``max_delivery_count`` deliveries it is treated as rejected).
  A release on a receiver that has closed cannot be redelivered (MQTT has no queue of its own
  to give it back to): it is acknowledged and counted as discarded.
- After a reconnect, a PUBACK owed for the previous connection cannot be sent on the new one by
  itself. With a resumed session the broker resends those PUBLISHes with DUP set: such a resend
  is matched (packet id, else topic and payload) to the delivery the application already has,
  not delivered again, and acknowledged (with the new packet id) once that delivery is settled.
  With a clean session the broker forgot them; the settlement is only counted (``stale_acks``).
  PUBACKs sent just before the loss may not have reached the broker either: it resends those
  too, and a resend (DUP, same packet id, topic and payload) of one of the last PUBACKed
  messages is acknowledged again instead of being delivered twice.
- **A session resumed by a new process** (first CONNACK with session present, e.g. a relay
  restarted with ``clean_start = false``; ``InboundOptions.hold_resumed``, on in the MQTT
  backend): the broker sends what it queued for the old
  subscriptions at once, before the application had a chance to open its receivers. Such a
  PUBLISH is held unacknowledged and handed to the first receiver opened on a matching filter;
  one nobody claims within ``_ORPHAN_GRACE`` seconds is acknowledged and dropped (``unrouted``),
  so a filter no longer used cannot hold the receive window forever.
- **Hooks** for a backend that keeps a subscription after its receivers ended (the IoT Hub
  backend's `RetainingInbox`): `_receiver_joined`, `_waiting_for_receiver`, `_refused`,
  `_waiting_targets`, `_hold_for_next_receiver`. The plain MQTT backend uses none of them.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.contract.backend import BackendEvents, LinkHandle, Outcome
from bridge.contract.message import Message
from bridge.engines.mqtt import codec, reasons
from bridge.engines.mqtt.outbound import Outbound, Outgoing
from bridge.engines.mqtt.stats import Stats
from bridge.engines.mqtt.topics import topic_matches

log = logging.getLogger("bridge.backends.mqtt")

MAX_SUBSCRIPTION_ID = 268_435_455
# PUBACKs remembered per connection: a broker resends at most its in-flight window after a
# resumed session, so a few times the usual windows is plenty.
_ACKED_MEMORY = 512
# Seconds a PUBLISH of a resumed session waits for its receiver to be opened (see above).
_ORPHAN_GRACE = 10.0
_MALFORMED_LOGGED = 10  # malformed messages logged one by one per connection


@dataclass(slots=True, eq=False)
class Inbound:
    """One PUBLISH from the broker, awaiting its PUBACK."""

    mid: int
    qos: int
    epoch: int
    topic: str
    payload: bytes | bytearray  # as paho read it
    user_properties: list[tuple[str, str]]
    message: Message
    pending: int = 0  # tokens not yet finally settled


@dataclass(slots=True, eq=False)
class Token:
    """One receiver's delivery of an `Inbound` (what `Backend.settle` gets back)."""

    inbound: Inbound
    link: LinkHandle
    deliveries: int = 1
    final: bool = False


@dataclass(slots=True, eq=False)
class Subscription:
    topic_filter: str
    sub_id: int | None
    receivers: dict[int, LinkHandle] = field(default_factory=dict)
    opened: set[int] = field(default_factory=set)
    early: list[Token] = field(default_factory=list)  # arrived before the receiver opened
    mid: int | None = None  # SUBSCRIBE awaiting its SUBACK
    granted: bool = False  # the broker granted the last SUBSCRIBE


@dataclass(frozen=True, slots=True)
class InboundOptions:
    v5: bool
    qos: int
    release_delay: float
    max_delivery_count: int
    dead_letter_topic: str | None
    shared_group: str | None = None  # subscribe as $share/<group>/<filter> (competing relays)
    hold_resumed: bool = False  # hold a resumed session's early PUBLISHes (see module doc)
    topic_property: str | None = None  # add the topic to each message under this property


class Inbox:
    def __init__(self, events: BackendEvents, stats: Stats, outbound: Outbound,
                 options: InboundOptions, decode: Callable[[paho.MQTTMessage], Message],
                 call_later: Callable[[float, Callable[[], None]], Any],
                 epoch: Callable[[], int]) -> None:
        self.events = events
        self.stats = stats
        self.outbound = outbound
        self.options = options
        self.decode = decode
        self.call_later = call_later
        self.epoch = epoch
        self.client: paho.Client | None = None
        self.connected = False
        self.subs: dict[str, Subscription] = {}
        self._by_id: dict[int, Subscription] = {}
        self._by_mid: dict[int, Subscription] = {}
        self._link_sub: dict[int, Subscription] = {}
        self._to_unsubscribe: set[str] = set()
        self._ids = itertools.count(1)
        self._unacked: dict[int, Inbound] = {}  # QoS 1 PUBLISHes of this connection, no PUBACK
        self._resumed: dict[int, Inbound] = {}  # ... of the previous one, if the session resumed
        self._acked: dict[int, tuple[str, bytes]] = {}  # recent PUBACKs: mid -> topic, digest
        self._acked_before: dict[int, tuple[str, bytes]] = {}  # ... of the previous connection
        self._ever_up = False
        self._orphans: list[Inbound] = []  # resumed session, no receiver open yet: not acked
        self._hold_orphans = False
        self.malformed = 0  # messages whose bridge encoding was broken (see codec problems)

    # -- connection state ------------------------------------------------------------------------
    def on_up(self, client: paho.Client, session_present: bool = False) -> None:
        """(Re)connected: subscribe every filter again - a clean session forgot them, and a
        resumed one may have missed a SUBSCRIBE sent just before the loss."""
        self.client = client
        self.connected = True
        self._by_mid.clear()
        # (a resend not seen yet from an earlier reconnect stays matchable)
        self._resumed = {**self._resumed, **self._unacked} if session_present else {}
        self._unacked = {}
        self._acked_before = self._acked if session_present else {}
        self._acked = {}
        # Only a session resumed by this process's first connection (or a reconnect before its
        # grace period ended) can hold messages for receivers not opened yet. Held ones were
        # never acknowledged: after a reconnect the broker resends them itself.
        self._orphans = []
        self._hold_orphans = self.options.hold_resumed and session_present and (
            not self._ever_up or self._hold_orphans)
        self._ever_up = True
        if self._hold_orphans:
            epoch = self.epoch()
            self.call_later(_ORPHAN_GRACE, lambda: self._expire_orphans(epoch))
        for topic_filter in list(self._to_unsubscribe):
            if topic_filter not in self.subs:
                client.unsubscribe(self._wire_filter(topic_filter))
        self._to_unsubscribe.clear()
        for sub in list(self.subs.values()):
            self._subscribe(sub)

    def on_down(self) -> None:
        self.connected = False

    # -- receivers -------------------------------------------------------------------------------
    def open(self, link: LinkHandle, topic_filter: str) -> None:
        sub = self.subs.get(topic_filter)
        if sub is None:
            sub_id = next(self._ids) if self.options.v5 else None
            if sub_id is not None and sub_id > MAX_SUBSCRIPTION_ID:  # pragma: no cover
                self._ids = itertools.count(1)
                sub_id = next(self._ids)
            sub = Subscription(topic_filter, sub_id)
            self.subs[topic_filter] = sub
            if sub_id is not None:
                self._by_id[sub_id] = sub
            self._to_unsubscribe.discard(topic_filter)
            sub.receivers[link.id] = link
            self._link_sub[link.id] = sub
            self._claim_orphans(sub, link)  # delivered on SUBACK, with sub.early
            if self.connected:
                self._subscribe(sub)
            return
        sub.receivers[link.id] = link
        self._link_sub[link.id] = sub
        self._claim_orphans(sub, link)
        self._receiver_joined(sub, link)
        if sub.mid is None and (sub.opened or sub.granted):
            # the filter is already granted: nothing to ask the broker
            sub.opened.add(link.id)
            self.events.link_opened(link)
            early, sub.early = sub.early, []
            for token in early:
                self.events.delivery(link, token.inbound.message, token)

    def _claim_orphans(self, sub: Subscription, link: LinkHandle) -> None:
        if not self._orphans:
            return
        kept = []
        for inbound in self._orphans:
            if topic_matches(sub.topic_filter, inbound.topic):
                inbound.pending = 1
                self._unacked[inbound.mid] = inbound
                sub.early.append(Token(inbound, link))
            else:
                kept.append(inbound)
        self._orphans = kept

    def _expire_orphans(self, epoch: int) -> None:
        if epoch != self.epoch():
            return  # reconnected since: that connection's timer is not ours
        self._hold_orphans = False
        orphans, self._orphans = self._orphans, []
        for inbound in orphans:
            self.stats.unrouted += 1
            self._ack(inbound.mid, inbound.qos, inbound.epoch, None)
        if orphans:
            log.warning("MQTT: %d message(s) of the resumed session matched no receiver opened "
                        "within %.0f s (e.g. on %r); acknowledged and dropped", len(orphans),
                        _ORPHAN_GRACE, orphans[0].topic)

    def close(self, link: LinkHandle) -> None:
        sub = self._link_sub.pop(link.id, None)
        if sub is None:
            return
        sub.receivers.pop(link.id, None)
        sub.opened.discard(link.id)
        for token in [t for t in sub.early if t.link is link]:
            sub.early.remove(token)
            self.stats.discarded += 1
            self._finish(token)
        if sub.receivers:
            return
        del self.subs[sub.topic_filter]
        if sub.sub_id is not None:
            self._by_id.pop(sub.sub_id, None)
        if sub.mid is not None:
            self._by_mid.pop(sub.mid, None)
        if self.connected and self.client is not None:
            self.client.unsubscribe(self._wire_filter(sub.topic_filter))
        else:
            self._to_unsubscribe.add(sub.topic_filter)

    def _subscribe(self, sub: Subscription) -> None:
        client = self.client
        assert client is not None
        properties = None
        if sub.sub_id is not None:
            properties = Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = sub.sub_id
        rc, mid = client.subscribe(self._wire_filter(sub.topic_filter), qos=self.options.qos,
                                   properties=properties)
        if rc == paho.MQTT_ERR_SUCCESS and mid is not None:
            sub.mid = mid
            sub.granted = False
            self._by_mid[mid] = sub
        # otherwise the socket just went: on_up subscribes again

    def _wire_filter(self, topic_filter: str) -> str:
        """The filter as subscribed: a shared subscription (``mqtt.shared_group``) lets the
        broker hand each message to one of the clients of the group. Routing still matches the
        plain filter: a PUBLISH carries the topic, never the ``$share`` prefix."""
        group = self.options.shared_group
        return f"$share/{group}/{topic_filter}" if group else topic_filter

    def on_suback(self, mid: int, reason_codes: list[Any]) -> None:
        sub = self._by_mid.pop(mid, None)
        if sub is None or self.subs.get(sub.topic_filter) is not sub:
            return  # closed meanwhile (its UNSUBSCRIBE is on the way)
        sub.mid = None
        code = reason_codes[0] if reason_codes else None
        if code is not None and code.is_failure:
            detail = reasons.suback_detail(code.value, code.getName(), sub.topic_filter)
            for link in list(sub.receivers.values()):
                self.close(link)
                self.events.link_error(link, detail)
            self._refused(sub)
            return
        sub.granted = True
        if self._waiting_for_receiver(sub):
            return  # its messages keep waiting for a receiver
        for link in list(sub.receivers.values()):
            if link.id not in sub.opened:
                sub.opened.add(link.id)
                self.events.link_opened(link)
        early, sub.early = sub.early, []
        for token in early:
            self.events.delivery(token.link, token.inbound.message, token)

    # -- messages --------------------------------------------------------------------------------
    def on_message(self, msg: paho.MQTTMessage) -> None:
        """Route, decode, hand to the dispatcher: nothing else happens on this thread."""
        self.stats.received += 1
        if msg.dup:
            self.stats.duplicates_flagged += 1
        topic = msg.topic
        if msg.dup and (self._resume(msg, topic) or self._acked_already(msg, topic)):
            return
        targets = self._targets(msg, topic)
        if not targets and self._hold_orphans and msg.qos:
            properties = msg.properties
            self._orphans.append(Inbound(
                msg.mid, msg.qos, self.epoch(), topic, msg.payload,
                list(getattr(properties, "UserProperty", ()) or ()), self._decoded(msg, topic)))
            return
        if not targets:
            self.stats.unrouted += 1
            self._ack(msg.mid, msg.qos, self.epoch(), None)
            return
        properties = msg.properties
        user_properties = list(getattr(properties, "UserProperty", ()) or ())
        with codec.collect_problems() as problems:
            message = self._decoded(msg, topic)
        if problems:
            self._report_malformed(topic, problems)
        inbound = Inbound(msg.mid, msg.qos, self.epoch(), topic, msg.payload, user_properties,
                          message, pending=len(targets))
        if msg.qos:
            self._unacked[msg.mid] = inbound
        for sub, link in targets:
            if link is None:  # kept for a receiver to come: the Token gets it when one opens
                sub.early.append(Token(inbound, NO_RECEIVER))
                continue
            token = Token(inbound, link)
            if link.id in sub.opened:
                self.events.delivery(link, inbound.message, token)
            else:
                sub.early.append(token)

    def _decoded(self, msg: paho.MQTTMessage, topic: str) -> Message:
        message = self.decode(msg)
        name = self.options.topic_property
        if name is None:
            return message
        return Message(message._body, {**message._properties, name: topic}, message.kind)

    def _report_malformed(self, topic: str, problems: list[str]) -> None:
        """Count a malformed message (still delivered as well as it could be decoded) and log
        it: each of the first few per connection, then every thousandth, so hostile traffic
        cannot flood the log."""
        self.malformed += 1
        count = self.malformed
        if count <= _MALFORMED_LOGGED or count % 1000 == 0:
            log.warning("malformed MQTT message on %r: %s (%d malformed on this connection)",
                        topic, "; ".join(problems), count)

    def _acked_already(self, msg: paho.MQTTMessage, topic: str) -> bool:
        """A resend of a message whose PUBACK (sent before the loss) the broker never got?"""
        if self._acked_before.get(msg.mid) != (topic, _digest(msg.payload)):
            return False
        del self._acked_before[msg.mid]
        self.stats.resumed += 1
        self._ack(msg.mid, msg.qos, self.epoch(), None)
        return True

    def _resume(self, msg: paho.MQTTMessage, topic: str) -> bool:
        """A resend of a PUBLISH the application already has (resumed session)?"""
        if not self._resumed:
            return False
        payload = msg.payload
        old = self._resumed.get(msg.mid)
        if old is None or old.topic != topic or old.payload != payload:
            # Mosquitto may give a restored message a new packet id: match by content then
            # (each earlier delivery is matched once, so equal messages stay distinct).
            old = next((i for i in self._resumed.values()
                        if i.topic == topic and i.payload == payload), None)
            if old is None:
                return False
        del self._resumed[old.mid]
        old.mid = msg.mid
        self.stats.resumed += 1
        old.epoch = self.epoch()
        if old.pending == 0:  # settled while disconnected: the PUBACK can go now
            self._ack(old.mid, old.qos, old.epoch, old)
        else:
            self._unacked[old.mid] = old
        return True

    def _targets(self, msg: paho.MQTTMessage, topic: str
                 ) -> list[tuple[Subscription, LinkHandle | None]]:
        """(subscription, receiver) pairs; on a subscription kept without receivers the message
        waits for its next receiver (None)."""
        subs: list[Subscription] = []
        ids = getattr(msg.properties, "SubscriptionIdentifier", None) if self.options.v5 else None
        if ids:
            subs = [self._by_id[i] for i in ids if i in self._by_id]
        if not subs:
            subs = [s for s in self.subs.values() if topic_matches(s.topic_filter, topic)]
        targets: list[tuple[Subscription, LinkHandle | None]] = [
            (sub, link) for sub in subs for link in sub.receivers.values()]
        targets += self._waiting_targets(subs)
        return targets

    # -- hooks (a backend that keeps subscriptions without receivers overrides them) -----------
    def _receiver_joined(self, sub: Subscription, link: LinkHandle) -> None:
        """*link* opened on an existing subscription (before it is granted)."""

    def _waiting_for_receiver(self, sub: Subscription) -> bool:
        """Is *sub* kept without receivers (its messages wait unacknowledged)?"""
        return False

    def _refused(self, sub: Subscription) -> None:
        """The broker refused *sub*; its receivers are closed already."""

    def _waiting_targets(self, subs: list[Subscription]
                         ) -> list[tuple[Subscription, LinkHandle | None]]:
        """Subscriptions among *subs* whose messages wait for a receiver to come."""
        return []

    def _hold_for_next_receiver(self, token: Token) -> bool:
        """*token*'s receiver is gone: keep it for the next one (True), or not."""
        return False

    # -- settlement ------------------------------------------------------------------------------
    def settle(self, token: Any, outcome: Outcome) -> None:
        if not isinstance(token, Token) or token.final:
            return
        if outcome is Outcome.ACCEPTED:
            self.stats.accepted += 1
            self._finish(token)
        elif outcome is Outcome.REJECTED:
            self.stats.rejected += 1
            self._dead_letter(token, "rejected")
        else:
            self.stats.released += 1
            if token.link.id not in self._link_sub:
                if not self._hold_for_next_receiver(token):
                    self.stats.discarded += 1  # its receiver closed: nobody to give it back to
                    self._finish(token)
            elif token.deliveries >= self.options.max_delivery_count:
                self._dead_letter(token, "max-deliveries")
            else:
                self.call_later(self.options.release_delay, lambda: self._redeliver(token))

    def _redeliver(self, token: Token) -> None:
        if token.final:
            return
        if token.link.id not in self._link_sub:
            if not self._hold_for_next_receiver(token):
                self.stats.discarded += 1
                self._finish(token)
            return
        token.deliveries += 1
        self.stats.redelivered += 1
        self.events.delivery(token.link, token.inbound.message, token)

    def _dead_letter(self, token: Token, why: str) -> None:
        topic = self.options.dead_letter_topic
        if topic is None:
            self.stats.discarded += 1
            self._finish(token)
            return
        token.final = True  # no second settlement while the copy is on its way
        inbound = token.inbound
        properties = None
        if self.options.v5:
            properties = Properties(PacketTypes.PUBLISH)
            # the original user properties plus reserved ones that decoders ignore
            properties.UserProperty = [*inbound.user_properties,
                                       ("x-amqp-dead-letter-reason", why),
                                       ("x-amqp-dead-letter-from", inbound.topic)]

        def copied(failure: str | None) -> None:
            if failure is None:
                self.stats.dead_lettered += 1
            else:
                log.error("dead-lettering a message from %r to %r failed (%s); it is "
                          "acknowledged anyway", inbound.topic, topic, failure)
                self.stats.discarded += 1
            self._finish(token, force=True)

        self.outbound.submit(Outgoing(topic, inbound.payload, properties, self.options.qos,
                                      on_done=copied, size=len(inbound.payload) + len(topic)))

    def _finish(self, token: Token, *, force: bool = False) -> None:
        if token.final and not force:
            return
        token.final = True
        inbound = token.inbound
        inbound.pending -= 1
        if inbound.pending == 0:
            self._ack(inbound.mid, inbound.qos, inbound.epoch, inbound)

    def _ack(self, mid: int, qos: int, epoch: int, inbound: Inbound | None) -> None:
        if qos == 0:
            return
        if epoch != self.epoch() or not self.connected or self.client is None:
            self.stats.stale_acks += 1
            return
        self._unacked.pop(mid, None)
        self.client.ack(mid, qos)
        if inbound is not None:
            acked = self._acked
            acked.pop(mid, None)
            acked[mid] = (inbound.topic, _digest(inbound.payload))
            if len(acked) > _ACKED_MEMORY:
                del acked[next(iter(acked))]


class _NoReceiver:
    """Stands in for the receiver of a message waiting for a receiver to be opened."""

    id = -1
    path = ""
    role = "receiver"
    session: Any = None
    backend_state: Any = None


NO_RECEIVER: Any = _NoReceiver()


def _digest(payload: bytes | bytearray) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()
