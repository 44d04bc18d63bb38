"""The service commands of the `bridge` CLI: ``demo``, ``relay`` and ``shadow-report``
(registered on the group by `bridge.cli`)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from bridge.agent import Agent
from bridge.cli.app import EXIT_BAD_CONFIG, EXIT_OK, Options, configure_logging, fail_config
from bridge.demo import DemoOptions, run_demo
from bridge.errors import ConfigError
from bridge.migration.shadow import format_report
from bridge.settings import Settings

EXIT_FAILED = 1


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    options = ctx.find_object(Options) or Options()
    merged = {**options.overrides, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**merged)
    except ConfigError as exc:
        fail_config(ctx, exc)


# --------------------------------------------------------------------------------------------
# bridge demo
# --------------------------------------------------------------------------------------------

_DEMO_HELP = """Run the demo: a ported device agent and a cloud application.

The device sends JSON telemetry with typed properties and accepts commands; the cloud reads the
telemetry and sends commands back. Both use the legacy amqp API only, on the configured backend
(the in-memory one by default: nothing to install). A live status line shows progress; a summary
with latency percentiles closes the run. Exit status 0 only if every message made it.

\b
Examples:
  bridge demo                               everything in this process, in memory
  bridge demo --backend mqtt                the same through the MQTT broker (mqtt.url)
  bridge demo --messages 5000 --rate 0      as fast as credit allows
  bridge demo --role cloud &  bridge demo --role device      two processes (docker-compose)
"""


@click.command(help=_DEMO_HELP, short_help="Run the demo device agent and cloud side.")
@click.option("--backend", metavar="NAME", help="Backend for this demo (overrides settings).")
@click.option("--messages", type=click.IntRange(min=1), default=100, show_default=True,
              help="Telemetry messages the device sends.")
@click.option("--rate", type=click.FloatRange(min=0), default=50.0, show_default=True,
              help="Telemetry messages per second (0: as fast as credit allows).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop sending after SECONDS (what was sent must still arrive).")
@click.option("--role", type=click.Choice(["both", "device", "cloud"]), default="both",
              show_default=True, help="Which side(s) this process plays.")
@click.option("--device-id", default="demo-device", show_default=True)
@click.option("--telemetry-path", metavar="PATH",
              help="Telemetry address (default: /devices/ID/messages/events; on amqp "
                   "/queue/ID.telemetry).")
@click.option("--command-path", metavar="PATH",
              help="Command address (default: /devices/ID/messages/devicebound; on amqp "
                   "/queue/ID.commands).")
@click.option("--command-every", type=click.IntRange(min=0), default=25, show_default=True,
              help="The cloud answers every Nth reading with a command (0: none).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Give up after SECONDS.")
@click.pass_context
def demo(ctx: click.Context, backend: str | None, messages: int, rate: float,
         duration: float | None, role: str, device_id: str, telemetry_path: str | None,
         command_path: str | None, command_every: int, timeout: float) -> None:
    settings = _settings(ctx, backend=backend)
    if settings.agent_id == "agent":  # two demo processes on one broker need distinct ids
        settings = _settings(ctx, backend=backend, agent_id=f"demo-{role}-{os.getpid()}")
    configure_logging(settings.log_level)
    if settings.backend == "amqp":  # RabbitMQ-style addresses for AMQP brokers
        telemetry_path = telemetry_path or f"/queue/{device_id}.telemetry"
        command_path = command_path or f"/queue/{device_id}.commands"
    options = DemoOptions(messages=messages, rate=rate, duration=duration, device_id=device_id,
                          telemetry_path=telemetry_path, command_path=command_path,
                          command_every=command_every, timeout=timeout)
    click.echo(f"bridge demo: backend {settings.backend!r}, role {role}, {messages} message(s)"
               f" -> {options.telemetry()}, commands <- {options.commands()}", err=True)
    agent = Agent(settings)
    try:
        result = run_demo(agent, options, role)
    except KeyboardInterrupt:
        agent.close()
        ctx.exit(130)
    agent.close()
    click.echo(result.summary())
    ctx.exit(EXIT_OK if result.succeeded() else EXIT_FAILED)


# --------------------------------------------------------------------------------------------
# bridge relay
# --------------------------------------------------------------------------------------------


@click.command(short_help="Forward between an AMQP and an MQTT broker, at least once.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Drain and stop after SECONDS (default: run until SIGTERM / Ctrl-C).")
@click.pass_context
def relay(ctx: click.Context, duration: float | None) -> None:
    """Forward messages between brokers as the relay.rules settings say.

    A source message is acknowledged only after the target confirmed it; each forwarded
    message carries a stable id (property bridge-relay-id), relay.ledger keeps a restarted
    relay from publishing again what a target confirmed, and a rule's dead_letter takes what
    the target keeps refusing. SIGTERM or Ctrl-C stops taking new messages, waits for those in
    flight (relay.drain_timeout) and exits 0.
    Prometheus metrics on relay.metrics_port when set; a status line every
    relay.status_interval seconds.

    \b
    Example rule (TOML):
      [[relay.rules]]
      source = "amqp:/queue/telemetry"
      target = "mqtt:/devices/demo-device/messages/events"
    """
    from bridge.migration.relay import Relay

    settings = _settings(ctx)
    configure_logging(settings.log_level)
    try:
        service = Relay(settings)
    except (ValueError, ConfigError) as exc:
        if isinstance(exc, ConfigError):
            fail_config(ctx, exc)
        click.echo(f"bridge relay: {exc}", err=True)
        ctx.exit(EXIT_BAD_CONFIG)
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[int(signum)] = signal.signal(signum, lambda *_: service.drain())
    names = ", ".join(f"{r.source} -> {r.target}" for r in settings.relay.rules)
    click.echo(f"bridge relay: {names}", err=True)
    try:
        service.run(timeout=duration)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    click.echo(f"bridge relay: stopped; {service.status_line()}", err=True)
    ctx.exit(EXIT_OK)


# --------------------------------------------------------------------------------------------
# bridge shadow-report
# --------------------------------------------------------------------------------------------


@click.command("shadow-report", short_help="Show the shadow divergence report.")
@click.argument("report_file", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
@click.pass_context
def shadow_report(ctx: click.Context, report_file: Path | None, as_json: bool) -> None:
    """Print what a shadow route diverged on (REPORT_FILE defaults to shadow.report_file).

    Exit status 0 when nothing diverged, 1 when something did.
    """
    if report_file is None:
        report_file = _settings(ctx).shadow.report_file
    if report_file is None:
        click.echo("bridge shadow-report: no report file (give one or set shadow.report_file)",
                   err=True)
        ctx.exit(EXIT_BAD_CONFIG)
    try:
        report = json.loads(report_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        click.echo(f"bridge shadow-report: cannot read {report_file}: {exc}", err=True)
        ctx.exit(EXIT_BAD_CONFIG)
    if as_json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        click.echo()
    else:
        click.echo(format_report(report))
    diverged = any(route.get("divergences") for route in report.get("routes", {}).values())
    ctx.exit(EXIT_FAILED if diverged or report.get("connection_problems") else EXIT_OK)
