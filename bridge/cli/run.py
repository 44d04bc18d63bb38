"""``bridge run``: an agent script (Python, or Squirrel ``.nut``), dispatched until it stops, a
time-out or Ctrl-C."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from bridge.cli.app import EXIT_SCRIPT_FAILED, configure_logging, load_settings
from bridge.script import ScriptRun
from bridge.settings import Settings


@click.command(short_help="Run an agent script (.py or .nut) until it stops or Ctrl-C.",
             context_settings={"ignore_unknown_options": True,
                               "allow_interspersed_args": False})
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop dispatching after SECONDS (exit status 0).")
@click.option("--engine", type=click.Choice(["auto", "vm", "translate"]), default="auto",
              show_default=True,
              help=".nut only: the embedded Squirrel VM, or translation to Python (auto: the VM "
                   "when installed).")
@click.option("--require-path", "require_paths", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help='.nut only: where #require "Name:version" libraries are found (repeatable).')
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help=".nut only: an imp.configparams entry (repeatable; values are strings; a bare "
                   "NAME takes the environment variable NAME).")
@click.option("--storage", metavar="FILE", default=None,
              help=".nut only: the file server.save/server.load use (default: memory only).")
@click.option("--agent-url", default="", metavar="URL",
              help=".nut only: what http.agenturl() returns.")
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, timeout: float | None, engine: str,
        require_paths: tuple[Path, ...], params: tuple[str, ...], storage: str | None,
        agent_url: str, script: Path, script_args: tuple[str, ...]) -> None:
    """Run a ported agent script with amqp, imp, server and agent predefined, or Squirrel
    agent code (SCRIPT.nut) with imp's globals (amqp, imp, server, http, crypto).

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
    if script.suffix == ".nut":
        ctx.exit(_run_nut(settings, script, timeout, engine, require_paths, params, storage,
                          agent_url, script_args))
    nut_only = [name for name, given in (("--engine", engine != "auto"),
                                         ("--require-path", require_paths),
                                         ("--param", params), ("--storage", storage),
                                         ("--agent-url", agent_url)) if given]
    if nut_only:
        raise click.UsageError(f"{', '.join(nut_only)}: only for Squirrel (.nut) agents")
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


def _run_nut(settings: Settings, script: Path, timeout: float | None, engine: str,
             require_paths: tuple[Path, ...], params: tuple[str, ...], storage: str | None,
             agent_url: str, script_args: tuple[str, ...]) -> int:
    from bridge.cli.nut import EngineUnavailable, make_run
    from bridge.squirrel.errors import SquirrelError
    if script_args:
        click.echo(f"bridge: a .nut agent takes no arguments (got {' '.join(script_args)}); "
                   "use --param NAME=VALUE", err=True)
        return EXIT_SCRIPT_FAILED
    try:
        runner = make_run(settings, script, timeout, engine=engine,
                          require_paths=require_paths, params=params, storage=storage,
                          agent_url=agent_url)
    except (EngineUnavailable, ValueError, SquirrelError) as exc:
        click.echo(f"bridge: {exc}", err=True)
        return EXIT_SCRIPT_FAILED
    except OSError as exc:
        click.echo(f"bridge: cannot read {script}: {exc.strerror or exc}", err=True)
        return EXIT_SCRIPT_FAILED
    return runner.execute()
