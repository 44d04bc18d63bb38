"""``bridge fleet``: the same agent script once per device of a devices file."""

from __future__ import annotations

import logging
import resource
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bridge.cli.app import (
    EXIT_BAD_CONFIG,
    EXIT_OK,
    EXIT_SCRIPT_FAILED,
    configure_logging,
    fail_config,
    load_settings,
)
from bridge.errors import ConfigError

if TYPE_CHECKING:
    from bridge.squirrel.vm.fleet import NutProgram

_HELP = """Run an agent script once per device: thousands of device agents in one process.

Each device (a row of FILE: CSV with a header, JSON or TOML [[devices]]) gets its own agent,
its own amqp/imp/server/agent globals and imp.configparams (every column of its row). A column
named like a setting overrides it for that device: mqtt.url, iothub.connection_string,
iothub.shared_access_key, backend ... (secrets are never shown). device_id is required.

The agents share a few network threads and a pool of dispatcher workers; each agent's
callbacks still run in order, one at a time. Connection attempts are paced (fleet.connect_rate
per second, with jitter), reconnects after a broker restart too. An agent whose script fails
is reported and restarted with backoff; the others are not touched. A status line every
fleet.status_interval seconds; Prometheus metrics on fleet.metrics_port. Ctrl-C or SIGTERM
closes every agent cleanly and exits 0.

\b
Examples:
  bridge fleet agent.py --devices devices.csv
  bridge fleet agent.py --devices devices.csv --shard 0/3     this process: shard 0 of 3
  BRIDGE_FLEET__METRICS_PORT=9100 bridge --backend iothub fleet agent.nut --devices fleet.toml
"""


@click.command("fleet", help=_HELP, short_help="Run an agent script once per device.")
@click.option("--devices", "devices_file", required=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The devices: CSV, JSON or TOML.")
@click.option("--shard", metavar="K/N", help="Run only the devices of shard K of N (K from 0): "
              "a stable hash of the device id, so N processes split a fleet.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Close every agent and exit 0 after SECONDS.")
@click.option("--connect-rate", type=click.FloatRange(min=0), metavar="PER_SECOND",
              help="Override fleet.connect_rate (0: unpaced).")
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def fleet_command(ctx: click.Context, devices_file: Path, shard: str | None,
                  timeout: float | None, connect_rate: float | None, script: Path) -> None:
    from bridge.fleet.devices import load_devices
    from bridge.fleet.runner import AgentProgram, Fleet, PythonProgram, device_log_filter
    from bridge.fleet.shard import in_shard, parse_shard

    settings = load_settings(ctx)
    if connect_rate is not None:
        settings = settings.model_copy(update={"fleet": settings.fleet.model_copy(
            update={"connect_rate": connect_rate})})
    configure_logging(settings.log_level, device_field=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(device_log_filter())
    try:
        selected = parse_shard(shard) if shard else None
        devices = [d for d in load_devices(devices_file, type(settings))
                   if in_shard(d.device_id, selected)]
    except ValueError as exc:
        click.echo(f"bridge fleet: {exc}", err=True)
        ctx.exit(EXIT_BAD_CONFIG)
    except ConfigError as exc:
        fail_config(ctx, exc)
    problem = raise_file_limit(len(devices), settings.fleet.files_per_agent)
    if problem is not None:
        click.echo(f"bridge fleet: {problem}", err=True)
        ctx.exit(EXIT_BAD_CONFIG)
    program: AgentProgram
    try:
        program = _nut_program(script) if script.suffix == ".nut" else PythonProgram(script)
    except (SyntaxError, ImportError, ValueError) as exc:
        click.echo(f"bridge fleet: {script}: {exc}", err=True)
        ctx.exit(EXIT_SCRIPT_FAILED)
    shard_text = f", shard {shard}" if shard else ""
    click.echo(f"bridge fleet: {script} x {len(devices)} devices{shard_text} on backend "
               f"{settings.backend!r}; Ctrl-C to stop", err=True)
    sys.path.insert(0, str(script.resolve().parent))
    fleet = Fleet(settings, program, devices)
    previous = _stop_on_signals(fleet)
    try:
        fleet.start()
        if fleet.metrics_port is not None:
            click.echo(f"bridge fleet: metrics on http://{settings.fleet.metrics_host}:"
                       f"{fleet.metrics_port}/metrics", err=True)
        fleet.run(timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    click.echo(f"bridge fleet: stopped ({len(devices)} agents closed)", err=True)
    ctx.exit(EXIT_OK)


def _stop_on_signals(fleet: Any) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[int(signum)] = signal.signal(signum, lambda *_: fleet.request_stop())
    return previous


def raise_file_limit(devices: int, per_agent: int) -> str | None:
    """Raise the open-files soft limit to the hard one; why *devices* cannot fit, or None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif hard == resource.RLIM_INFINITY:
        return None
    need = devices * per_agent + 256
    if need > hard:
        return (f"{devices} devices need about {need} open files ({per_agent} per agent, "
                f"fleet.files_per_agent), but this process may open at most {hard} (the hard "
                f"limit; raise it with `ulimit -Hn` or LimitNOFILE=, or split the fleet with "
                f"--shard)")
    return None


def _nut_program(script: Path) -> NutProgram:
    """A ``.nut`` agent on the embedded VM, once per device (its row as imp.configparams);
    its ``#require`` libraries come from BRIDGE_REQUIRE_PATH (os.pathsep-separated)."""
    import os

    from bridge.squirrel import vm
    from bridge.squirrel.errors import SquirrelError
    from bridge.squirrel.requires import resolve_all
    if not vm.available():
        raise ImportError("the embedded Squirrel VM is not installed: pip install "
                          "'amqp-mqtt-bridge[squirrel]'")
    from bridge.squirrel.vm.fleet import NutProgram
    paths = [Path(p) for p in os.environ.get("BRIDGE_REQUIRE_PATH", "").split(os.pathsep) if p]
    try:
        return NutProgram(resolve_all(script, paths))
    except SquirrelError as exc:
        raise ValueError(str(exc)) from None
