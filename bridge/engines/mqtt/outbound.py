"""The sending side of one MQTT connection (driver thread only).

- **Window** (the sender's link credit): at most ``max_inflight`` QoS 1 publishes are handed to
  paho without a PUBACK (capped by the broker's Receive Maximum); the rest wait here in order.
- **Confirmation**: PUBACK (QoS 1) or the write (QoS 0) -> ``transfer_settled``; a PUBACK with
  a failure reason (MQTT 5, e.g. 0x87 Not authorized) -> ``transfer_failed``.
- **Offline buffer** (``reconnect = "auto"``): while the connection is down, sends are held up to
  ``buffer_limit``; one more fails at once with a detail naming the limit - never a silent drop.
  Publishes paho already holds without PUBACK are resent by paho after the reconnect (DUP set),
  before anything held here.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho

from bridge.contract.backend import BackendEvents, TransferHandle
from bridge.engines.mqtt import reasons
from bridge.engines.mqtt.stats import Stats

log = logging.getLogger("bridge.backends.mqtt")

_NOT_YET = object()
# Bytes of a PUBLISH besides topic, payload and properties (fixed header, lengths, packet id).
_PUBLISH_OVERHEAD = 16


@dataclass(slots=True, eq=False)
class Outgoing:
    """One publish: a user transfer, or an internal one (dead letter) with ``on_done``."""

    topic: str
    payload: bytes | bytearray
    properties: Any  # paho Properties (MQTT 5) or None
    qos: int
    transfer: TransferHandle | None = None
    link_id: int | None = None
    on_done: Callable[[str | None], None] | None = None  # None = confirmed, str = failure
    cancelled: bool = False
    size: int = 0


class Outbound:
    def __init__(self, events: BackendEvents, stats: Stats, *, max_inflight: int,
                 buffer_limit: int, broker: str) -> None:
        self.events = events
        self.stats = stats
        self.client: paho.Client | None = None
        self.max_inflight = max_inflight
        self.window = max_inflight
        self.buffer_limit = buffer_limit
        self.broker = broker
        self.max_packet: int | None = None
        self.connected = False
        self.waiting: deque[Outgoing] = deque()
        self.inflight: dict[int, Outgoing] = {}
        self._by_transfer: dict[int, Outgoing] = {}
        # QoS 0 publishes can be written (and "confirmed") inside client.publish(), before
        # we know their packet id: those confirmations are parked here for a moment.
        self._early: dict[int, Any] = {}

    # -- connection state ------------------------------------------------------------------------
    def on_up(self, client: paho.Client, receive_maximum: int | None,
              maximum_packet_size: int | None) -> None:
        self.client = client
        self.connected = True
        self.window = min(self.max_inflight, receive_maximum or self.max_inflight)
        self.max_packet = maximum_packet_size
        # no pump here: this runs inside paho's CONNACK handling, before paho resends the
        # publishes it holds; the driver's next turn pumps, so the order is kept

    def on_down(self, detail: str) -> None:
        """Connection lost, reconnecting: QoS 1 stays with paho (resent); QoS 0 is gone."""
        self.connected = False
        for mid, item in list(self.inflight.items()):
            if item.qos == 0:
                del self.inflight[mid]
                self._fail(item, f"{detail}; the QoS 0 message may not have been written")

    # -- sending ---------------------------------------------------------------------------------
    def submit(self, item: Outgoing) -> None:
        if not self.connected and len(self.waiting) >= self.buffer_limit:
            self.stats.buffer_overflows += 1
            self._fail(item, f"{reasons.RESOURCE_LIMIT}: the MQTT connection to {self.broker} is "
                             f"down and {len(self.waiting)} sends are already held "
                             f"(mqtt.buffer_limit = {self.buffer_limit}); message not sent")
            return
        self.waiting.append(item)
        if item.transfer is not None:
            self._by_transfer[item.transfer.id] = item
        if not self.connected:
            self.stats.buffered_peak = max(self.stats.buffered_peak, len(self.waiting))
        else:
            self.pump()

    def pump(self) -> None:
        """Hand waiting publishes to paho while the window allows."""
        waiting = self.waiting
        client = self.client
        while waiting and self.connected and len(self.inflight) < self.window:
            item = waiting[0]
            if item.cancelled:
                waiting.popleft()
                continue
            assert client is not None
            if self.max_packet is not None and item.size + _PUBLISH_OVERHEAD > self.max_packet:
                waiting.popleft()
                self._fail(item, f"{reasons.MESSAGE_SIZE}: the message ({item.size} bytes with "
                                 f"topic and properties) exceeds the Maximum Packet Size "
                                 f"{self.max_packet} of MQTT broker {self.broker}")
                continue
            try:
                info = client.publish(item.topic, item.payload, qos=item.qos,
                                      properties=item.properties)
            except ValueError as exc:  # topic or payload paho will not send
                waiting.popleft()
                self._fail(item, f"{reasons.INVALID_FIELD}: MQTT publish to {item.topic!r} "
                                 f"refused: {exc}")
                continue
            early = self._early.pop(info.mid, _NOT_YET)
            if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
                break  # packet id still in use: retry on the next PUBACK
            lost = info.rc in (paho.MQTT_ERR_NO_CONN, paho.MQTT_ERR_CONN_LOST)
            if lost and item.qos == 0:
                break  # the socket just went; paho does not keep QoS 0: it stays waiting
            waiting.popleft()
            if info.rc != paho.MQTT_ERR_SUCCESS and not lost:
                self._fail(item, f"{reasons.FORCED}: MQTT publish to {item.topic!r} failed: "
                                 f"{paho.error_string(info.rc)}")
                continue
            # Socket gone with QoS 1: paho keeps the message and resends it after the reconnect
            # (with reconnect off, the connection error ends the sender anyway).
            self.stats.published += 1
            self.inflight[info.mid] = item
            if early is not _NOT_YET:
                self.on_publish(info.mid, early)

    def on_publish(self, mid: int, reason_code: Any) -> None:
        """PUBACK (QoS 1) or written (QoS 0)."""
        item = self.inflight.pop(mid, None)
        if item is None:
            self._early[mid] = reason_code
            return
        if reason_code is not None and reason_code.is_failure:
            self._fail(item, reasons.puback_detail(reason_code.value, reason_code.getName(),
                                                   item.topic))
        else:
            if reason_code is not None and reason_code.value == 0x10:
                self.stats.no_subscribers += 1
            self._done(item)

    def cancel(self, transfer: TransferHandle) -> None:
        item = self._by_transfer.pop(transfer.id, None)
        if item is not None:
            # If it is already with the broker it cannot be withdrawn; the contract has marked
            # the transfer cancelled, so its callback will not run either way.
            item.cancelled = True

    def drop_link(self, link_id: int) -> None:
        """A sender closed: its sends not yet handed to paho are not sent."""
        kept = deque(item for item in self.waiting if item.link_id != link_id)
        for item in self.waiting:
            if item.link_id == link_id and item.transfer is not None:
                self._by_transfer.pop(item.transfer.id, None)
        self.waiting = kept

    # -- outcomes --------------------------------------------------------------------------------
    def _done(self, item: Outgoing) -> None:
        self.stats.confirmed += 1
        if item.transfer is not None:
            self._by_transfer.pop(item.transfer.id, None)
            if not item.cancelled:
                self.events.transfer_settled(item.transfer)
        if item.on_done is not None:
            item.on_done(None)

    def _fail(self, item: Outgoing, detail: str) -> None:
        self.stats.send_failures += 1
        if item.transfer is not None:
            self._by_transfer.pop(item.transfer.id, None)
            if not item.cancelled:
                self.events.transfer_failed(item.transfer, detail)
        if item.on_done is not None:
            item.on_done(detail)
        else:
            log.debug("MQTT send failed: %s", detail)
