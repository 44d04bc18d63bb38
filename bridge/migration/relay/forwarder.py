"""The relay's connections (`Side`) and rules (`Forwarder`): what runs on its dispatcher thread.

A source delivery is settled only after its target confirmed the forwarded copy. With a
ledger, the batch of confirmations a dispatcher turn collected is written to it first and the
batch's source deliveries are settled after, once per turn (one ledger write per batch, not per
message).

A message the target refuses (AMQP rejected / modified undeliverable, an MQTT 5 PUBACK error
reason, too large for the broker) is sent again up to ``retries`` times, then dead-lettered
(``dead_letter``: another endpoint, with the reason attached, or ``"drop"``); only then is its
source delivery settled. The rest of the stream keeps flowing meanwhile: a refused message
takes one window slot while it is retried, never the rule.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bridge.contract.message import Message
from bridge.contract.objects import Delivery, Transfer
from bridge.migration.relay.ids import (
    ID_PROPERTY,
    REASON_PROPERTY,
    RULE_PROPERTY,
    stable_id,
    with_properties,
)
from bridge.migration.relay.ledger import Ledger
from bridge.migration.relay.templates import (
    SUBJECT_PROPERTY,
    TO_PROPERTY,
    TOPIC_PROPERTY,
    captures,
    compile_target,
    parse_source,
    render,
)
from bridge.migration.routing import target_settings
from bridge.migration.settings import RelayRule

log = logging.getLogger("bridge.migration.relay")

DROP = "drop"


class SideState(StrEnum):
    """Where one relay connection (a side) is."""

    OPEN = "open"
    DOWN = "down"
    CONNECTING = "connecting"


OPEN, DOWN, CONNECTING = SideState


class RelayHost(Protocol):
    """What sides and forwarders use of the relay service."""

    settings: Any  # bridge.settings.Settings
    agent: Any  # bridge.agent.Agent
    draining: bool
    ledger: Ledger | None


@dataclass
class RuleStats:
    forwarded: int = 0
    failed: int = 0  # refusals by the target (each attempt)
    resent: int = 0
    redelivered: int = 0  # in flight when the source was lost: the source delivers them again
    released: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    skipped: int = 0  # redelivered by the source, already confirmed by the target (ledger)
    resent_after_restart: int = 0  # in flight at the last stop (ledger): maybe a duplicate
    waiting_peak: int = 0  # most received-not-forwarded at once (what the source pushed ahead)
    lag_ms_total: float = 0.0
    lag_ms_max: float = 0.0
    last_lag_ms: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


def parse_endpoint(text: str) -> tuple[str, str]:
    """``"amqp:/queue/x"`` -> ``("amqp", "/queue/x")``."""
    backend, sep, path = text.partition(":")
    if not sep or not backend or not path:
        raise ValueError(f"relay endpoint {text!r} must look like BACKEND:PATH, "
                         f"e.g. amqp:/queue/telemetry or mqtt:/devices/d1/messages/events")
    return backend, path


class Side:
    """One connection (per backend and options) and its session, reopened when lost."""

    def __init__(self, relay: RelayHost, role: str, backend: str, options: dict[str, Any],
                 name: str) -> None:
        self.relay = relay
        self.role = role
        self.backend = backend
        self.name = name
        options = dict(options)
        if backend == "mqtt" and "client_id" not in options \
                and relay.settings.mqtt.client_id is None:
            # The default client id has the connection number, which changes when the side is
            # reopened: a persistent session (and the messages it holds) would be orphaned.
            options["client_id"] = f"{relay.settings.agent_id}-{name}"
        self.settings = target_settings(relay.settings, backend, options)
        self.state = DOWN
        self.connection: Any = None
        self.session: Any = None
        self.delay = relay.settings.relay.reconnect_min_delay
        self.forwarders: list[Forwarder] = []
        self.last_error: str | None = None

    def open(self) -> None:
        self.state = CONNECTING
        self.connection = self.relay.agent.amqp.open_with(self.relay.settings.relay.url,
                                                         self._event, self.settings)

    def _event(self, event: str, detail: str | None) -> None:
        if event == "CONNECTION_OPEN":
            self.session = self.connection.opensession(self._event)
        elif event == "SESSION_OPEN":
            self.state = OPEN
            self.delay = self.relay.settings.relay.reconnect_min_delay
            log.info("relay: %s connected", self.name)
            for forwarder in self.forwarders:
                forwarder.side_up(self)
        elif event in ("CONNECTION_ERROR", "CONNECTION_CLOSED", "SESSION_ERROR",
                       "SESSION_CLOSED"):
            self.lost(detail or event)

    def lost(self, detail: str) -> None:
        if self.state == DOWN:
            return
        self.state = DOWN
        self.last_error = detail
        if self.connection is not None:
            self.connection.close()
        self.connection = self.session = None
        for forwarder in self.forwarders:
            forwarder.side_down(self)
        if self.relay.draining:
            return
        log.warning("relay: %s connection lost (%s); reconnecting in %.1fs", self.name,
                    detail, self.delay)
        self.relay.agent.imp.wakeup(self.delay, self._reconnect)
        self.delay = min(self.delay * 2, self.relay.settings.relay.reconnect_max_delay)

    def _reconnect(self) -> None:
        if self.state == DOWN and not self.relay.draining:
            self.open()


class Item:
    """One source message on its way: its delivery, stable id and attempts."""

    __slots__ = ("arrived", "attempts", "delivery", "key", "message", "reason", "target")

    def __init__(self, delivery: Delivery, message: Message, key: str, arrived: float,
                 target: str | None = None) -> None:
        self.delivery = delivery
        self.message = message  # what is sent: the source message with its stable id
        self.key = key  # the ledger's key: the stable id within this rule
        self.arrived = arrived
        self.target = target  # the rendered target path of a templated rule
        self.attempts = 0
        self.reason = ""


class Forwarder:
    """One rule: a receiver on the source side, a sender on the target side (and one on the
    dead-letter side when the rule has one)."""

    def __init__(self, relay: RelayHost, index: int, rule: RelayRule, source: Side,
                 target: Side, dead: Side | None) -> None:
        self.relay = relay
        self.rule = rule
        self.name = f"{rule.source} -> {rule.target}"
        self.key_prefix = f"{index}."
        self.source_side = source
        self.target_side = target
        self.dead_side = dead
        # ValueError (the relay names the rule) for a bad wildcard or template
        self.pattern = parse_source(rule.source)
        self.template = compile_target(rule.target, self.pattern)
        self.source_path = self.wildcard_path(index) if self.pattern.topic_filter \
            else parse_endpoint(rule.source)[1]
        self.target_path = parse_endpoint(rule.target)[1]
        self.dead_path = parse_endpoint(rule.dead_letter)[1] if dead is not None \
            and rule.dead_letter else None
        self.window = rule.window or relay.settings.relay.window
        self.ledger = relay.ledger
        self.receiver: Any = None
        self.sender: Any = None  # a static target's
        self.senders: dict[str, Any] = {}  # a templated target's, per rendered path
        self.dead_sender: Any = None
        self.pending: deque[Item] = deque()
        self.inflight: dict[Transfer, Item] = {}
        self.dead_pending: deque[Item] = deque()
        self.dead_inflight: dict[Transfer, Item] = {}
        self.to_settle: list[Delivery] = []
        self._settle_scheduled = False
        self.stats: RuleStats = RuleStats()

    @staticmethod
    def wildcard_path(index: int) -> str:
        """The receiver path of rule *index*'s wildcard source: the relay maps it to the topic
        filter with an MQTT topic rule (paths themselves cannot hold wildcards)."""
        return f"/bridge-relay/rule{index}"

    # -- links ------------------------------------------------------------------------------
    def side_up(self, side: Side) -> None:
        if side is self.source_side and self.receiver is None:
            self.receiver = side.session.openreceiver(self.source_path, self._receiver_event,
                                                      self._deliveries)
        if side is self.target_side and self.sender is None:
            if self.template.is_static:
                self.sender = side.session.opensender(self.target_path, self._sender_event)
            else:
                self._pump()  # senders open per rendered path, on demand
        if side is self.dead_side and self.dead_sender is None:
            self.dead_sender = side.session.opensender(self.dead_path, self._dead_event)

    def side_down(self, side: Side) -> None:
        if side is self.target_side:
            self.sender = None
            self.senders.clear()
            self._requeue_inflight()
        if side is self.dead_side:
            self.dead_sender = None
            self.dead_pending.extendleft(reversed(list(self.dead_inflight.values())))
            self.dead_inflight.clear()
        if side is self.source_side:
            # Their settlement is impossible now: the source broker redelivers them (those in
            # flight may reach the target twice).
            self.receiver = None
            self.stats.redelivered += len(self.inflight)
            self.pending.clear()
            self.inflight.clear()
            self.dead_pending.clear()
            self.dead_inflight.clear()
            self.to_settle.clear()

    def _receiver_event(self, event: str, detail: str | None) -> None:
        if event == "RECEIVER_ERROR":
            log.error("relay %s: source refused: %s", self.name, detail)
            self.receiver = None
            self.source_side.lost(f"receiver {self.source_path}: {detail}")

    def _sender_event(self, event: str, detail: str | None, path: str | None = None) -> None:
        if event == "SENDER_OPEN":
            self._pump()
        elif event == "SENDER_ERROR":
            failed = [t for t in self.inflight if t.state == Transfer.FAILED]
            if failed:  # the target refused these messages: retry, then dead-letter
                for transfer in failed:
                    self._refused(self.inflight.pop(transfer), detail or "refused")
                self._pump()
                return
            log.error("relay %s: target sender failed: %s", self.name, detail)
            self.sender = None
            self.senders.clear()
            self._requeue_inflight()
            self.target_side.lost(f"sender {path or self.target_path}: {detail}")
        elif event == "SENDER_CLOSED":
            if path is None:
                self.sender = None
            else:
                self.senders.pop(path, None)
            self._requeue_inflight()

    def _requeue_inflight(self) -> None:
        """Transfers to a lost target may or may not have arrived: send them again later."""
        if self.inflight:
            self.stats.resent += len(self.inflight)
            self.pending.extendleft(reversed(list(self.inflight.values())))
            self.inflight.clear()

    # -- forwarding -------------------------------------------------------------------------
    def _deliveries(self, deliveries: list[Delivery]) -> None:
        # While draining they are held, not released: a release makes RabbitMQ redeliver at
        # once to this same receiver (and MQTT redelivers locally); the close returns them.
        now = time.monotonic()
        source, ledger, prefix = self.rule.source, self.ledger, self.key_prefix
        static = self.template.is_static
        for delivery in deliveries:
            message = delivery.message()
            properties = message._properties
            topic = properties.get(TOPIC_PROPERTY) if self.pattern.backend == "mqtt" else None
            envelope: dict[str, str] | None = None
            if isinstance(topic, str):  # added by the MQTT source for the relay: not forwarded
                properties = {k: v for k, v in properties.items() if k != TOPIC_PROPERTY}
                message = Message(message._body, properties, message.kind)
            else:
                topic = None
                if self.pattern.backend == "amqp" and (SUBJECT_PROPERTY in properties
                                                       or TO_PROPERTY in properties):
                    # the AMQP source adds subject / to for {subject} / {to} (of this rule or
                    # another on the same connection): used here, never forwarded
                    envelope = {name: str(properties[key]) for name, key in
                                (("subject", SUBJECT_PROPERTY), ("to", TO_PROPERTY))
                                if key in properties}
                    properties = {k: v for k, v in properties.items()
                                  if k not in (SUBJECT_PROPERTY, TO_PROPERTY)}
                    message = Message(message._body, properties, message.kind)
            ident = stable_id(source if topic is None else f"mqtt:/{topic}", message)
            key = prefix + ident
            if ledger is not None and ledger.is_confirmed(key):
                self.stats.skipped += 1  # the target has it: settle, do not publish again
                self.to_settle.append(delivery)
                continue
            if properties.get(ID_PROPERTY) != ident:
                message = with_properties(message, {ID_PROPERTY: ident})
            item = Item(delivery, message, key, now)
            if not static:
                values = captures(self.pattern, topic) if topic is not None else []
                try:
                    if values is None:
                        raise ValueError(f"topic {topic!r} does not match {source}")
                    item.target = render(self.template, values, topic, envelope)
                except ValueError as exc:
                    self._give_up(item, f"relay:template: {exc}")
                    continue
            self.pending.append(item)
        self.stats.waiting_peak = max(self.stats.waiting_peak, len(self.pending))
        self._pump()
        self._settle_soon()

    def _pump(self) -> None:
        if self.relay.draining:
            return
        if not self.template.is_static:
            self._pump_templated()
            return
        sender = self.sender
        if sender is None or not sender.isopen():
            return
        ledger = self.ledger
        pending, inflight, window = self.pending, self.inflight, self.window
        if ledger is None:
            while pending and len(inflight) < window:
                item = pending.popleft()
                transfer = sender.createtransfer(item.message)
                inflight[transfer] = item
                transfer.sendasync(lambda t=transfer: self._confirmed(t))
            return
        # With a ledger the batch's "sent" records are written before anything is sent: a
        # message a kill may duplicate is always one the next run counts.
        batch: list[Item] = []
        while pending and len(inflight) + len(batch) < window:
            item = pending.popleft()
            self._record_sent(ledger, item)
            batch.append(item)
        if not batch:
            return
        ledger.flush()
        for item in batch:
            transfer = sender.createtransfer(item.message)
            inflight[transfer] = item
            transfer.sendasync(lambda t=transfer: self._confirmed(t))

    def _record_sent(self, ledger: Ledger, item: Item) -> None:
        if item.key in ledger.unconfirmed_at_start and item.attempts == 0:
            self.stats.resent_after_restart += 1
        ledger.sent(item.key)

    def _pump_templated(self) -> None:
        """In order: the head waits while its rendered path's sender opens."""
        ledger = self.ledger
        pending, inflight, window = self.pending, self.inflight, self.window
        batch: list[tuple[Item, Any]] = []
        while pending and len(inflight) + len(batch) < window:
            sender = self._sender_for(pending[0].target or "")
            if sender is None:
                break
            item = pending.popleft()
            if ledger is not None:
                self._record_sent(ledger, item)
            batch.append((item, sender))
        if ledger is not None and batch:
            ledger.flush()
        for item, sender in batch:
            transfer = sender.createtransfer(item.message)
            inflight[transfer] = item
            transfer.sendasync(lambda t=transfer: self._confirmed(t))

    def _sender_for(self, path: str) -> Any:
        """The open sender for *path*, or None while it opens (it is opened here)."""
        sender = self.senders.get(path)
        if sender is None:
            session = self.target_side.session
            if self.target_side.state != OPEN or session is None:
                return None
            self.senders[path] = session.opensender(
                path, lambda event, detail, p=path: self._sender_event(event, detail, p))
            return None
        return sender if sender.isopen() else None

    def _confirmed(self, transfer: Transfer) -> None:
        item = self.inflight.pop(transfer, None)
        if item is None:
            return  # requeued after a target loss and resent since: a duplicate
        if self.ledger is not None:
            self.ledger.confirm(item.key)
        self.to_settle.append(item.delivery)
        lag = (time.monotonic() - item.arrived) * 1000
        stats = self.stats
        stats.forwarded += 1
        stats.lag_ms_total += lag
        stats.last_lag_ms = lag
        stats.lag_ms_max = max(stats.lag_ms_max, lag)
        stats.recent.append(time.monotonic())
        self._settle_soon()
        self._pump()

    def _settle_soon(self) -> None:
        """Settle at the source what the targets confirmed: at once without a ledger; with one,
        once per dispatcher turn, after the turn's confirmations were written to it."""
        if not self.to_settle:
            return
        if self.ledger is None:
            self.settle_confirmed()
        elif not self._settle_scheduled:  # the first of this turn: settle at the end of it
            self._settle_scheduled = True
            self.relay.agent.call_soon(self.settle_confirmed)

    def settle_confirmed(self) -> None:
        self._settle_scheduled = False
        if self.ledger is not None:
            self.ledger.flush()
        batch, self.to_settle = self.to_settle, []
        for delivery in batch:
            delivery.accept()

    def rate(self) -> float:
        recent = self.stats.recent
        if len(recent) < 2:
            return 0.0
        span = time.monotonic() - recent[0]
        return len(recent) / span if span > 0 else 0.0

    # -- refused messages ---------------------------------------------------------------------
    def _refused(self, item: Item, reason: str) -> None:
        self.stats.failed += 1
        item.attempts += 1
        item.reason = reason
        if item.attempts <= self.rule.retries:
            log.info("relay %s: target refused a message (%s); attempt %d of %d", self.name,
                     reason, item.attempts + 1, self.rule.retries + 1)
            self.pending.appendleft(item)
            return
        self._give_up(item, reason)

    def _give_up(self, item: Item, reason: str) -> None:
        """Dead-letter, drop or release a message that cannot be forwarded."""
        item.reason = reason
        dead_letter = self.rule.dead_letter
        if dead_letter is None:
            log.warning("relay %s: target refused a message %d time(s) (%s); released to the "
                        "source (set dead_letter on the rule to stop redeliveries)", self.name,
                        item.attempts, reason)
            item.delivery.release()
            self.stats.released += 1
        elif dead_letter == DROP:
            log.warning("relay %s: dropped a message the target refused %d time(s): %s",
                        self.name, item.attempts, reason)
            self.stats.dropped += 1
            self.to_settle.append(item.delivery)
            self._settle_soon()
        else:
            item.message = with_properties(item.message, {REASON_PROPERTY: reason,
                                                          RULE_PROPERTY: self.name})
            self.dead_pending.append(item)
            self._pump_dead()

    def _pump_dead(self) -> None:
        sender = self.dead_sender
        if sender is None or self.relay.draining or not sender.isopen():
            return
        while self.dead_pending:
            item = self.dead_pending.popleft()
            transfer = sender.createtransfer(item.message)
            self.dead_inflight[transfer] = item
            transfer.sendasync(lambda t=transfer: self._dead_confirmed(t))

    def _dead_confirmed(self, transfer: Transfer) -> None:
        item = self.dead_inflight.pop(transfer, None)
        if item is None:
            return
        self.stats.dead_lettered += 1
        log.warning("relay %s: dead-lettered a message to %s: %s", self.name,
                    self.rule.dead_letter, item.reason)
        self.to_settle.append(item.delivery)
        self._settle_soon()

    def _dead_event(self, event: str, detail: str | None) -> None:
        if event == "SENDER_OPEN":
            self._pump_dead()
        elif event == "SENDER_ERROR":
            failed = [t for t in self.dead_inflight if t.state == Transfer.FAILED]
            for transfer in failed:  # even the dead-letter target refused it: back to source
                item = self.dead_inflight.pop(transfer)
                log.error("relay %s: the dead-letter target refused a message too (%s); "
                          "released to the source", self.name, detail)
                item.delivery.release()
                self.stats.released += 1
            if not failed:
                self.dead_sender = None
                if self.dead_side is not None:
                    self.dead_side.lost(f"dead-letter sender {self.dead_path}: {detail}")
        elif event == "SENDER_CLOSED":
            self.dead_sender = None

    def in_flight(self) -> int:
        return len(self.inflight) + len(self.dead_inflight)
