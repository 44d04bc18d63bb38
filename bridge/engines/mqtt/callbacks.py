"""paho's callbacks, shared by the MQTT backends (plain MQTT and the IoT Hub dialect).

They run on the driver thread inside ``loop_read`` and only hand over to the backend's `Inbox`
and `Outbound`; an exception there is a bug, never a protocol event, so it is logged and
contained rather than allowed to unwind paho's read loop.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as paho

from bridge.engines.mqtt.inbound import Inbox
from bridge.engines.mqtt.outbound import Outbound

log = logging.getLogger("bridge.backends.mqtt")


class PahoCallbacks:
    """Mixin for a backend with ``inbox`` and ``outbound``."""

    inbox: Inbox
    outbound: Outbound

    def _install_paho_callbacks(self, client: paho.Client) -> None:
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            self.inbox.on_message(msg)
        except Exception:
            # acknowledged so that it cannot hold the receive window for ever
            log.exception("MQTT message %d on %r could not be handed over; acknowledged and "
                          "dropped", msg.mid, msg.topic)
            if msg.qos:
                client.ack(msg.mid, msg.qos)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        try:
            self.outbound.on_publish(mid, reason_code)
        except Exception:
            log.exception("MQTT publish confirmation %d failed", mid)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        try:
            self.inbox.on_suback(mid, reason_codes)
        except Exception:
            log.exception("MQTT SUBACK %d failed", mid)
