"""``bridge port``: translate a Squirrel agent (and the libraries it ``#require``s) to Python."""

from __future__ import annotations

import time
from pathlib import Path

import click

from bridge.cli.app import EXIT_SCRIPT_FAILED


@click.command(short_help="Translate a Squirrel agent (.nut) to a Python agent script.")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the Python (default: SOURCE with .py).")
@click.option("--require-path", "require_paths", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="DIR",
              help="A directory #require \"NAME:VERSION\" is looked up in (repeatable, in order).")
@click.pass_context
def port(ctx: click.Context, source: Path, output: Path | None,
         require_paths: tuple[Path, ...]) -> None:
    """Translate SOURCE to a Python agent script that `bridge run` runs.

    Libraries named by #require lines are found in the --require-path directories and
    translated into the same file, dependencies first. Names, structure and comments are
    kept; Squirrel's semantics (32-bit integers and floats, string concatenation, truth,
    missing slots) come from the bridge.squirrel.runtime module the output imports. A
    construct that cannot be translated exactly is an error naming file:line:column.

    \b
    Exit status: 0 written; 1 a syntax error, an unsupported construct or an unresolved
    #require (the message names the file and line).
    """
    from bridge.squirrel.errors import SquirrelError
    from bridge.squirrel.port import translate_file

    started = time.perf_counter()
    try:
        translation = translate_file(source, list(require_paths))
    except SquirrelError as exc:
        click.echo(f"bridge port: {exc}", err=True)
        ctx.exit(EXIT_SCRIPT_FAILED)
    target = output if output is not None else source.with_suffix(".py")
    target.write_text(translation.python, encoding="utf-8")
    elapsed = time.perf_counter() - started
    click.echo(f"bridge port: {', '.join(translation.sources)} -> {target} "
               f"({translation.python.count(chr(10))} lines, {elapsed:.2f}s)", err=True)
