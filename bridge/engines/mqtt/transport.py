"""The network side of one MQTT connection: one thread owns the paho client and its socket.

Every paho call (connect, publish, subscribe, ack, disconnect) happens on this thread, driven by
paho's external-loop API (``loop_read`` / ``loop_write`` / ``loop_misc`` around our own
``select``): paho is then single-threaded, and we own the reconnect policy (backoff with jitter,
a CONNACK time-out, give-up) instead of paho's built-in retry loop. Other threads talk to the
driver only through `Driver.call` (a queue plus a wake-up socket), so backend commands never
block on the network.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge.engines.mqtt import reasons
from bridge.engines.mqtt.bufferedsocket import BufferedSocket
from bridge.engines.mqtt.endpoint import MQTTEndpoint, backoff_delay
from bridge.loop.core import LoopCore, Timer

log = logging.getLogger("bridge.backends.mqtt")

class DriverState(StrEnum):
    """Where one MQTT connection is."""

    IDLE = "idle"  # not connected, not trying (before the first attempt, or parked)
    CONNECTING = "connecting"  # waiting for CONNACK
    UP = "up"
    DOWN = "down"  # lost, waiting to reconnect
    DONE = "done"  # ended: no more attempts


IDLE, CONNECTING, UP, DOWN, DONE = DriverState
_READ_BURST = 64  # packets read per wake-up before timers and commands get a turn
_SHUTDOWN_GRACE = 2.0  # seconds to flush pending acks and the DISCONNECT on close


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """What the broker announced in CONNACK (MQTT 5; None when it set no limit)."""

    receive_maximum: int | None = None
    maximum_packet_size: int | None = None


class DriverHooks(Protocol):
    """What the backend does on connection-level changes (called on the driver thread)."""

    def on_up(self, session_present: bool, limits: BrokerLimits) -> None: ...
    def on_down(self, detail: str) -> None: ...
    def on_failed(self, detail: str) -> None: ...
    def on_turn(self) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverOptions:
    """Everything a connect attempt needs besides the client."""

    endpoint: MQTTEndpoint
    keepalive: int
    clean_start: bool
    v5: bool
    connect_timeout: float
    reconnect: bool
    min_delay: float
    max_delay: float
    max_attempts: int
    connect_properties: Properties | None = None  # MQTT 5 CONNECT properties


class Driver:
    """Connects, keeps the connection (or reconnects), runs commands and timers on its thread.

    By default the thread connects as soon as it starts and a failure that cannot be retried is
    terminal (`DriverHooks.on_failed`, thread ends). With ``on_demand=True`` (the IoT Hub
    backend, whose credentials may only arrive later) the thread starts *parked* (no
    connection) and connects when the owner calls `restart`; a refused CONNACK, or a loss with
    reconnect off, *parks* it again instead of ending it, and ``on_failed`` is then not
    terminal (`state` is ``idle``, not ``done``). ``before_attempt`` runs before every connect
    attempt (fresh credentials).
    """

    def __init__(self, client_factory: Callable[[], paho.Client], options: DriverOptions,
                 hooks: DriverHooks, name: str, *, wake_reports: Callable[[], None],
                 on_demand: bool = False,
                 before_attempt: Callable[[paho.Client], None] | None = None) -> None:
        self._client_factory = client_factory
        self.client: paho.Client | None = None
        self.options = options
        self.hooks = hooks
        self.on_demand = on_demand
        self._before_attempt = before_attempt
        self.state = IDLE
        self.epoch = 0  # +1 per accepted CONNACK: acks of older deliveries are stale
        self.ever_up = False
        self.refused_code: int | None = None  # reason code of the last refused CONNACK
        self._attempts = 0
        self._next_attempt = 0.0
        self._connack_deadline = 0.0
        self._refused: str | None = None
        self._disconnect: tuple[bool, int, str] | None = None
        # commands from other threads, timers, and the wake-up the select waits on
        self.core = LoopCore(name)
        # wakes the agent's dispatcher for what this thread reported (before it blocks)
        self._wake_reports = wake_reports
        self._stop_requested = False
        self._finished = False  # no more commands are run
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._done = threading.Event()

    # -- any thread ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the driver thread, in call order; dropped once it stopped."""
        if self._finished:
            return
        self.core.call(fn, *args)

    def stop(self) -> None:
        """Disconnect cleanly (pending acks first) and end the thread; returns at once."""
        if self._thread.ident is None:  # never started (refused before any connect attempt)
            self._finished = True
            self.state = DONE
            self._done.set()
            self.core.close()
            return
        self._stop_requested = True
        self.core.wake_now()

    def join(self, timeout: float) -> bool:
        if not self._thread.is_alive() and not self._thread.ident:
            return True  # never started
        return self._done.wait(timeout)

    @property
    def connected(self) -> bool:
        return self.state == UP

    @property
    def broker(self) -> str:
        return self.options.endpoint.describe()

    # -- driver thread only ----------------------------------------------------------------------
    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return self.core.call_later(delay, fn)

    def _run(self) -> None:
        try:
            try:
                self.client = self._client_factory()
            except Exception as exc:  # bad TLS files, unusable options: the open fails
                self._finish(f"{reasons.INTERNAL}: cannot set up the MQTT client for "
                             f"{self.broker}: {type(exc).__name__}: {exc}")
                return
            self._install_callbacks(self.client)
            if not self.on_demand:
                self._attempt()
            while self.state != DONE:
                self._turn()
        except Exception as exc:
            log.exception("MQTT network loop for %s crashed", self.broker)
            if self.state != DONE:
                self._finish(f"{reasons.INTERNAL}: the MQTT network loop stopped: {exc}")
        finally:
            self._drop_socket()
            self._wake_reports()
            self._done.set()
            self.core.close()

    def _install_callbacks(self, client: paho.Client) -> None:
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect

    def _turn(self) -> None:
        self.core.run_commands()
        if self._stop_requested:
            self._shutdown()
            return
        self.core.run_timers()
        now = time.monotonic()
        if self.state == DOWN and now >= self._next_attempt:
            self._attempt()
            return
        if self.state == CONNECTING and now >= self._connack_deadline:
            self._drop_socket()
            self._attempt_failed(f"{reasons.FORCED}: no CONNACK from MQTT broker {self.broker} "
                                 f"within {self.options.connect_timeout:g} s")
            return
        if self.state in (UP, CONNECTING) and self.client is not None \
                and self.client.socket() is None:
            # the socket went outside loop_read (a write from a command, a publish, an ack)
            self._socket_gone()
            return
        if self.state == UP:
            self.hooks.on_turn()
        self._wait_io()

    def _timeout(self) -> float:
        now = time.monotonic()
        # keep-alive checks run at least once a second
        timeout = self.core.timeout(1.0, now) or 0.0
        if self.state == DOWN:
            timeout = min(timeout, self._next_attempt - now)
        elif self.state == CONNECTING:
            timeout = min(timeout, self._connack_deadline - now)
        return max(0.0, timeout)

    def _wait_io(self) -> None:
        client = self.client
        assert client is not None
        sock = client.socket()
        if isinstance(sock, BufferedSocket) and not sock.flush() and sock.failed:
            client.loop_read()  # paho meets the write error and runs its connection-lost path
            if client.socket() is None:
                self._socket_gone()
            return
        timeout = self._timeout()
        core = self.core
        readers: list[Any] = [core]
        writers: list[Any] = []
        if sock is not None:
            readers.append(sock)
            if client.want_write() or _unsent(sock):
                writers.append(sock)
            if _pending(sock):
                timeout = 0.0
        self._wake_reports()  # the dispatcher, for everything this turn handed it
        if not core.prepare_to_sleep():
            timeout = 0.0  # a command came in meanwhile
        readable, writable, _ = select.select(readers, writers, [], timeout)
        core.woke(core in readable)
        if sock is None:
            return
        if sock in readable or _pending(sock):
            for _ in range(_READ_BURST):
                client.loop_read()
                if client.socket() is not sock or not _readable(sock):
                    break
            self._wake_reports()  # what was read goes to the dispatcher now, not after our turn
        if client.socket() is sock and sock in writable:
            client.loop_write()
        if client.socket() is sock:
            client.loop_misc()
        if client.socket() is None:
            self._socket_gone()

    # -- connection state ------------------------------------------------------------------------
    def restart(self) -> None:
        """(Driver thread; on-demand drivers.) Connect now; if connected or connecting, send
        DISCONNECT first. Used when the credentials changed (a renewed SAS token)."""
        if self.state == DONE:
            return
        was_up = self.state == UP
        self._disconnect_now()
        self.state = IDLE
        if was_up:
            self.hooks.on_down(f"{reasons.FORCED}: reconnecting to {self.broker} with new "
                               f"credentials")
        self._attempt()

    def park(self) -> None:
        """(Driver thread; on-demand drivers.) Drop the connection (DISCONNECT if up) and stay
        disconnected until `restart`; no hook is called."""
        if self.state == DONE:
            return
        self._disconnect_now()
        self.state = IDLE

    def _park(self, detail: str) -> None:
        self._drop_socket()
        self.state = IDLE
        self.hooks.on_failed(detail)

    def _attempt(self) -> None:
        client = self.client
        assert client is not None
        self._refused = None
        self._disconnect = None
        self.refused_code = None
        options = self.options
        self._wake_reports()  # connecting may block (DNS, TCP, TLS handshake)
        try:
            if self._before_attempt is not None:
                self._before_attempt(client)
            if self.state == IDLE:
                kwargs: dict[str, Any] = {}
                if options.v5:
                    kwargs["clean_start"] = options.clean_start
                    kwargs["properties"] = options.connect_properties
                # connect_async only records the target; the blocking part is reconnect(),
                # which runs here on the driver thread.
                client.connect_async(options.endpoint.host, options.endpoint.port,
                                     options.keepalive, **kwargs)
            client.reconnect()
        except Exception as exc:  # DNS, TCP, TLS, WebSocket handshake
            self._drop_socket()
            self._attempt_failed(reasons.transport_detail(exc, self.broker))
            return
        _no_delay(client.socket())
        self.state = CONNECTING
        self._connack_deadline = time.monotonic() + options.connect_timeout

    def _attempt_failed(self, detail: str) -> None:
        options = self.options
        if self.on_demand and self.refused_code is not None:
            self._park(detail)  # the owner decides: refused credentials are not retried
            return
        if not (self.ever_up and options.reconnect):
            self._finish(detail)
            return
        self._attempts += 1
        if options.max_attempts and self._attempts >= options.max_attempts:
            self._finish(f"{detail} (gave up after {self._attempts} reconnect attempts)")
            return
        delay = backoff_delay(self._attempts, options.min_delay, options.max_delay)
        log.warning("MQTT reconnect to %s failed (%s); next attempt in %.2f s",
                    self.broker, detail, delay)
        self.state = DOWN
        self._next_attempt = time.monotonic() + delay

    def _became_up(self, session_present: bool, limits: BrokerLimits) -> None:
        if self.ever_up:
            log.info("MQTT connection to %s re-established (session present: %s)",
                     self.broker, session_present)
        self.state = UP
        self.ever_up = True
        self._attempts = 0
        self.epoch += 1
        self.hooks.on_up(session_present, limits)

    def _socket_gone(self) -> None:
        if self.state == CONNECTING:
            detail = self._refused or self._disconnect_detail() or (
                f"{reasons.FORCED}: MQTT broker {self.broker} closed the connection before "
                f"CONNACK")
            self._attempt_failed(detail)
        elif self.state == UP:
            detail = self._disconnect_detail() or f"{reasons.FORCED}: connection to MQTT " \
                                                  f"broker {self.broker} lost"
            if not self.options.reconnect:
                if self.on_demand:
                    self._park(detail)
                else:
                    self._finish(detail)
                return
            log.warning("MQTT connection lost (%s); reconnecting", detail)
            self.state = DOWN
            self._attempts = 0
            self._next_attempt = time.monotonic() + backoff_delay(
                0, self.options.min_delay, self.options.max_delay)
            self.hooks.on_down(detail)

    def _disconnect_detail(self) -> str | None:
        if self._disconnect is None:
            return None
        from_broker, code, name = self._disconnect
        return reasons.disconnect_detail(code, name, self.broker, from_broker=from_broker)

    def _finish(self, detail: str) -> None:
        """Terminal: the connection could not be opened, or was lost with reconnect off."""
        if self.state == DONE:
            return
        self.state = DONE
        self._finished = True  # later calls are dropped
        self._drop_socket()
        self.hooks.on_failed(detail)

    def _shutdown(self) -> None:
        """Stop requested: flush what is queued (acks first), send DISCONNECT, close."""
        # Commands queued while the last batch ran (e.g. the settlements a draining relay made
        # just before closing) still go out: otherwise their PUBACKs are lost and the broker
        # delivers those messages again (measured: duplicates after a relay's SIGTERM).
        self.core.run_commands()
        self._stop_requested = False
        self.state = DONE
        self._finished = True
        self._disconnect_now()

    def _disconnect_now(self) -> None:
        """Flush what is queued (acks first), send DISCONNECT if connected, close the socket."""
        client = self.client
        if client is None or client.socket() is None:
            return
        self._wake_reports()  # closing may wait for the socket
        if client.is_connected():
            sock = client.socket()
            if isinstance(sock, BufferedSocket):  # the acks and publishes not yet written
                sock.flush_within(_SHUTDOWN_GRACE)
            client.disconnect()
            deadline = time.monotonic() + _SHUTDOWN_GRACE
            while client.socket() is not None and client.want_write():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock = client.socket()
                if sock is None:
                    break
                _, writable, _ = select.select([], [sock], [], remaining)
                if writable:
                    client.loop_write()
        self._drop_socket()

    def _drop_socket(self) -> None:
        client = self.client
        if client is not None and client.socket() is not None:
            # paho has no public "abort the socket" call; _sock_close is what its own loop uses.
            client._sock_close()

    # -- paho callbacks (driver thread, inside loop_read) -----------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            self.refused_code = reason_code.value
            self._refused = reasons.connack_detail(reason_code.value, reason_code.getName(),
                                                   self.broker)
            return
        limits = BrokerLimits(
            receive_maximum=getattr(properties, "ReceiveMaximum", None),
            maximum_packet_size=getattr(properties, "MaximumPacketSize", None))
        # At once: PUBLISHes read right after the CONNACK belong to the new connection. New
        # publishes wait for the next turn, after paho resent its unacknowledged ones.
        self._became_up(bool(flags.session_present), limits)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._disconnect = (bool(flags.is_disconnect_packet_from_server), reason_code.value,
                            reason_code.getName())


def _no_delay(sock: Any) -> None:
    """Turn Nagle's algorithm off. paho writes each small packet (a PUBACK is 4 bytes) on its
    own; with Nagle and the peer's delayed ACKs, every second one waited ~40 ms, which capped a
    QoS 1 stream at a few hundred messages per second."""
    raw = getattr(sock, "_socket", sock)  # paho's WebSocket wrapper keeps the TCP socket there
    with contextlib.suppress(AttributeError, OSError):
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _unsent(sock: Any) -> bool:
    return isinstance(sock, BufferedSocket) and sock.unsent > 0


def _pending(sock: Any) -> bool:
    """Bytes already decrypted/buffered (TLS, WebSocket) that select() cannot see."""
    pending = getattr(sock, "pending", None)
    try:
        return bool(pending is not None and pending() > 0)
    except (OSError, ValueError):
        return False


def _readable(sock: Any) -> bool:
    if _pending(sock):
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError, TypeError):
        return False
    return bool(readable)


# -- building the paho client --------------------------------------------------------------------


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
    """paho's client on a `BufferedSocket` (fewer system calls per packet)."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket(),
                              coalesce_writes=self.transport != "websockets")


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
