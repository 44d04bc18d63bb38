"""``bridge run``: a ported agent script, dispatched until it stops, a time-out or Ctrl-C."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from bridge.cli.app import EXIT_SCRIPT_FAILED, configure_logging, load_settings
from bridge.script import ScriptRun


@click.command(short_help="Run a ported agent script until it stops or Ctrl-C.",
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
