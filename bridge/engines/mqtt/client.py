"""Building the paho client: TLS context, the socket it runs on, CONNECT properties."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.engines.mqtt.bufferedsocket import BufferedSocket
from bridge.engines.mqtt.endpoint import MQTTEndpoint

log = logging.getLogger("bridge.backends.mqtt")


def no_delay(sock: Any) -> None:
    """Turn Nagle's algorithm off. paho writes each small packet (a PUBACK is 4 bytes) on its
    own; with Nagle and the peer's delayed ACKs, every second one waited ~40 ms, which capped a
    QoS 1 stream at a few hundred messages per second."""
    raw = getattr(sock, "_socket", sock)  # paho's WebSocket wrapper keeps the TCP socket there
    with contextlib.suppress(AttributeError, OSError):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None, *,
                verify: bool, insecure: bool) -> ssl.SSLContext:
    """Verification is on unless turned off explicitly; turning it off is logged (WARNING) each
    time a connection is set up, since anyone on the path can then impersonate the broker."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    if insecure:
        context.check_hostname = False
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        log.warning("MQTT TLS certificate verification is OFF (mqtt.verify = false): the "
                    "broker's identity is not checked")
    elif insecure:
        log.warning("MQTT TLS host-name check is OFF (mqtt.insecure = true): any certificate "
                    "the CA signed is accepted for this broker")
    return context


class _Client(paho.Client):
    """paho's client on a `BufferedSocket` (fewer system calls per packet), connected by the
    driver without blocking its loop: `prepared` is the TCP (or TLS) socket the driver has
    connected (and whose handshake it did) when it calls ``reconnect``. Only the WebSocket
    upgrade, over that socket, is still paho's own blocking exchange (one round trip)."""

    prepared: Any = None

    def _create_socket(self) -> Any:
        sock, self.prepared = self.prepared, None
        if sock is None:
            sock = super()._create_socket()  # paho's blocking connect (the driver never asks)
        elif self._transport == "websockets":
            sock.settimeout(self._connect_timeout)
            sock = paho._WebsocketWrapper(
                socket=sock, host=self._host, port=self._port, is_ssl=self._ssl,
                path=self._websocket_path, extra_headers=self._websocket_extra_headers)
        return BufferedSocket(sock, coalesce_writes=self.transport != "websockets")


def build_client(*, endpoint: MQTTEndpoint, client_id: str, v5: bool, clean_start: bool,
                 username: str | None, password: str | None, connect_timeout: float,
                 tls: ssl.SSLContext | None) -> paho.Client:
    """A paho client configured for our loop: manual acks, no paho-side window or retry."""
    kwargs: dict[str, Any] = {
        "callback_api_version": CallbackAPIVersion.VERSION2,
        "client_id": client_id,
        "protocol": paho.MQTTv5 if v5 else paho.MQTTv311,
        "transport": "websockets" if endpoint.websockets else "tcp",
        "reconnect_on_failure": False,
        "manual_ack": True,
    }
    if not v5:
        kwargs["clean_session"] = clean_start
    client = _Client(**kwargs)
    client.connect_timeout = connect_timeout
    client.max_inflight_messages_set(0)  # the backend keeps the window (link credit)
    client.max_queued_messages_set(0)
    if endpoint.websockets:
        client.ws_set_options(path=endpoint.ws_path)
    if tls is not None:
        client.tls_set_context(tls)
    if username is not None:
        client.username_pw_set(username, password)
    # paho logs every packet: only when its logger was asked for explicitly (not inherited)
    paho_log = logging.getLogger("bridge.backends.mqtt.paho")
    if paho_log.level and paho_log.level <= logging.DEBUG:
        client.enable_logger(paho_log)
    return client


def connect_properties(*, receive_maximum: int, session_expiry: int) -> Properties:
    """MQTT 5 CONNECT properties: our Receive Maximum (receivers' credit), session expiry."""
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = receive_maximum
    if session_expiry:
        props.SessionExpiryInterval = session_expiry
    return props
