"""The network side of one MQTT connection: a state machine on one of the process's network loops.

Every paho call (connect, publish, subscribe, ack, disconnect) happens on the connection's loop
thread (`bridge.loop.network`), driven by paho's external-loop API (``loop_read`` /
``loop_write`` / ``loop_misc``) when the loop sees the socket ready: paho is single-threaded,
thousands of connections share a few threads, and we own the reconnect policy (backoff with
jitter, a CONNACK time-out, give-up, the process's connect pacing) instead of paho's built-in
retry loop. The socket is opened without blocking the loop (`connect.Connector`). Other threads
talk to the driver only through `Driver.call`, so backend commands never block on the network.

After whatever it did in a loop turn, the driver asks for one *tidy* before the loop sleeps:
it pumps the outbound window, flushes the write buffer, updates what it waits for and wakes the
agent's dispatcher once for everything it reported in that turn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties

from bridge.engines.logburst import BurstLog
from bridge.engines.mqtt import reasons
from bridge.engines.mqtt.bufferedsocket import BufferedSocket
from bridge.engines.mqtt.client import no_delay
from bridge.engines.mqtt.connect import Connector
from bridge.engines.mqtt.endpoint import MQTTEndpoint, backoff_delay
from bridge.loop.core import Timer
from bridge.loop.network import READ, WRITE, LoopPool, NetworkLoop, shared_loops
from bridge.loop.pacing import ConnectPacer, connect_pacer

log = logging.getLogger("bridge.backends.mqtt")
# one line per lost connection for the first few, then a count: a broker restart under a fleet
_lost_log = BurstLog(log, "MQTT connections lost")


class DriverState(StrEnum):
    """Where one MQTT connection is."""

    IDLE = "idle"  # not connected, not trying (before the first attempt, or parked)
    CONNECTING = "connecting"  # opening the socket, or waiting for CONNACK
    UP = "up"
    DOWN = "down"  # lost, waiting to reconnect
    DONE = "done"  # ended: no more attempts


IDLE, CONNECTING, UP, DOWN, DONE = DriverState
_READ_BURST = 64  # packets read per readiness before other connections get a turn
_SHUTDOWN_GRACE = 2.0  # seconds to flush pending acks and the DISCONNECT on close


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """What the broker announced in CONNACK (MQTT 5; None when it set no limit)."""

    receive_maximum: int | None = None
    maximum_packet_size: int | None = None


class DriverHooks(Protocol):
    """What the backend does on connection-level changes (called on the loop thread)."""

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
    """Connects, keeps the connection (or reconnects), runs commands and timers on its loop.

    By default it connects as soon as it starts and a failure that cannot be retried is terminal
    (`DriverHooks.on_failed`; the driver is done). With ``on_demand=True`` (the IoT Hub backend,
    whose credentials may only arrive later) it starts *parked* (no connection) and connects
    when the owner calls `restart`; a refused CONNACK, or a loss with reconnect off, *parks* it
    again instead of ending it, and ``on_failed`` is then not terminal (`state` is ``idle``, not
    ``done``). ``before_attempt`` runs before every connect attempt (fresh credentials).
    """

    def __init__(self, client_factory: Callable[[], paho.Client], options: DriverOptions,
                 hooks: DriverHooks, name: str, *, wake_reports: Callable[[], None],
                 on_demand: bool = False,
                 before_attempt: Callable[[paho.Client], None] | None = None,
                 loops: LoopPool | None = None, pacer: ConnectPacer | None = None) -> None:
        self._client_factory = client_factory
        self.client: paho.Client | None = None
        self.options = options
        self.hooks = hooks
        self.name = name
        self.on_demand = on_demand
        self._before_attempt = before_attempt
        self._loops = loops
        self._pacer = pacer or connect_pacer()
        self.loop: NetworkLoop | None = None
        self.state = IDLE
        self.epoch = 0  # +1 per accepted CONNACK: acks of older deliveries are stale
        self.ever_up = False
        self.refused_code: int | None = None  # reason code of the last refused CONNACK
        self._attempts = 0
        self._refused: str | None = None
        self._disconnect: tuple[bool, int, str] | None = None
        self._wake_reports = wake_reports  # the dispatcher, for what this connection reported
        self._early: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []  # before start
        self._finished = False  # no more commands are run
        self._done = threading.Event()
        self._started = False
        self._generation = 0  # +1 per attempt: callbacks of an abandoned attempt are stale
        self._connector: Connector | None = None
        self._timer: Timer | None = None  # the pending attempt, CONNACK or flush deadline
        self._keepalive_timer: Timer | None = None
        self._sock: Any = None  # the socket registered with the loop
        self._events = 0
        self._closing = False  # stopping: flushing the last writes

    # -- any thread ------------------------------------------------------------------------------
    def start(self) -> None:
        """Place the connection on a network loop and begin (connect, unless on demand)."""
        self._started = True
        pool = self._loops or shared_loops()
        self.loop = pool.place(self)
        self.loop.call(self._begin)
        early, self._early = self._early, []
        for fn, args in early:
            self.loop.call(self._command, fn, args)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread, in call order; dropped once it stopped."""
        if self._finished:
            return
        loop = self.loop
        if loop is None:
            self._early.append((fn, args))  # runs once started
        else:
            loop.call(self._command, fn, args)

    def stop(self) -> None:
        """Disconnect cleanly (pending acks first) and end; returns at once."""
        loop = self.loop
        if loop is None:  # never started (refused before any connect attempt)
            self._finished = True
            self.state = DONE
            self._early.clear()
            self._done.set()
            return
        loop.call(self._shutdown)

    def join(self, timeout: float) -> bool:
        if not self._started:
            return True  # never started
        return self._done.wait(timeout)

    @property
    def connected(self) -> bool:
        return self.state == UP

    @property
    def broker(self) -> str:
        return self.options.endpoint.describe()

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        """Run *fn* on the loop thread after *delay* seconds (its turn is tidied after)."""
        assert self.loop is not None, "call_later before start"
        return self.loop.call_later(delay, lambda: self._command(fn, ()))

    # -- loop thread: commands, tidying ----------------------------------------------------------
    def _command(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self._finished and not self._closing:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("MQTT backend command %r failed", fn)
        self._ask_tidy()

    def _ask_tidy(self) -> None:
        if self.loop is not None:
            self.loop.tidy(id(self), self._tidy)

    def _tidy(self) -> None:
        """Once per loop turn in which this connection did something (see the module doc)."""
        client = self.client
        if client is not None and self.state in (UP, CONNECTING) and self._sock is not None:
            if client.socket() is None:
                self._socket_gone()  # the socket went in a write (a command, a publish, an ack)
            elif self.state == UP:
                self.hooks.on_turn()
            self._flush_and_watch()
        self._wake_reports()

    def _flush_and_watch(self) -> None:
        client = self.client
        sock = self._sock
        if client is None or sock is None or client.socket() is not sock:
            return
        if isinstance(sock, BufferedSocket) and not sock.flush() and sock.failed:
            client.loop_read()  # paho meets the write error and runs its connection-lost path
            if client.socket() is None:
                self._socket_gone()
            return
        events = READ
        if client.want_write() or (isinstance(sock, BufferedSocket) and sock.unsent):
            events |= WRITE
        if events != self._events:
            assert self.loop is not None
            self.loop.modify(sock, events, self._on_ready)
            self._events = events
        if _pending(sock) and self.loop is not None:
            self.loop.call(self._on_ready, READ)  # decrypted bytes select cannot see

    # -- loop thread: the socket -----------------------------------------------------------------
    def _watch(self, sock: Any) -> None:
        assert self.loop is not None
        self._sock = sock
        self._events = READ
        self.loop.register(sock, READ, self._on_ready)

    def _unwatch(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None and self.loop is not None:
            self.loop.unregister(sock)

    def _on_ready(self, mask: int) -> None:
        client = self.client
        sock = self._sock
        if client is None or sock is None or client.socket() is not sock:
            return
        if mask & READ:
            for _ in range(_READ_BURST):
                client.loop_read()
                if client.socket() is not sock or not _pending(sock):
                    break
        if mask & WRITE and client.socket() is sock:
            client.loop_write()
        if self._closing:
            self._continue_shutdown()
            return
        if client.socket() is None:
            self._socket_gone()
        self._ask_tidy()

    def _keepalive(self) -> None:
        """paho's keep-alive: PINGREQ when due, a lost connection when PINGRESP is late."""
        self._keepalive_timer = None
        client = self.client
        if client is None or self.state not in (UP, CONNECTING) or self._sock is None:
            return
        client.loop_misc()
        if client.socket() is None:
            self._socket_gone()
        else:
            self._arm_keepalive()
        self._ask_tidy()

    def _arm_keepalive(self) -> None:
        assert self.loop is not None
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
        # a quarter of the interval: a PINGREQ goes out at most 1.25 keep-alives after the last
        # packet, inside the broker's 1.5 (checked per connection, not per loop turn)
        self._keepalive_timer = self.loop.call_later(max(0.25, self.options.keepalive / 4),
                                                     self._keepalive)

    # -- loop thread: connection state -----------------------------------------------------------
    def _begin(self) -> None:
        try:
            self.client = self._client_factory()
        except Exception as exc:  # bad TLS files, unusable options: the open fails
            self._finish(f"{reasons.INTERNAL}: cannot set up the MQTT client for "
                         f"{self.broker}: {type(exc).__name__}: {exc}")
            return
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        if not self.on_demand:
            self._attempt()

    def restart(self) -> None:
        """(Loop thread; on-demand drivers.) Connect now; if connected or connecting, send
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
        """(Loop thread; on-demand drivers.) Drop the connection (DISCONNECT if up) and stay
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
        """Begin a connect attempt, in the slot the process's pacer gives it."""
        self._abandon_attempt()
        self._generation += 1
        generation = self._generation
        self.state = CONNECTING
        delay = self._pacer.delay()
        if delay > 0:
            self._set_timer(delay, lambda: self._attempt_now(generation))
        else:
            self._attempt_now(generation)

    def _attempt_now(self, generation: int) -> None:
        if generation != self._generation or self.state != CONNECTING:
            return
        client = self.client
        assert client is not None and self.loop is not None
        self._refused = None
        self._disconnect = None
        self.refused_code = None
        options = self.options
        try:
            if self._before_attempt is not None:
                self._before_attempt(client)
            kwargs: dict[str, Any] = {}
            if options.v5:
                kwargs["clean_start"] = options.clean_start
                kwargs["properties"] = options.connect_properties
            # connect_async only records the target; the socket is ours to open
            client.connect_async(options.endpoint.host, options.endpoint.port,
                                 options.keepalive, **kwargs)
        except Exception as exc:
            self._attempt_failed(reasons.transport_detail(exc, self.broker))
            return
        tls = getattr(client, "_ssl_context", None) if options.endpoint.tls else None
        self._connector = Connector(
            self.loop, options.endpoint.host, options.endpoint.port, tls=tls,
            server_hostname=options.endpoint.host, on_socket=no_delay,
            done=lambda sock, error: self._connected(generation, sock, error))
        self._set_timer(options.connect_timeout, lambda: self._attempt_timed_out(generation))
        self._connector.start()

    def _connected(self, generation: int, sock: Any, error: BaseException | None) -> None:
        if generation != self._generation:
            if sock is not None:
                sock.close()
            return
        self._connector = None
        client = self.client
        assert client is not None
        if error is not None:
            self._cancel_timer()
            self._attempt_failed(reasons.transport_detail(error, self.broker))
            return
        client.prepared = sock  # type: ignore[attr-defined]
        try:
            client.reconnect()  # the socket (and a WebSocket upgrade over it), then CONNECT
        except Exception as exc:
            client.prepared = None  # type: ignore[attr-defined]
            self._drop_socket()
            self._cancel_timer()
            self._attempt_failed(reasons.transport_detail(exc, self.broker))
            return
        paho_sock = client.socket()
        if paho_sock is None:  # paho met an error writing CONNECT
            self._cancel_timer()
            self._attempt_failed(f"{reasons.FORCED}: MQTT broker {self.broker} closed the "
                                 f"connection before CONNACK")
            return
        self._watch(paho_sock)
        self._set_timer(self.options.connect_timeout, lambda: self._connack_timed_out(generation))
        self._arm_keepalive()
        self._ask_tidy()

    def _attempt_timed_out(self, generation: int) -> None:
        if generation == self._generation and self._connector is not None:
            self._abandon_attempt()
            self._attempt_failed(reasons.transport_detail(TimeoutError(), self.broker))

    def _connack_timed_out(self, generation: int) -> None:
        if generation == self._generation and self.state == CONNECTING:
            self._drop_socket()
            self._attempt_failed(f"{reasons.FORCED}: no CONNACK from MQTT broker {self.broker} "
                                 f"within {self.options.connect_timeout:g} s")

    def _abandon_attempt(self) -> None:
        connector, self._connector = self._connector, None
        if connector is not None:
            connector.cancel()
        self._cancel_timer()

    def _set_timer(self, delay: float, fn: Callable[[], None]) -> None:
        assert self.loop is not None
        self._cancel_timer()
        self._timer = self.loop.call_later(delay, lambda: self._command(fn, ()))

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

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
        self._set_timer(delay, self._attempt)

    def _became_up(self, session_present: bool, limits: BrokerLimits) -> None:
        if self.ever_up:
            log.info("MQTT connection to %s re-established (session present: %s)",
                     self.broker, session_present)
        self._cancel_timer()  # the CONNACK deadline
        self.state = UP
        self.ever_up = True
        self._attempts = 0
        self.epoch += 1
        self.hooks.on_up(session_present, limits)

    def _socket_gone(self) -> None:
        self._unwatch()
        if self.state == CONNECTING:
            detail = self._refused or self._disconnect_detail() or (
                f"{reasons.FORCED}: MQTT broker {self.broker} closed the connection before "
                f"CONNACK")
            self._cancel_timer()
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
            _lost_log.warning("MQTT connection lost (%s); reconnecting", detail)
            self.state = DOWN
            self._attempts = 0
            self._set_timer(backoff_delay(0, self.options.min_delay, self.options.max_delay),
                            self._attempt)
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
        self._abandon_attempt()
        self._drop_socket()
        self.hooks.on_failed(detail)
        self._end()

    def _end(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        if self.loop is not None:
            self.loop.remove_member(self)
        self._wake_reports()
        self._done.set()

    def loop_failed(self, detail: str) -> None:
        """The network loop (or this connection's handler) failed: end with *detail*."""
        if self.state != DONE:
            self._finish(detail)

    # -- stopping ------------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """Stop requested: flush what is queued (acks first), send DISCONNECT, close.

        Commands queued before the stop (e.g. the settlements a draining relay made just before
        closing) have run already (the loop runs them in order): their PUBACKs go out first,
        or the broker would deliver those messages again (measured: duplicates after a relay's
        SIGTERM)."""
        if self._closing or (self._finished and self.state == DONE and self._done.is_set()):
            return
        self._abandon_attempt()
        self.state = DONE
        self._finished = True
        client = self.client
        if client is None or client.socket() is None or not client.is_connected():
            self._drop_socket()
            self._end()
            return
        self._closing = True
        self._set_timer(_SHUTDOWN_GRACE, self._shutdown_timed_out)
        self._continue_shutdown()

    def _continue_shutdown(self) -> None:
        client = self.client
        sock = self._sock
        if client is None or sock is None or client.socket() is not sock:
            self._shutdown_done()
            return
        if isinstance(sock, BufferedSocket) and not sock.flush() and not sock.failed:
            self._watch_writes()  # the acks and publishes not yet written
            return
        if client.is_connected():
            client.disconnect()  # paho writes DISCONNECT and closes the socket
        if client.socket() is not None and client.want_write():
            self._watch_writes()
            return
        self._shutdown_done()

    def _watch_writes(self) -> None:
        if self._events != READ | WRITE and self.loop is not None and self._sock is not None:
            self.loop.modify(self._sock, READ | WRITE, self._on_ready)
            self._events = READ | WRITE

    def _shutdown_timed_out(self) -> None:
        if self._closing:
            self._shutdown_done()

    def _shutdown_done(self) -> None:
        self._closing = False
        self._cancel_timer()
        self._drop_socket()
        self._end()

    def _disconnect_now(self) -> None:
        """Send what is buffered and DISCONNECT (as far as the socket takes them at once), then
        close (restart and park: a reconnect with other credentials follows)."""
        self._abandon_attempt()
        client = self.client
        if client is not None and client.socket() is not None and client.is_connected():
            sock = client.socket()
            if isinstance(sock, BufferedSocket):
                sock.flush()
            client.disconnect()
        self._drop_socket()

    def _drop_socket(self) -> None:
        self._unwatch()
        client = self.client
        if client is not None and client.socket() is not None:
            # paho has no public "abort the socket" call; _sock_close is what its own loop uses.
            client._sock_close()

    # -- paho callbacks (loop thread, inside loop_read) -----------------------------------------
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
        # publishes wait for the tidy of this turn, after paho resent its unacknowledged ones.
        self._became_up(bool(flags.session_present), limits)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._disconnect = (bool(flags.is_disconnect_packet_from_server), reason_code.value,
                            reason_code.getName())


def _pending(sock: Any) -> bool:
    """Bytes already decrypted/buffered (TLS, WebSocket) that the selector cannot see."""
    pending = getattr(sock, "pending", None)
    try:
        return bool(pending is not None and pending() > 0)
    except (OSError, ValueError):
        return False

