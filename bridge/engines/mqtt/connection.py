"""`MQTTConnection`: the wiring both MQTT backends share for one contract connection.

One contract connection is one MQTT connection: a `Driver` (the network side, on its loop), an
`Outbound` window and an `Inbox`, reporting to the connection's `BackendEvents`. The ``mqtt``
backend adds address rules and its codec; the ``iothub`` backend adds IoT Hub's topics,
property bags, SAS and the emulated ``$cbs`` node. Each subclass builds its paho client
(`_make_client`) and decodes what arrives (`_decode`).
"""

from __future__ import annotations

import weakref
from typing import Any

import paho.mqtt.client as paho

from bridge.contract.backend import BackendContext, SessionHandle, TransferHandle
from bridge.contract.message import Message
from bridge.engines.mqtt.callbacks import PahoCallbacks
from bridge.engines.mqtt.inbound import InboundOptions, Inbox
from bridge.engines.mqtt.outbound import Outbound
from bridge.engines.mqtt.stats import Stats
from bridge.engines.mqtt.transport import BrokerLimits, Driver, DriverOptions

_live: weakref.WeakSet[MQTTConnection] = weakref.WeakSet()


def live_connections(agent_id: str | None = None) -> list[MQTTConnection]:
    """MQTT connections of this process that are not closed (of one agent, if given)."""
    return [c for c in list(_live) if agent_id is None or c.agent_id == agent_id]


class MQTTConnection(PahoCallbacks):
    """Driver, outbound window and inbox of one MQTT connection (see the module doc)."""

    inbox_class: type[Inbox] = Inbox

    def __init__(self, context: BackendContext, *, name: str, broker: str,
                 driver_options: DriverOptions, inbound_options: InboundOptions,
                 max_inflight: int, buffer_limit: int, on_demand: bool = False,
                 before_attempt: Any = None) -> None:
        self.events = context.events
        self.wake = context.wake
        self.agent_id = context.agent_id
        self.stats = Stats()
        self._closing = False
        self.outbound = Outbound(self.events, self.stats, max_inflight=max_inflight,
                                 buffer_limit=buffer_limit, broker=broker)
        self.driver = Driver(self._make_client, driver_options, self, name=name,
                             wake_reports=context.wake, on_demand=on_demand,
                             before_attempt=before_attempt)
        self.inbox = self.inbox_class(self.events, self.stats, self.outbound, inbound_options,
                                      self._decode, self.driver.call_later,
                                      lambda: self.driver.epoch)

    # -- what a subclass provides ----------------------------------------------------------------
    def on_up(self, session_present: bool, limits: BrokerLimits) -> None:
        raise NotImplementedError

    def on_down(self, detail: str) -> None:
        raise NotImplementedError

    def on_failed(self, detail: str) -> None:
        raise NotImplementedError

    def _make_client(self) -> paho.Client:
        """The paho client (runs on the driver thread: a bad TLS file is a connection error)."""
        raise NotImplementedError

    def _decode(self, msg: paho.MQTTMessage) -> Message:
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------------
    def _start(self) -> None:
        _live.add(self)
        self.driver.start()

    def close(self) -> None:
        self._closing = True
        _live.discard(self)
        self.driver.stop()

    def wait_closed(self, timeout: float) -> bool:
        return self.driver.join(timeout)

    def _forget(self) -> None:
        """The connection ended on its own: no longer live."""
        _live.discard(self)

    # -- commands both backends answer the same way ------------------------------------------------
    def open_session(self, session: SessionHandle) -> None:
        # Nothing on the wire: the event is only queued, so SESSION_OPEN comes on a later
        # dispatcher turn, never inside opensession().
        self.events.session_opened(session)
        self.wake()

    def cancel(self, transfer: TransferHandle) -> None:
        self.driver.call(self.outbound.cancel, transfer)

    def status(self) -> str:
        """``up``, ``connecting`` (never up yet), ``reconnecting`` or ``down`` (ended)."""
        state = self.driver.state
        if state == "up":
            return "up"
        if state == "done":
            return "down"
        return "reconnecting" if self.driver.ever_up else "connecting"

    # -- DriverHooks -----------------------------------------------------------------------------
    def on_turn(self) -> None:
        self.outbound.pump()
