"""Counters of one MQTT connection, for tests, logs and the hub-side view."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Stats:
    # sending
    published: int = 0  # handed to the broker (a resend after reconnect is not counted again)
    confirmed: int = 0  # PUBACK (QoS 1) or written (QoS 0)
    send_failures: int = 0
    no_subscribers: int = 0  # PUBACK 0x10: the broker had nobody to give the message to
    buffered_peak: int = 0  # most sends held at once while reconnecting
    buffer_overflows: int = 0
    # receiving
    received: int = 0  # PUBLISH packets from the broker
    duplicates_flagged: int = 0  # ... of which the broker marked DUP (a redelivery)
    unrouted: int = 0  # no open receiver wanted it (acknowledged and dropped)
    accepted: int = 0
    rejected: int = 0
    released: int = 0
    redelivered: int = 0  # local redeliveries after release
    dead_lettered: int = 0  # republished to mqtt.dead_letter_topic
    discarded: int = 0  # rejected without a dead-letter topic, or released on a closed receiver
    resumed: int = 0  # broker resends (resumed session) matched to deliveries already given
    stale_acks: int = 0  # settled after a reconnect with a clean session: PUBACK impossible
    # connection
    reconnects: int = 0

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)
