"""Raw device-side clients for the stand-in's tests: proton (blocking) and paho 2.x over TLS.

They speak the wire protocols directly (no bridge code), so what the tests check is the
stand-in's behaviour, not ours.
"""

from __future__ import annotations

import queue
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from proton import Condition, Endpoint, Message, SSLDomain
from proton.utils import BlockingConnection, BlockingReceiver, BlockingSender, LinkDetached

from bridge.backends.iothub import sas, topics
from bridge.testing.hub import Hub, HubDevice

TIMEOUT = 10.0


# --------------------------------------------------------------------------------------- AMQP


class AmqpDevice:
    """A blocking proton client on the AMQP surface (TLS, SASL ANONYMOUS unless *user*)."""

    def __init__(self, hub: Hub, *, user: str | None = None, password: str | None = None) -> None:
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        domain.set_trusted_ca_db(str(hub.ca_file))
        domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
        self.hub = hub
        self.conn = BlockingConnection(hub.amqp_url, ssl_domain=domain, timeout=TIMEOUT,
                                       allowed_mechs="PLAIN" if user else "ANONYMOUS",
                                       user=user, password=password)
        self._cbs: tuple[BlockingReceiver, BlockingSender] | None = None

    def put_token(self, token: str, audience: str,
                  token_type: str = sas.LEGACY_CBS_TOKEN_TYPE,
                  message_id: str | None = None) -> Message:
        """Send a put-token on ``$cbs`` (links opened on first use) and return the reply."""
        if self._cbs is None:
            # the legacy library's order: receiver on $cbs first, then the sender
            self._cbs = (self.conn.create_receiver("$cbs"), self.conn.create_sender("$cbs"))
        receiver, sender = self._cbs
        sender.send(Message(id=message_id or str(uuid.uuid4()), body=token,
                            properties={"operation": "put-token", "type": token_type,
                                        "name": audience}))
        reply = receiver.receive(TIMEOUT)
        receiver.accept()
        return reply

    def authorise(self, device: HubDevice, ttl: float = 3600.0) -> Message:
        reply = self.put_token(device.token(ttl), f"{device.host_name}/devices/{device.device_id}")
        assert reply.properties["status-code"] == 200, reply.properties
        return reply

    def sender(self, address: str) -> BlockingSender:
        return self.conn.create_sender(address)

    def receiver(self, address: str, credit: int = 10) -> BlockingReceiver:
        return self.conn.create_receiver(address, credit=credit)

    def refused(self, role: str, address: str) -> Condition:
        """Attach a link that the hub must refuse; the condition it detached with."""
        try:
            link = (self.conn.create_sender(address) if role == "sender"
                    else self.conn.create_receiver(address))
            self.conn.wait(lambda: bool(link.link.state & Endpoint.REMOTE_CLOSED),
                           timeout=TIMEOUT)
            detached = link.link
        except LinkDetached as exc:
            detached = exc.link
        detached.close()
        assert detached.remote_condition is not None, "detached without a condition"
        return detached.remote_condition

    def wait_detached(self, link: BlockingSender | BlockingReceiver,
                      timeout: float = TIMEOUT) -> Condition:
        """Pump I/O until the hub detaches *link*; its condition."""
        deadline = time.monotonic() + timeout
        while not link.link.state & Endpoint.REMOTE_CLOSED:
            try:
                self.conn.wait(lambda: bool(link.link.state & Endpoint.REMOTE_CLOSED),
                               timeout=max(0.01, deadline - time.monotonic()))
            except LinkDetached:
                continue  # this link or another one of the connection: check again
        # Close our end too: its pending remote-close event must not raise LinkDetached later
        # (proton's blocking handlers raise only for links still open locally).
        link.link.close()
        condition = link.link.remote_condition
        assert condition is not None, "detached without a condition"
        return condition

    def pump_until(self, predicate: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        """Process this client's I/O (dispositions go out) until hub-side *predicate()*."""
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError("hub state not reached while pumping the AMQP client")
            try:
                self.conn.wait(lambda: False, timeout=0.05)
            except Exception as exc:  # proton's Timeout: nothing happened, check again
                if type(exc).__name__ != "Timeout":
                    raise
        return result

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------------------- MQTT


class MqttDevice:
    """A paho 2.x client over TLS to the MQTT surface, recording what happens to it."""

    def __init__(self, hub: Hub, device: HubDevice, *, token: str | None = None,
                 client_id: str | None = None, username: str | None = None,
                 protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311,
                 clean_session: bool = True, manual_ack: bool = False) -> None:
        self.device = device
        kwargs: dict[str, Any] = {"clean_session": clean_session} \
            if protocol != mqtt.MQTTv5 else {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id if client_id is not None
                                  else device.device_id,
                                  protocol=protocol, manual_ack=manual_ack,
                                  reconnect_on_failure=False, **kwargs)
        self.client.username_pw_set(
            username if username is not None else topics.username(device.host_name,
                                                                  device.device_id),
            token if token is not None else device.token())
        self.client.tls_set_context(ssl.create_default_context(cafile=str(hub.ca_file)))
        self.port = hub.mqtt_port
        self.connack: Any = None
        self.session_present: bool | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._subacks: dict[int, list[Any]] = {}
        self._sub_events: dict[int, threading.Event] = {}
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        self.connack = reason
        self.session_present = bool(flags.session_present)
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.disconnected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        self._subacks[mid] = list(reasons)
        self._sub_events.setdefault(mid, threading.Event()).set()

    def connect(self) -> Any:
        """Connect and wait for the CONNACK; its reason code."""
        self.client.connect("localhost", self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK"
        return self.connack

    def subscribe(self, topic_filter: str, qos: int = 1) -> list[Any]:
        result, mid = self.client.subscribe(topic_filter, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        event = self._sub_events.setdefault(mid, threading.Event())
        assert event.wait(TIMEOUT), f"no SUBACK for {topic_filter}"
        return self._subacks[mid]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"no PUBACK for {topic}"

    def next_message(self, timeout: float = TIMEOUT) -> mqtt.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message arrived") from None

    def close(self) -> None:
        if self.connected.is_set() and not self.disconnected.is_set():
            self.client.disconnect()
        self.client.loop_stop()
        self.client._reset_sockets()  # paho's socket pair, otherwise freed only by the GC


def raw_connect(hub: Hub, client_id: str, username: str | None, password: str | None,
                level: int = 4) -> bytes:
    """Send one hand-made CONNECT over TLS and return the raw CONNACK bytes (b"" if none)."""

    def string(value: str) -> bytes:
        data = value.encode()
        return struct.pack("!H", len(data)) + data

    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = string("MQTT" if level >= 4 else "MQIsdp") + bytes([level, flags]) + \
        struct.pack("!H", 30)
    if level == 5:
        body += b"\x00"  # no properties
    body += string(client_id)
    if username is not None:
        body += string(username)
    if password is not None:
        body += string(password)
    packet = bytes([0x10, len(body)]) if len(body) < 128 else \
        bytes([0x10, (len(body) & 0x7F) | 0x80, len(body) >> 7])
    context = ssl.create_default_context(cafile=str(hub.ca_file))
    with socket.create_connection(("localhost", hub.mqtt_port), TIMEOUT) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(packet + body)
        data = b""
        while True:
            chunk = tls.recv(1024)
            if not chunk:
                return data
            data += chunk
