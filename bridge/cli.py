"""The ``bridge`` command: run a ported agent script, show the configuration, list backends.

New commands (demo, hub, relay, shadow-report, ...) are added as ``@cli.command()`` functions;
the global options (``--config``, ``--backend``, ``--log-level``, ``-v``) reach them through
``ctx.obj`` (`Options`) and `load_settings`.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from bridge import __version__
from bridge.agent import Agent
from bridge.backends.base import backend_names
from bridge.errors import ConfigError
from bridge.settings import CONFIG_ENV, Settings
from bridge.settings_sources import EffectiveSetting, explain_settings, origin_of

log = logging.getLogger("bridge.cli")

EXIT_OK = 0
EXIT_SCRIPT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_SIGINT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_BACKEND_NOTES = {
    "memory": "in-process broker; needs nothing running (the default)",
    "mqtt": "MQTT 3.1.1 / 5 broker via paho-mqtt",
    "amqp": "AMQP 1.0 broker via python-qpid-proton",
    "iothub": "Azure IoT Hub over MQTT",
}


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


def configure_logging(level: str) -> None:
    """Time, level and logger name on stderr. An embedding application (or pytest) that has
    already configured logging keeps its handlers; only the level is set."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    if level != "DEBUG":
        # proton logs every connect/disconnect at INFO: noise next to the agent's own lines
        logging.getLogger("proton").setLevel(logging.WARNING)


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


@click.group(help=_HELP, context_settings={"help_option_names": ["-h", "--help"],
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


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``bridge``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="bridge")


# --------------------------------------------------------------------------------------------
# bridge backends
# --------------------------------------------------------------------------------------------


@cli.command(short_help="List the backends that can be selected.")
def backends() -> None:
    """List the backends that can be selected (--backend, BRIDGE_BACKEND)."""
    names = backend_names()
    width = max(map(len, names), default=0)
    for name in names:
        note = _BACKEND_NOTES.get(name, "registered backend")
        click.echo(f"{name:<{width}}  {note}")


# --------------------------------------------------------------------------------------------
# bridge config
# --------------------------------------------------------------------------------------------


@cli.command("config", short_help="Show the effective settings and where each came from.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--markdown", is_flag=True, hidden=True,
              help="Print the settings reference (docs/configuration.md).")
@click.pass_context
def config_command(ctx: click.Context, as_json: bool, markdown: bool) -> None:
    """Show every effective setting, secrets masked, and where it came from."""
    if markdown:
        from bridge.docs_gen import render

        click.echo(render(), nl=False)
        return
    overrides = (ctx.find_object(Options) or Options()).overrides
    try:
        _, explained = explain_settings(overrides, init_kind="cli")
    except ConfigError as exc:
        fail_config(ctx, exc)
    if as_json:
        click.echo(json.dumps(
            {item.key: {"value": item.value,
                        "source": str(item.origins[0]),
                        "sources": [{"kind": o.kind, "detail": o.detail} for o in item.origins],
                        "secret": item.secret}
             for item in explained}, indent=2))
        return
    click.echo(format_settings(explained))


def _toml_like(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def format_settings(explained: list[EffectiveSetting]) -> str:
    """Aligned ``key = value  # source`` lines."""
    rendered = [(item.key, _toml_like(item.value),
                 " + ".join(str(origin) for origin in item.origins)) for item in explained]
    key_width = max(len(key) for key, _, _ in rendered)
    # Long values (lists, tables) are not allowed to push every source column far right.
    value_width = min(max(len(value) for _, value, _ in rendered), 32)
    lines = ["# effective configuration: value, then where it came from (secrets masked)"]
    lines += [f"{key:<{key_width}} = {value:<{value_width}}  # {source}"
              for key, value, source in rendered]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# bridge run
# --------------------------------------------------------------------------------------------


@cli.command(short_help="Run a ported agent script until it stops or Ctrl-C.",
             context_settings={"ignore_unknown_options": True,
                               "allow_interspersed_args": False})
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop dispatching after SECONDS (exit status 0).")
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, timeout: float | None, script: Path,
        script_args: tuple[str, ...]) -> None:
    """Run a ported agent script with amqp, imp, server and agent predefined.

    The script's top level runs first (it usually opens connections); then its callbacks are
    dispatched until it calls agent.stop(), --timeout elapses, Ctrl-C or SIGTERM. Every
    connection is then closed and the resulting *_CLOSED events are delivered. A second
    Ctrl-C exits at once.

    \b
    Exit status: 0 stopped, timed out or SIGTERM; 1 the script raised (traceback on
    stderr); 2 invalid configuration; 130 Ctrl-C; sys.exit(n) in the script: n.
    """
    settings = load_settings(ctx)
    configure_logging(settings.log_level)
    path = script.resolve()
    try:
        # dont_inherit: the script must not get this module's `from __future__` flags.
        code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        traceback.print_exception(type(exc), exc, None, file=sys.stderr)
        ctx.exit(EXIT_SCRIPT_FAILED)
    except OSError as exc:
        click.echo(f"bridge: cannot read {script}: {exc.strerror or exc}", err=True)
        ctx.exit(EXIT_SCRIPT_FAILED)
    ctx.exit(ScriptRun(settings, script, code, script_args, timeout).execute())


class _Terminated(BaseException):
    """SIGTERM, raised on the main thread (a BaseException so ``except Exception`` in the
    script does not swallow it)."""


class ScriptRun:
    """One ``bridge run``: the script's module, the agent, signal handling and shutdown.

    The script's top level runs on the main thread; callbacks are then dispatched by
    ``agent.run()`` on a worker thread while the main thread waits for it. Python runs signal
    handlers only on the main thread, so Ctrl-C can interrupt that wait (and raise) without
    ever landing in the middle of a user callback or of a lock the dispatcher holds.
    """

    def __init__(self, settings: Settings, script: Path, code: types.CodeType,
                 args: Sequence[str], timeout: float | None) -> None:
        self.settings = settings
        self.script = script
        self.code = code
        self.args = list(args)
        self.timeout = timeout
        self.closing = False       # past the point where a signal may still raise
        self.signalled = False     # a signal has already been turned into an exception
        self.dispatch_done: threading.Event | None = None  # set when agent.run() returned

    # -- signals ------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if self.closing or self.signalled:
            if signum == signal.SIGINT:
                # Second Ctrl-C: the user does not want to wait for a clean close.
                os.write(2, b"bridge: forced exit\n")
                os._exit(EXIT_SIGINT)
            return  # SIGTERM while closing: the close is already under way
        self.signalled = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signal.signal only works there; run without graceful signals
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # e.g. started with `nohup` or in the background: stay deaf to it
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    # -- the run ------------------------------------------------------------------------------
    def execute(self) -> int:
        """Run the script to the end; the exit status."""
        agent = Agent(self.settings)
        # A real module as __main__, so pickling, dataclasses and `import __main__` behave as
        # under `python script.py`. It (and so every object the script keeps in its globals)
        # stays referenced until the run is over: dropping the last reference to an imp
        # object closes it.
        module = types.ModuleType("__main__")
        module.__dict__.update({
            "__file__": str(self.code.co_filename), "__cached__": None,
            "__builtins__": builtins,
            "amqp": agent.amqp, "imp": agent.imp, "server": agent.server, "agent": agent,
        })
        saved_argv, saved_main = sys.argv, sys.modules.get("__main__")
        saved_path = list(sys.path)
        sys.argv = [str(self.script), *self.args]
        sys.modules["__main__"] = module
        sys.path.insert(0, str(Path(self.code.co_filename).parent))
        previous = self._install_signal_handlers()
        click.echo(f"bridge: running {self.script} on backend {self.settings.backend!r} "
                   f"(agent {self.settings.agent_id!r}); Ctrl-C to stop", err=True)
        try:
            status = self._run(agent, module.__dict__)
            self.closing = True
            self._shutdown(agent)
            return status
        finally:
            self.closing = True
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            sys.argv = saved_argv
            if saved_main is not None:
                sys.modules["__main__"] = saved_main
            else:
                sys.modules.pop("__main__", None)
            sys.path[:] = saved_path

    def _run(self, agent: Agent, namespace: dict[str, Any]) -> int:
        """The script's top level, then dispatching; the exit status."""
        try:
            try:
                exec(self.code, namespace)
            except (KeyboardInterrupt, _Terminated, SystemExit):
                raise
            except BaseException as exc:
                self.closing = True
                self._print_traceback(exc)
                return EXIT_SCRIPT_FAILED
            failure: list[BaseException] = []
            # An Event rather than Thread.join(): on Python 3.11 a join interrupted by a
            # signal can mark the thread stopped while it is still running.
            done = self.dispatch_done = threading.Event()

            def dispatch() -> None:
                try:
                    agent.run(self.timeout)
                except BaseException as exc:  # SystemExit (or worse) from a callback
                    failure.append(exc)
                finally:
                    done.set()

            started = time.monotonic()
            threading.Thread(target=dispatch, name="bridge-dispatcher", daemon=True).start()
            done.wait()
            self.closing = True
            if failure:
                if isinstance(failure[0], SystemExit):
                    return _exit_status(failure[0])
                self._print_traceback(failure[0])
                return EXIT_SCRIPT_FAILED
            if self.timeout is not None and time.monotonic() - started >= self.timeout:
                log.info("--timeout %gs elapsed: closing", self.timeout)
            else:
                log.info("the script stopped the agent: closing")
            return EXIT_OK
        except KeyboardInterrupt:
            self.closing = True
            log.info("interrupted (SIGINT): closing")
            return EXIT_SIGINT
        except _Terminated:
            self.closing = True
            log.info("terminated (SIGTERM): closing")
            return EXIT_OK
        except SystemExit as exc:
            self.closing = True
            return _exit_status(exc)

    def _shutdown(self, agent: Agent) -> None:
        """Close every connection, then deliver the ``*_CLOSED`` callbacks closing queued."""
        wait = self.settings.close_timeout
        agent.close()  # also makes the dispatcher thread's agent.run() return
        if self.dispatch_done is not None and not self.dispatch_done.wait(wait):
            log.warning("a callback is still running %gs after close; exiting without it",
                        wait)
            return
        # Agent.close() queues the *_CLOSED events; nobody dispatches them once run() has
        # returned, so drain them here, up to a marker posted behind them.
        drained = threading.Event()
        agent.call_soon(drained.set)
        deadline = time.monotonic() + wait
        while not drained.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("callbacks still pending %gs after close; not delivered", wait)
                break
            # Returns early (False) when a stop is pending, e.g. a callback called agent.stop().
            agent.run_until(drained.is_set, remaining)

    def _print_traceback(self, exc: BaseException) -> None:
        """The traceback from the script's first frame on (the bridge's own frames are noise)."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != self.code.co_filename:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.stderr)


def _exit_status(exc: SystemExit) -> int:
    """What the interpreter would exit with for ``sys.exit(code)``."""
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    click.echo(str(exc.code), err=True)
    return EXIT_SCRIPT_FAILED


# the service commands register themselves on the group
from bridge import cli_services  # noqa: E402, F401

if __name__ == "__main__":
    main()
