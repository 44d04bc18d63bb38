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
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from bridge.agent import Agent
from bridge.errors import ConfigError
from bridge.metrics import serve_metrics
from bridge.migration.relay.forwarder import OPEN, Forwarder, Side, parse_endpoint
from bridge.migration.relay.ledger import Ledger
from bridge.migration.relay.templates import (
    SUBJECT_PROPERTY,
    TO_PROPERTY,
    TOPIC_PROPERTY,
    compile_target,
    parse_source,
)
from bridge.settings import Settings

log = logging.getLogger("bridge.migration.relay")


class Relay:
    """The relay service. `run` blocks; `drain` (from any thread) ends it cleanly."""

    def __init__(self, settings: Settings) -> None:
        if not settings.relay.rules:
            raise ValueError("relay.rules is empty: nothing to forward")
        self.settings = settings
        self.draining = False
        self.sides: dict[tuple[str, str, str], Side] = {}
        self.forwarders: list[Forwarder] = []
        patterns, need_topic, need_envelope = self._validate_rules(settings)
        ledger = settings.relay.ledger
        self.ledger: Ledger | None = None if ledger is None else Ledger(
            ledger, settings.relay.ledger_capacity, settings.relay.ledger_fsync)
        # Wildcard MQTT sources: a topic rule maps each one's receiver path to its filter; every
        # MQTT source connection gets all of them (so rules still share connections) and adds
        # the topic a message came on, which templates and stable ids use.
        wildcard_rules = [{"path": Forwarder.wildcard_path(index), "topic": topic_filter}
                          for index, topic_filter in enumerate(patterns) if topic_filter]
        self.agent = Agent(settings)
        for index, rule in enumerate(settings.relay.rules):
            source_backend = parse_endpoint(rule.source)[0]
            source_options = dict(rule.source_options)
            if source_backend == "mqtt" and need_topic:
                source_options["topic_property"] = TOPIC_PROPERTY
            if source_backend == "amqp" and need_envelope:
                source_options["subject_property"] = SUBJECT_PROPERTY
                source_options["to_property"] = TO_PROPERTY
            if source_backend == "mqtt" and wildcard_rules:
                source_options["topic_rules"] = [
                    *wildcard_rules,
                    *source_options.get("topic_rules", settings.mqtt.topic_rules)]
            source = self._side("source", source_backend, source_options)
            target_backend = parse_endpoint(rule.target)[0]
            target = self._side("target", target_backend,
                                self._target_options(settings, rule.qos, rule.target_options))
            dead = None
            if rule.dead_letter not in (None, "drop"):
                dead = self._side("target", parse_endpoint(rule.dead_letter)[0],
                                  rule.dead_letter_options)
            forwarder = Forwarder(self, index, rule, source, target, dead)
            for side in {id(s): s for s in (source, target, dead) if s is not None}.values():
                side.forwarders.append(forwarder)
            self.forwarders.append(forwarder)
        if self.ledger is not None and self.ledger.unconfirmed_at_start:
            log.info("relay: the ledger has %d message(s) in flight at the last stop: those "
                     "the sources deliver again are sent again (possible duplicates, counted)",
                     len(self.ledger.unconfirmed_at_start))
        self._metrics: ThreadingHTTPServer | None = None
        self._drain_requested = threading.Event()
        self._started = time.monotonic()

    @staticmethod
    def _validate_rules(settings: Settings) -> tuple[list[str | None], bool, bool]:
        """Every rule's wildcards and templates, checked before anything opens; ConfigError
        naming each bad rule. The topic filter of each rule (None: no wildcard), whether a
        rule needs the topic of each message (a wildcard source or a templated target; the
        MQTT sources then add it, which costs a copy of each message's properties) and whether
        one needs AMQP messages' subject or to (``{subject}``, ``{to}``: the AMQP sources then
        add them, which costs a second read of each message's properties section)."""
        problems: list[str] = []
        filters: list[str | None] = []
        need_topic = need_envelope = False
        for index, rule in enumerate(settings.relay.rules):
            where = f"relay.rules.{index} ({rule.source} -> {rule.target})"
            try:
                pattern = parse_source(rule.source)
                template = compile_target(rule.target, pattern)
                need_topic = need_topic or bool(pattern.topic_filter) or not template.is_static
                need_envelope = need_envelope or bool(template.envelope)
                if rule.qos is not None and not rule.target.startswith("mqtt:"):
                    raise ValueError(f"qos = {rule.qos} applies to MQTT targets only")
                if rule.dead_letter not in (None, "drop"):
                    parse_endpoint(rule.dead_letter)
                filters.append(pattern.topic_filter)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
        if problems:
            raise ConfigError(problems)
        return filters, need_topic, need_envelope

    @staticmethod
    def _target_options(settings: Settings, qos: int | None,
                        options: dict[str, Any]) -> dict[str, Any]:
        """A rule's target options with its ``qos``; QoS 2 needs a session that outlives a
        connection (the broker remembers which packet ids it has), so it gets one."""
        if qos is None:
            return options
        options = {**options, "qos": qos}
        if qos == 2:
            options.setdefault("clean_start", False)
            expiry = options.get("session_expiry", settings.mqtt.session_expiry)
            options["session_expiry"] = max(int(expiry), 600)
        return options

    def _side(self, role: str, backend: str, options: dict[str, Any]) -> Side:
        key = (role, backend, repr(sorted(options.items())))
        side = self.sides.get(key)
        if side is None:
            same = sum(1 for r, b, _ in self.sides if (r, b) == (role, backend))
            name = f"{backend}-{role}{same + 1 if same else ''}"
            side = self.sides[key] = Side(self, role, backend, options, name)
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
            self._metrics = serve_metrics(self.metrics_text, self.settings.relay.metrics_host,
                                          port, "bridge-relay-metrics")
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
            lambda: all(not f.in_flight() for f in self.forwarders), timeout)
        if not drained:
            left = self.in_flight()
            log.warning("relay: %d message(s) still unconfirmed after %.0fs; they stay "
                        "unsettled at the source and will be redelivered", left, timeout)
        held = sum(len(f.pending) for f in self.forwarders)
        if held:
            log.info("relay: %d received message(s) not forwarded go back to the source",
                     held)
        log.info("relay: %s", self.status_line())
        for forwarder in self.forwarders:
            forwarder.settle_confirmed()
        if self.ledger is not None:
            self.ledger.close()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        self.agent.close()

    # -- observability ----------------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(f.in_flight() for f in self.forwarders)

    def status_line(self) -> str:
        parts = []
        for f in self.forwarders:
            s = f.stats
            parts.append(f"{f.name}: forwarded {s.forwarded} ({f.rate():.0f}/s), in flight "
                         f"{len(f.inflight)}, waiting {len(f.pending)} (peak {s.waiting_peak}), "
                         f"failed {s.failed}, resent {s.resent}, redelivered "
                         f"{s.redelivered}, dead-lettered {s.dead_lettered}, dropped "
                         f"{s.dropped}, skipped {s.skipped}, resent after restart "
                         f"{s.resent_after_restart}")
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
_RULE_METRICS: list[tuple[str, str, str, Callable[[Forwarder], object]]] = [
    ("forwarded_total", "counter", "Messages forwarded and confirmed by the target.",
     lambda f: f.stats.forwarded),
    ("failed_total", "counter", "Messages the target refused.", lambda f: f.stats.failed),
    ("resent_total", "counter", "Messages resent after a target loss.",
     lambda f: f.stats.resent),
    ("redelivered_total", "counter", "Messages in flight when the source was lost "
     "(delivered again by the source).", lambda f: f.stats.redelivered),
    ("dead_lettered_total", "counter", "Messages sent to the rule's dead-letter target.",
     lambda f: f.stats.dead_lettered),
    ("dropped_total", "counter", "Messages the target kept refusing, dropped (dead_letter = "
     "\"drop\").", lambda f: f.stats.dropped),
    ("released_total", "counter", "Messages the target kept refusing, released to the source "
     "(no dead_letter).", lambda f: f.stats.released),
    ("skipped_total", "counter", "Messages delivered again by the source that the ledger "
     "shows the target confirmed: settled, not published again.", lambda f: f.stats.skipped),
    ("resent_after_restart_total", "counter", "Messages in flight at the last stop (ledger), "
     "sent again: the only possible duplicates.", lambda f: f.stats.resent_after_restart),
    ("in_flight", "gauge", "Messages sent and not yet confirmed.", lambda f: f.in_flight()),
    ("waiting", "gauge", "Messages received and not yet forwarded.", lambda f: len(f.pending)),
    ("lag_seconds", "gauge", "Source arrival to target confirmation, last.",
     lambda f: f"{f.stats.last_lag_ms / 1000:.6f}"),
]
