"""The ``bridge`` command group: global options, settings loading, logging, exit codes.

Commands live in their own modules (`bridge.cli.run`, `bridge.cli.settings`,
`bridge.cli.services`, ...) and are registered on this group explicitly by `bridge.cli`;
the global options (``--config``, ``--backend``, ``--log-level``, ``-v``) reach them through
``ctx.obj`` (`Options`) and `load_settings`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from bridge.errors import ConfigError
from bridge.script import EXIT_BAD_CONFIG, EXIT_OK, EXIT_SCRIPT_FAILED, EXIT_SIGINT
from bridge.settings import CONFIG_ENV, Settings
from bridge.settings_sources import origin_of
from bridge.version import __version__

__all__ = ["EXIT_BAD_CONFIG", "EXIT_OK", "EXIT_SCRIPT_FAILED", "EXIT_SIGINT", "Options", "cli",
           "configure_logging", "fail_config", "load_settings"]

log = logging.getLogger("bridge.cli")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DEVICE_LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(device)s] %(name)s: %(message)s"

@dataclass
class Options:
    """The global options, as `Settings` init arguments (labelled ``cli`` in `bridge config`)."""

    overrides: dict[str, Any] = field(default_factory=dict)


def load_settings(ctx: click.Context) -> Settings:
    """The settings with the global options applied; invalid -> readable error, exit 2."""
    overrides = ctx.find_object(Options) or Options()
    try:
        return Settings(**overrides.overrides)
    except ConfigError as exc:
        fail_config(ctx, exc)


def fail_config(ctx: click.Context, exc: ConfigError) -> NoReturn:
    """Print a `ConfigError` with the source of each bad value; exit 2 (no traceback)."""
    overrides = (ctx.find_object(Options) or Options()).overrides
    click.echo("bridge: invalid configuration:", err=True)
    for problem in exc.problems:
        key = problem.split(":", 1)[0]
        origin = origin_of(key, overrides, init_kind="cli") if " " not in key else None
        suffix = f"  [from {origin}]" if origin is not None and origin.kind != "default" else ""
        click.echo(f"  - {problem}{suffix}", err=True)
    ctx.exit(EXIT_BAD_CONFIG)


def configure_logging(level: str, *, device_field: bool = False) -> None:
    """Time, level and logger name on stderr (with *device_field*, the device each line is
    about: ``bridge fleet``). An embedding application (or pytest) that has already configured
    logging keeps its handlers; only the level is set."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(DEVICE_LOG_FORMAT if device_field
                                               else LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    if level != "DEBUG":
        # proton logs every connect/disconnect at INFO: noise next to the agent's own lines
        logging.getLogger("proton").setLevel(logging.WARNING)


class LazyGroup(click.Group):
    """A group whose heavier commands are imported only when they run.

    `add_lazy_command` registers a name with its ``"module:attribute"`` and a short help, so
    ``bridge --help`` lists it without importing it (``bridge hub`` would load the whole IoT
    Hub stand-in and proton).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def add_lazy_command(self, name: str, target: str, short_help: str) -> None:
        self.lazy[name] = (target, short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in self.lazy:
            module_name, _, attribute = self.lazy[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        width = formatter.width - 6 - max(map(len, self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None:
                if command.hidden:
                    continue
                rows.append((name, command.get_short_help_str(width)))
            else:
                rows.append((name, self.lazy[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# --------------------------------------------------------------------------------------------
# The group
# --------------------------------------------------------------------------------------------

_HELP = """Run legacy Electric Imp agent code written against the imp AMQP API
(amqp.openconnection, opensession, opensender/openreceiver, ...) unchanged over a
selectable backend: an in-process broker (memory, the default), MQTT, AMQP 1.0 or Azure IoT Hub.

Settings come from BRIDGE_* environment variables (sections nested with __, e.g.
BRIDGE_MQTT__URL), a .env file and a TOML profile (--config or BRIDGE_CONFIG);
see docs/configuration.md.

\b
Examples:
  bridge run agent.py                   run a ported agent script (Ctrl-C to stop)
  bridge --backend mqtt run agent.py    the same over MQTT (broker: mqtt.url)
  bridge run --timeout 30 agent.py -x   stop after 30 s; -x is passed to the script
  bridge --config config/memory.toml config
                                        show every setting and where it came from
  bridge config --json                  the same as JSON (secrets masked)
  bridge backends                       the backends that can be selected
"""


@click.group(cls=LazyGroup, help=_HELP, context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.option("--config", "config_path", metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help=f"TOML profile to read (sets {CONFIG_ENV} for this process and the script).")
@click.option("--backend", metavar="NAME",
              help="Backend to use instead of the configured one (see 'bridge backends').")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                                case_sensitive=False),
              help="Logging level (default: the log_level setting, INFO).")
@click.option("-v", "--verbose", is_flag=True, help="Log everything (--log-level DEBUG).")
@click.version_option(__version__, "-V", "--version", prog_name="bridge")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, backend: str | None,
        log_level: str | None, verbose: bool) -> None:
    if config_path is not None:
        # The environment, not an init argument: a script that builds its own Settings() or
        # Agent() reads the same profile.
        os.environ[CONFIG_ENV] = str(config_path)
    options = Options()
    if backend is not None:
        options.overrides["backend"] = backend
    if log_level is not None:
        options.overrides["log_level"] = log_level.upper()
    elif verbose:
        options.overrides["log_level"] = "DEBUG"
    ctx.obj = options
