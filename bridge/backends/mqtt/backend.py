"""`MQTTBackend`: one AMQP connection of the contract carried by one MQTT connection.

Commands from the contract (any thread) are queued for the driver thread, which owns the paho
client; results go back through `BackendEvents`. The wiring (driver, outbound window, inbox) is
the MQTT engine's (`bridge.engines.mqtt.connection`), shared with the ``iothub`` backend. The
AMQP concepts map as follows (the full table, with what differs, is docs/semantics.md):

- connection: the MQTT connection (CONNACK -> ``connection_opened``; refusal or socket failure
  -> ``connection_error``; loss -> ``connection_error`` with ``reconnect = "off"``, or a quiet
  reconnect with ``"auto"``);
- session: nothing on the wire; SESSION_OPEN is queued at once (a later dispatcher turn);
- sender: a topic (``mqtt.topic_rules``); SENDER_OPEN likewise;
- receiver: a subscription to a topic filter; opens on SUBACK.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.backends.mqtt.mapping import TopicRoute, compile_rules, map_path
from bridge.backends.mqtt.settings import MQTTSettings
from bridge.contract.backend import (
    BackendContext,
    LinkHandle,
    Outcome,
    SessionHandle,
    TransferHandle,
)
from bridge.contract.message import Message
from bridge.engines.mqtt import codec, reasons
from bridge.engines.mqtt.client import build_client, connect_properties, tls_context
from bridge.engines.mqtt.connection import MQTTConnection, live_connections
from bridge.engines.mqtt.endpoint import (
    client_id_for,
    logical_credentials,
    parse_broker_url,
    plaintext_credentials_problem,
)
from bridge.engines.mqtt.inbound import InboundOptions
from bridge.engines.mqtt.outbound import Outgoing
from bridge.engines.mqtt.transport import BrokerLimits, DriverOptions

log = logging.getLogger("bridge.backends.mqtt")


def live_backends(agent_id: str | None = None) -> list[MQTTBackend]:
    """MQTT connections of this process that are not closed (of one agent, if given)."""
    return [c for c in live_connections(agent_id) if isinstance(c, MQTTBackend)]


class MQTTBackend(MQTTConnection):
    def __init__(self, context: BackendContext) -> None:
        settings: MQTTSettings = context.config or MQTTSettings()
        self.settings = settings
        self.client_id = client_id_for(settings.client_id, context.agent_id,
                                       context.connection_index)
        self.endpoint = parse_broker_url(settings.url)
        self.v5 = settings.protocol == "5"
        self._logical_url = context.url
        self._rules = compile_rules(settings.topic_rules)
        self._variables = {"client_id": self.client_id, "agent_id": context.agent_id}
        self._warned_drop = False
        self._opened = False
        super().__init__(
            context, name=f"bridge-mqtt-{self.client_id}", broker=self.endpoint.describe(),
            driver_options=self._driver_options(),
            inbound_options=InboundOptions(
                # receivers stay at QoS 1 (settled by the application): QoS 2 is for sends
                v5=self.v5, qos=min(settings.qos, 1), release_delay=settings.release_delay,
                max_delivery_count=settings.max_delivery_count,
                dead_letter_topic=settings.dead_letter_topic,
                shared_group=settings.shared_group, hold_resumed=True,
                topic_property=settings.topic_property),
            max_inflight=settings.max_inflight, buffer_limit=settings.buffer_limit)

    def __repr__(self) -> str:
        return (f"<MQTTBackend {self.client_id!r} -> {self.endpoint.describe()} "
                f"{self.driver.state}>")

    # -- setup -----------------------------------------------------------------------------------
    def _driver_options(self) -> DriverOptions:
        s = self.settings
        props = None
        if self.v5:
            props = connect_properties(receive_maximum=s.receive_maximum,
                                       session_expiry=s.session_expiry)
        return DriverOptions(
            endpoint=self.endpoint, keepalive=s.keepalive, clean_start=s.clean_start, v5=self.v5,
            connect_timeout=s.connect_timeout, reconnect=s.reconnect == "auto",
            min_delay=s.reconnect_min_delay, max_delay=s.reconnect_max_delay,
            max_attempts=s.reconnect_max_attempts, connect_properties=props)

    def _credentials(self) -> tuple[str | None, str | None]:
        s = self.settings
        if s.username is not None or s.password is not None:
            password = s.password.get_secret_value() if s.password is not None else None
            return s.username, password
        if self.endpoint.username is not None:
            return self.endpoint.username, self.endpoint.password
        return logical_credentials(self._logical_url)

    def _make_client(self) -> paho.Client:
        """Runs on the driver thread, so a bad TLS file becomes CONNECTION_ERROR, not a raise."""
        s = self.settings
        tls = None
        if self.endpoint.tls:
            tls = tls_context(str(s.ca_file) if s.ca_file else None,
                              str(s.cert_file) if s.cert_file else None,
                              str(s.key_file) if s.key_file else None,
                              verify=s.verify, insecure=s.insecure)
        elif s.ca_file or s.cert_file:
            log.warning("mqtt.ca_file/cert_file are set but %s is not a TLS URL (use mqtts:// "
                        "or wss://); connecting without TLS", self.endpoint.describe())
        username, password = self._credentials()
        client = build_client(endpoint=self.endpoint, client_id=self.client_id, v5=self.v5,
                              clean_start=s.clean_start, username=username, password=password,
                              connect_timeout=s.connect_timeout, tls=tls)
        self._install_paho_callbacks(client)
        return client

    # -- codec -----------------------------------------------------------------------------------
    def _encode(self, message: Message) -> tuple[bytes, Any, int]:
        """(payload, PUBLISH properties or None, bytes the properties take)."""
        if self.v5:
            encoded = codec.encode_v5(message)
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = encoded.user_properties
            return encoded.payload, props, encoded.properties_size
        if self.settings.properties_v311 == "envelope":
            return codec.encode_envelope(message), None, 0
        if message.properties() and not self._warned_drop:
            self._warned_drop = True
            log.warning("MQTT 3.1.1 with properties_v311 = 'drop': application properties and "
                        "the body kind are not sent (connection %s; logged once)",
                        self.client_id)
        return codec.encode_raw(message), None, 0

    def _decode(self, msg: paho.MQTTMessage) -> Message:
        if self.v5:
            props = msg.properties
            return codec.decode_v5(msg.payload, getattr(props, "UserProperty", None),
                                   getattr(props, "PayloadFormatIndicator", None))
        return codec.decode_v311(msg.payload)

    # -- addresses -------------------------------------------------------------------------------
    def route(self, role: str, path: str) -> TopicRoute:
        """Where *path* goes for a ``"sender"`` or ``"receiver"``; raises `AddressError`."""
        return map_path(path, role, self._rules, variables=self._variables,
                        reserved_prefix=self.settings.reserved_prefix)

    def validate_path(self, role: str, path: str) -> None:
        self.route(role, path)

    # -- Backend commands (any thread; never block) ----------------------------------------------
    def open(self) -> None:
        # Decided before the driver starts: a refused connection never opens a socket.
        problem = plaintext_credentials_problem(
            self.endpoint, self._credentials()[1],
            allowed=self.settings.allow_plaintext_credentials)
        if problem is not None:
            log.error("MQTT connection %s not attempted: %s", self.client_id, problem)
            self.events.connection_error(problem)
            self.wake()
            return
        self._start()

    def close_session(self, session: SessionHandle) -> None:
        self.driver.call(self._close_session, session)

    def open_link(self, link: LinkHandle) -> None:
        try:
            link.backend_state = self.route(link.role, link.path)
        except Exception as exc:  # validate_path ran already; only a changed rule gets here
            self.driver.call(self.events.link_error, link, f"{reasons.INVALID_FIELD}: {exc}")
            return
        if link.role == "sender":
            self.events.link_opened(link)  # a topic needs nothing from the broker
            self.wake()
        else:
            self.driver.call(self.inbox.open, link, link.backend_state.topic)

    def close_link(self, link: LinkHandle) -> None:
        self.driver.call(self._close_link, link)

    def send(self, transfer: TransferHandle) -> None:
        route: TopicRoute = transfer.link.backend_state
        try:
            # pure: done on the caller's thread
            payload, props, props_size = self._encode(transfer.message)
        except codec.CodecError as exc:
            self.events.transfer_failed(transfer, f"{reasons.INVALID_FIELD}: {exc}")
            self.wake()
            return
        size = len(payload) + codec.utf8_length(route.topic) + props_size
        self.driver.call(self.outbound.submit,
                         Outgoing(route.topic, payload, props, self.settings.qos,
                                  transfer=transfer, link_id=transfer.link.id, size=size))

    def settle(self, link: LinkHandle, token: Any, outcome: Outcome) -> None:
        self.driver.call(self.inbox.settle, token, outcome)

    # -- driver thread ---------------------------------------------------------------------------
    def _close_link(self, link: LinkHandle) -> None:
        if link.role == "receiver":
            self.inbox.close(link)
        else:
            self.outbound.drop_link(link.id)

    def _close_session(self, session: SessionHandle) -> None:
        for sub in list(self.inbox.subs.values()):
            for link in list(sub.receivers.values()):
                if link.session is session:
                    self.inbox.close(link)
        # senders of the session: their queued sends are not sent
        for item in list(self.outbound.waiting):
            if item.transfer is not None and item.transfer.link.session is session \
                    and item.link_id is not None:
                self.outbound.drop_link(item.link_id)

    # DriverHooks
    def on_up(self, session_present: bool, limits: BrokerLimits) -> None:
        client = self.driver.client
        assert client is not None
        if self._opened:
            self.stats.reconnects += 1
        self.inbox.on_up(client, session_present)
        self.outbound.on_up(client, limits.receive_maximum, limits.maximum_packet_size)
        if not self._opened:
            self._opened = True
            self.events.connection_opened()

    def on_down(self, detail: str) -> None:
        self.inbox.on_down()
        self.outbound.on_down(detail)

    def on_failed(self, detail: str) -> None:
        self._forget()
        if not self._closing:
            self.events.connection_error(detail)


def create(context: BackendContext) -> MQTTBackend:
    from bridge.engines.mqtt import fastprops

    fastprops.install()
    return MQTTBackend(context)
