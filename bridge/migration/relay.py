"""`bridge relay`: forward messages between two brokers (AMQP 1.0 <-> MQTT), at least once.

The relay is itself an agent on the contract: for each rule it opens a receiver on the source
backend and a sender on the target backend. A source delivery is settled (accepted) only after
the target confirmed the forwarded transfer (AMQP *accepted* / MQTT PUBACK), so a crash or a lost
target never loses a message; it can duplicate one (counted as ``resent`` when the relay sends
it again after a target loss, ``redelivered`` when a source loss makes the source deliver it
again).

- Bounded in-flight window per rule. What the source pushes beyond it waits in memory
  (``waiting``): normally the source's credit, but RabbitMQ 3.x over-grants AMQP credit under
  load and Mosquitto 2.0 resends a resumed session's whole queue at once (measured).
- A lost connection is reopened with exponential backoff; transfers that were in flight to a lost
  target are resent once it is back.
- `Relay.drain` (SIGTERM): stop forwarding, wait for in-flight confirmations (and settle their
  source deliveries), then close. What was received but not forwarded is never settled: the
  close hands it back to the source broker (AMQP: requeued; MQTT: kept in the persistent
  session), so nothing is lost and nothing stays stuck.
- Connections: one per role (sources / targets), backend and option set (``source_options`` /
  ``target_options`` of a rule). Sources and targets never share a connection: on one shared
  AMQP session RabbitMQ's deliveries to the relay queue up in front of the confirmations of
  what the relay sends (measured: both directions stall), and an AMQP target can then be
  durable while an AMQP source is not. An MQTT connection gets the stable client id
  ``<agent_id>-mqtt-source`` / ``-mqtt-target`` (``...2`` for a second option set) unless
  ``mqtt.client_id`` is set: its persistent session must survive a relay restart.
- Prometheus metrics on an optional HTTP port; a status line a person can read.

Scaling out: run several relays with the same rules and different ``agent_id``. AMQP sources are
competing consumers of a queue; MQTT sources use a shared subscription (``mqtt.shared_group``)
so each message goes to one relay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bridge.agent import Agent
from bridge.contract.objects import Delivery, Transfer
from bridge.migration.routing import target_settings
from bridge.migration.settings import RelayRule
from bridge.settings import Settings

log = logging.getLogger("bridge.migration.relay")

class SideState(StrEnum):
    """Where one relay connection (a side) is."""

    OPEN = "open"
    DOWN = "down"
    CONNECTING = "connecting"


OPEN, DOWN, CONNECTING = SideState


@dataclass
class RuleStats:
    forwarded: int = 0
    failed: int = 0
    resent: int = 0
    redelivered: int = 0  # in flight when the source was lost: the source delivers them again
    released: int = 0
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


class _Side:
    """One connection (per backend and options) and its session, reopened when lost."""

    def __init__(self, relay: Relay, role: str, backend: str, options: dict[str, Any],
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
        self.forwarders: list[_Forwarder] = []
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
            self._lost(detail or event)

    def _lost(self, detail: str) -> None:
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


class _Forwarder:
    """One rule: a receiver on the source side, a sender on the target side."""

    def __init__(self, relay: Relay, rule: RelayRule, source: _Side, target: _Side) -> None:
        self.relay = relay
        self.rule = rule
        self.name = f"{rule.source} -> {rule.target}"
        self.source_side = source
        self.target_side = target
        self.source_path = parse_endpoint(rule.source)[1]
        self.target_path = parse_endpoint(rule.target)[1]
        self.window = rule.window or relay.settings.relay.window
        self.receiver: Any = None
        self.sender: Any = None
        self.pending: deque[tuple[Delivery, float]] = deque()
        self.inflight: dict[Transfer, tuple[Delivery, float]] = {}
        self.stats: RuleStats = RuleStats()

    # -- links ------------------------------------------------------------------------------
    def side_up(self, side: _Side) -> None:
        if side is self.source_side and self.receiver is None:
            self.receiver = side.session.openreceiver(self.source_path, self._receiver_event,
                                                      self._deliveries)
        if side is self.target_side and self.sender is None:
            self.sender = side.session.opensender(self.target_path, self._sender_event)

    def side_down(self, side: _Side) -> None:
        if side is self.target_side:
            self.sender = None
            self._requeue_inflight()
        if side is self.source_side:
            # Their settlement is impossible now: the source broker redelivers them (those in
            # flight may reach the target twice).
            self.receiver = None
            self.stats.redelivered += len(self.inflight)
            self.pending.clear()
            self.inflight.clear()

    def _receiver_event(self, event: str, detail: str | None) -> None:
        if event == "RECEIVER_ERROR":
            log.error("relay %s: source refused: %s", self.name, detail)
            self.receiver = None
            self.source_side._lost(f"receiver {self.source_path}: {detail}")

    def _sender_event(self, event: str, detail: str | None) -> None:
        if event == "SENDER_OPEN":
            self._pump()
        elif event == "SENDER_ERROR":
            failed = [t for t in self.inflight if t.state == Transfer.FAILED]
            if failed:  # a transfer the target did not accept: the source may redeliver it
                for transfer in failed:
                    delivery, _ = self.inflight.pop(transfer)
                    delivery.release()
                    self.stats.failed += 1
                    self.stats.released += 1
                log.warning("relay %s: target refused %d message(s): %s", self.name,
                            len(failed), detail)
                self._pump()
                return
            log.error("relay %s: target sender failed: %s", self.name, detail)
            self.sender = None
            self._requeue_inflight()
            self.target_side._lost(f"sender {self.target_path}: {detail}")
        elif event == "SENDER_CLOSED":
            self.sender = None
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
        self.pending.extend((delivery, now) for delivery in deliveries)
        self.stats.waiting_peak = max(self.stats.waiting_peak, len(self.pending))
        self._pump()

    def _pump(self) -> None:
        sender = self.sender
        if sender is None or self.relay.draining or not sender.isopen():
            return
        while self.pending and len(self.inflight) < self.window:
            delivery, arrived = self.pending.popleft()
            transfer = sender.createtransfer(delivery.message())
            self.inflight[transfer] = (delivery, arrived)
            transfer.sendasync(lambda t=transfer: self._confirmed(t))

    def _confirmed(self, transfer: Transfer) -> None:
        entry = self.inflight.pop(transfer, None)
        if entry is None:
            return  # requeued after a target loss and resent since: a duplicate
        delivery, arrived = entry
        delivery.accept()
        lag = (time.monotonic() - arrived) * 1000
        stats = self.stats
        stats.forwarded += 1
        stats.lag_ms_total += lag
        stats.last_lag_ms = lag
        stats.lag_ms_max = max(stats.lag_ms_max, lag)
        stats.recent.append(time.monotonic())
        self._pump()

    def rate(self) -> float:
        recent = self.stats.recent
        if len(recent) < 2:
            return 0.0
        span = time.monotonic() - recent[0]
        return len(recent) / span if span > 0 else 0.0


class Relay:
    """The relay service. `run` blocks; `drain` (from any thread) ends it cleanly."""

    def __init__(self, settings: Settings) -> None:
        if not settings.relay.rules:
            raise ValueError("relay.rules is empty: nothing to forward")
        self.settings = settings
        self.agent = Agent(settings)
        self.draining = False
        self.sides: dict[tuple[str, str, str], _Side] = {}
        self.forwarders: list[_Forwarder] = []
        for rule in settings.relay.rules:
            source = self._side("source", parse_endpoint(rule.source)[0], rule.source_options)
            target = self._side("target", parse_endpoint(rule.target)[0], rule.target_options)
            forwarder = _Forwarder(self, rule, source, target)
            source.forwarders.append(forwarder)
            if target is not source:
                target.forwarders.append(forwarder)
            self.forwarders.append(forwarder)
        self._metrics: ThreadingHTTPServer | None = None
        self._drain_requested = threading.Event()
        self._started = time.monotonic()

    def _side(self, role: str, backend: str, options: dict[str, Any]) -> _Side:
        key = (role, backend, repr(sorted(options.items())))
        side = self.sides.get(key)
        if side is None:
            same = sum(1 for r, b, _ in self.sides if (r, b) == (role, backend))
            name = f"{backend}-{role}{same + 1 if same else ''}"
            side = self.sides[key] = _Side(self, role, backend, options, name)
        return side

    def _check_sources(self) -> None:
        """Warn about sources that cannot keep what the relay holds when it stops."""
        for forwarder in self.forwarders:
            side = forwarder.source_side
            mqtt = getattr(side.settings, "mqtt", None)
            if side.backend == "mqtt" and mqtt is not None and (
                    mqtt.clean_start or (mqtt.protocol == "5" and not mqtt.session_expiry)):
                log.warning("relay %s: the MQTT source has no persistent session (set "
                            "mqtt.clean_start = false and mqtt.session_expiry > 0): messages "
                            "received but not forwarded when the relay stops or loses the "
                            "connection are lost", forwarder.name)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Open every connection (call on the thread that will run the relay)."""
        self._check_sources()
        for side in self.sides.values():
            side.open()
        port = self.settings.relay.metrics_port
        if port is not None:
            self._metrics = _serve_metrics(self, self.settings.relay.metrics_host, port)
        if self.settings.relay.status_interval > 0:
            self.agent.imp.wakeup(self.settings.relay.status_interval, self._status)

    def run(self, timeout: float | None = None) -> None:
        """Forward until `drain` is requested (or *timeout*), then drain and close."""
        self.start()
        self.agent.run_until(self._drain_requested.is_set, timeout)
        self._drain()

    def drain(self) -> None:
        """Ask a running relay to stop (thread- and signal-safe)."""
        self._drain_requested.set()
        self.agent.call_soon(lambda: None)  # wake the dispatcher

    def _drain(self) -> None:
        self.draining = True
        timeout = self.settings.relay.drain_timeout
        drained = self.agent.run_until(
            lambda: all(not f.inflight for f in self.forwarders), timeout)
        if not drained:
            left = sum(len(f.inflight) for f in self.forwarders)
            log.warning("relay: %d message(s) still unconfirmed after %.0fs; they stay "
                        "unsettled at the source and will be redelivered", left, timeout)
        held = sum(len(f.pending) for f in self.forwarders)
        if held:
            log.info("relay: %d received message(s) not forwarded go back to the source",
                     held)
        log.info("relay: %s", self.status_line())
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        self.agent.close()

    # -- observability ----------------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(len(f.inflight) for f in self.forwarders)

    def status_line(self) -> str:
        parts = []
        for f in self.forwarders:
            s = f.stats
            parts.append(f"{f.name}: forwarded {s.forwarded} ({f.rate():.0f}/s), in flight "
                         f"{len(f.inflight)}, waiting {len(f.pending)} (peak {s.waiting_peak}), "
                         f"failed {s.failed}, resent {s.resent}, redelivered "
                         f"{s.redelivered}")
        sides = ", ".join(f"{side.name} {side.state}" for side in self.sides.values())
        return "; ".join(parts) + f" | {sides}"

    def _status(self) -> None:
        log.info("relay: %s", self.status_line())
        if not self.draining:
            self.agent.imp.wakeup(self.settings.relay.status_interval, self._status)

    def metrics_text(self) -> str:
        """Prometheus text exposition of the relay's counters."""
        lines: list[str] = []
        for name, kind, help_text, value in _RULE_METRICS:
            lines += [f"# HELP bridge_relay_{name} {help_text}",
                      f"# TYPE bridge_relay_{name} {kind}"]
            lines += [f'bridge_relay_{name}{{rule="{f.name}"}} {value(f)}'
                      for f in self.forwarders]
        lines += ["# HELP bridge_relay_connection_up 1 when the side's connection is open.",
                  "# TYPE bridge_relay_connection_up gauge"]
        for side in self.sides.values():
            lines.append(f'bridge_relay_connection_up{{connection="{side.name}",'
                         f'backend="{side.backend}",role="{side.role}"}} '
                         f'{1 if side.state == OPEN else 0}')
        return "\n".join(lines) + "\n"


# name, type, help, value of one forwarder (rule)
_RULE_METRICS: list[tuple[str, str, str, Callable[[_Forwarder], object]]] = [
    ("forwarded_total", "counter", "Messages forwarded and confirmed by the target.",
     lambda f: f.stats.forwarded),
    ("failed_total", "counter", "Messages the target refused.", lambda f: f.stats.failed),
    ("resent_total", "counter", "Messages resent after a target loss.",
     lambda f: f.stats.resent),
    ("redelivered_total", "counter", "Messages in flight when the source was lost "
     "(delivered again by the source).", lambda f: f.stats.redelivered),
    ("in_flight", "gauge", "Messages sent and not yet confirmed.", lambda f: len(f.inflight)),
    ("waiting", "gauge", "Messages received and not yet forwarded.", lambda f: len(f.pending)),
    ("lag_seconds", "gauge", "Source arrival to target confirmation, last.",
     lambda f: f"{f.stats.last_lag_ms / 1000:.6f}"),
]


def _serve_metrics(relay: Relay, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") not in ("/metrics", ""):
                self.send_error(404)
                return
            body = relay.metrics_text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="bridge-relay-metrics",
                     daemon=True).start()
    log.info("relay: metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server
