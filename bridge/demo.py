"""`bridge demo`: a ported device agent and a cloud application, on the configured backend.

The device sends telemetry (binary JSON bodies with typed properties) and accepts commands; the
cloud reads the telemetry, measures latency and sends commands back. Both are written against the
imp contract only, so the demo shows the same legacy code on memory, MQTT or AMQP.

The roles can run in one process (the default) or as two (``--role device`` / ``--role cloud``,
as docker-compose does). The device waits for the cloud's first command before sending, so no
telemetry is published before anyone listens (MQTT keeps nothing for absent subscribers).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from bridge.agent import Agent
from bridge.contract.objects import Delivery

START_COMMAND = "start"


@dataclass
class DemoOptions:
    messages: int = 100
    rate: float = 50.0  # telemetry messages per second (0: as fast as credit allows)
    duration: float | None = None  # stop sending after this many seconds
    device_id: str = "demo-device"
    telemetry_path: str | None = None
    command_path: str | None = None
    command_every: int = 25  # the cloud answers every Nth reading with a command
    url: str = "amqps://demo-hub.example"
    timeout: float = 60.0

    def telemetry(self) -> str:
        return self.telemetry_path or f"/devices/{self.device_id}/messages/events"

    def commands(self) -> str:
        return self.command_path or f"/devices/{self.device_id}/messages/devicebound"


@dataclass
class DemoCounts:
    telemetry_sent: int = 0
    telemetry_confirmed: int = 0
    telemetry_received: int = 0
    commands_sent: int = 0
    commands_confirmed: int = 0
    commands_received: int = 0
    commands_accepted: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class _Endpoint:
    """Connection -> session -> receiver -> sender, the legacy way, with one event handler."""

    def __init__(self, agent: Agent, name: str, options: DemoOptions, receive_path: str,
                 send_path: str, on_messages: Callable[[list[Delivery]], None],
                 on_ready: Callable[[], None], counts: DemoCounts) -> None:
        self.agent = agent
        self.name = name
        self.counts = counts
        self.receive_path = receive_path
        self.send_path = send_path
        self.on_messages = on_messages
        self.on_ready = on_ready
        self.session: Any = None
        self.receiver: Any = None
        self.sender: Any = None
        self.connection = agent.amqp.openconnection(options.url, self._event)

    def _event(self, event: str, detail: str | None) -> None:
        if event == "CONNECTION_OPEN":
            self.session = self.connection.opensession(self._event)
        elif event == "SESSION_OPEN":
            self.receiver = self.session.openreceiver(self.receive_path, self._event,
                                                      self.on_messages)
        elif event == "RECEIVER_OPEN":
            self.sender = self.session.opensender(self.send_path, self._event)
        elif event == "SENDER_OPEN":
            self.on_ready()
        elif event.endswith("_ERROR"):
            self.counts.errors.append(f"{self.name} {event}: {detail}")

    def send(self, message: Any, confirmed: Callable[[], None]) -> None:
        self.sender.createtransfer(message).sendasync(confirmed)


class Demo:
    """Runs one or both roles on an agent and keeps the counts."""

    def __init__(self, agent: Agent, options: DemoOptions, role: str = "both") -> None:
        if role not in ("both", "device", "cloud"):
            raise ValueError("role must be both, device or cloud")
        self.agent = agent
        self.options = options
        self.role = role
        self.counts = DemoCounts()
        self.started = time.monotonic()
        self.send_started: float | None = None
        self.device: _Endpoint | None = None
        self.cloud: _Endpoint | None = None
        self.expected_commands = options.messages // options.command_every if \
            options.command_every else 0

    # -- device -----------------------------------------------------------------------------
    def _device_ready(self) -> None:
        pass  # telemetry starts with the cloud's start command

    def _device_commands(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            body = delivery.message().body()
            text = body.decode() if isinstance(body, bytes) else str(body)
            delivery.accept()
            if text == START_COMMAND:
                if self.send_started is None:
                    self.send_started = time.monotonic()
                    self._send_batch()
                continue
            self.counts.commands_received += 1
            self.counts.commands_accepted += 1

    def _send_batch(self) -> None:
        options = self.options
        counts = self.counts
        assert self.device is not None and self.send_started is not None
        elapsed = time.monotonic() - self.send_started
        if options.duration is not None and elapsed >= options.duration:
            return
        due = options.messages if options.rate <= 0 else min(
            options.messages, int(elapsed * options.rate) + 1)
        while counts.telemetry_sent < due:
            counts.telemetry_sent += 1
            seq = counts.telemetry_sent
            reading = {"device": options.device_id, "seq": seq, "temperature": 20 + seq % 10}
            message = self.agent.amqp.createbinarymessage(
                json.dumps(reading), {"seq": seq, "sent-at": time.time(), "unit": "celsius",
                                      "alert": seq % 10 == 0})
            self.device.send(message, self._telemetry_confirmed)
        if counts.telemetry_sent < options.messages:
            self.agent.imp.wakeup(0.01, self._send_batch)

    def _telemetry_confirmed(self) -> None:
        self.counts.telemetry_confirmed += 1

    # -- cloud ------------------------------------------------------------------------------
    def _cloud_ready(self) -> None:
        self._send_start()

    def _send_start(self) -> None:
        # Repeat until telemetry flows: the device may not be subscribed yet.
        if self.counts.telemetry_received or self.cloud is None:
            return
        self.cloud.send(self.agent.amqp.createmessage(START_COMMAND), lambda: None)
        self.agent.imp.wakeup(0.5, self._send_start)

    def _cloud_telemetry(self, deliveries: list[Delivery]) -> None:
        now = time.time()
        counts = self.counts
        for delivery in deliveries:
            properties = delivery.message().properties()
            delivery.accept()
            counts.telemetry_received += 1
            sent_at = properties.get("sent-at")
            if isinstance(sent_at, float):
                counts.latencies_ms.append(max(0.0, (now - sent_at) * 1000))
            every = self.options.command_every
            if every and counts.telemetry_received % every == 0 and self.cloud is not None:
                counts.commands_sent += 1
                command = self.agent.amqp.createmessage(
                    json.dumps({"action": "set-interval", "seconds": counts.commands_sent}),
                    {"command-id": counts.commands_sent})
                self.cloud.send(command, self._command_confirmed)

    def _command_confirmed(self) -> None:
        self.counts.commands_confirmed += 1

    # -- running ----------------------------------------------------------------------------
    def start(self) -> None:
        options = self.options
        if self.role in ("both", "device"):
            self.device = _Endpoint(self.agent, "device", options, options.commands(),
                                    options.telemetry(), self._device_commands,
                                    self._device_ready, self.counts)
        if self.role in ("both", "cloud"):
            self.cloud = _Endpoint(self.agent, "cloud", options, options.telemetry(),
                                   options.commands(), self._cloud_telemetry, self._cloud_ready,
                                   self.counts)

    def target(self) -> int:
        """Telemetry messages that must arrive (fewer when --duration cut the run short)."""
        if self.options.duration is not None and self.send_started is not None and \
                time.monotonic() - self.send_started >= self.options.duration:
            return self.counts.telemetry_sent
        return self.options.messages

    def finished(self) -> bool:
        c = self.counts
        target = self.target()
        due = self._commands_due(target)
        device_done = (self.send_started is not None and c.telemetry_confirmed >= target
                       and c.commands_accepted >= due)
        cloud_done = c.telemetry_received >= target and c.commands_confirmed >= due
        if self.role == "device":
            return device_done
        if self.role == "cloud":
            return cloud_done
        return device_done and cloud_done

    def _commands_due(self, target: int) -> int:
        every = self.options.command_every
        return target // every if every else 0

    def succeeded(self) -> bool:
        return self.finished() and not self.counts.errors

    def status_line(self) -> str:
        c = self.counts
        backend = self.agent.settings.backend
        target = self.target()
        parts = [f"[{backend}] {self.role}"]
        if self.role != "cloud":
            parts.append(f"telemetry sent {c.telemetry_sent}/{target}, confirmed "
                         f"{c.telemetry_confirmed}")
        if self.role != "device":
            parts.append(f"received {c.telemetry_received}/{target}")
        parts.append(f"commands sent {c.commands_sent}, accepted {c.commands_accepted}")
        if c.latencies_ms:
            parts.append(f"p50 {percentile(c.latencies_ms, 0.5):.1f} ms")
        return " | ".join(parts)

    def summary(self) -> str:
        c = self.counts
        elapsed = time.monotonic() - self.started
        lines = [f"demo on backend {self.agent.settings.backend!r} ({self.role}): "
                 f"{'SUCCESS' if self.succeeded() else 'FAILED'} in {elapsed:.2f}s"]
        if self.role != "cloud":
            lines.append(f"  telemetry sent {c.telemetry_sent}, confirmed {c.telemetry_confirmed}")
        if self.role != "device":
            lines.append(f"  telemetry received {c.telemetry_received}")
        lines.append(f"  commands sent {c.commands_sent}, confirmed {c.commands_confirmed}, "
                     f"received {c.commands_received}, accepted {c.commands_accepted}")
        if c.latencies_ms:
            lat = c.latencies_ms
            lines.append(f"  latency ms: p50 {percentile(lat, 0.5):.2f}, p90 "
                         f"{percentile(lat, 0.9):.2f}, p99 {percentile(lat, 0.99):.2f}, max "
                         f"{max(lat):.2f}")
        for error in c.errors:
            lines.append(f"  error: {error}")
        return "\n".join(lines)


def run_demo(agent: Agent, options: DemoOptions, role: str = "both",
             out: TextIO | None = None, interval: float = 0.5) -> Demo:
    """Run the demo to completion (or ``options.timeout``), printing status to *out*."""
    stream = out if out is not None else sys.stderr
    live = stream.isatty()
    demo = Demo(agent, options, role)
    demo.start()
    deadline = time.monotonic() + options.timeout
    while not demo.finished() and not demo.counts.errors and time.monotonic() < deadline:
        agent.run_until(lambda: demo.finished() or bool(demo.counts.errors), interval)
        line = demo.status_line()
        if live:
            stream.write("\r" + line.ljust(100))
        else:
            stream.write(line + "\n")
        stream.flush()
    if live:
        stream.write("\n")
    if demo.finished():  # let the last acknowledgements go out before closing
        agent.run(timeout=0.05)
    return demo
