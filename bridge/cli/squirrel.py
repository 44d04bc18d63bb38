"""``bridge scan``: an inventory of Squirrel agent code, before any of it changes."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli.app import EXIT_BAD_CONFIG, EXIT_OK, EXIT_SCRIPT_FAILED, Options, load_settings

_SCAN_HELP = """Inventory Squirrel agent code for a migration (nothing is run or changed).

Lists every amqp call site with file:line (openconnection URLs, opensession,
opensender/openreceiver paths, createmessage/createbinarymessage, sendasync,
accept/reject/release, the event strings compared in callbacks), what each becomes on the
backend (paths mapped to topics by the backend's own rules), the backend's documented
deviations that apply, and every other imp API used with whether the bridge provides it.

\b
Exit status: 0; 1 with --strict when something is unsupported; 2 when a file does not parse
or a #require cannot be resolved.

\b
Examples:
  bridge scan agent.nut --backend iothub
  bridge scan agent.nut --require-path libs/ --backend mqtt --markdown > plan.md
  bridge scan *.nut --json --strict
"""


@click.command("scan", help=_SCAN_HELP, short_help="Inventory Squirrel agent code (.nut).")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--backend", "backend", type=click.Choice(["memory", "mqtt", "amqp", "iothub"]),
              default=None, help="Target backend (default: the configured one).")
@click.option("--require-path", "require_paths", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Directory to resolve #require from (repeatable); required libraries are "
                   "scanned too.")
@click.option("--json", "as_json", is_flag=True, help="Output JSON.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Output Markdown.")
@click.option("--strict", is_flag=True, help="Exit 1 when anything is unsupported.")
@click.pass_context
def scan_command(ctx: click.Context, files: tuple[Path, ...], backend: str | None,
                 require_paths: tuple[Path, ...], as_json: bool, as_markdown: bool,
                 strict: bool) -> None:
    from bridge.squirrel.errors import SquirrelError
    from bridge.squirrel.scan import scan_files
    from bridge.squirrel.scan_render import render_json, render_markdown, render_text

    if as_json and as_markdown:
        raise click.UsageError("choose one of --json and --markdown")
    rules: list[tuple[str, str]] = []
    reserved_prefix = "bridge"
    if backend is None or backend == "mqtt":
        overrides = (ctx.find_object(Options) or Options()).overrides
        settings = load_settings(ctx)  # --config / environment: the backend and mqtt rules
        backend = backend or str(overrides.get("backend") or settings.backend)
        if backend == "mqtt":
            rules = [(rule.path, rule.topic) for rule in settings.mqtt.topic_rules]
            reserved_prefix = settings.mqtt.reserved_prefix
    if backend not in ("memory", "mqtt", "amqp", "iothub"):
        raise click.UsageError(f"bridge scan knows the backends memory, mqtt, amqp and iothub, "
                               f"not {backend!r}")
    try:
        report = scan_files(list(files), backend, require_paths=list(require_paths),
                            mqtt_rules=rules, reserved_prefix=reserved_prefix)
    except SquirrelError as exc:
        click.echo(f"bridge scan: {exc}", err=True)
        ctx.exit(EXIT_BAD_CONFIG)
    render = render_json if as_json else render_markdown if as_markdown else render_text
    click.echo(render(report), nl=False)
    unsupported = report.unsupported()
    if strict and unsupported:
        click.echo(f"bridge scan: {len(unsupported)} unsupported use(s) on {backend}", err=True)
        ctx.exit(EXIT_SCRIPT_FAILED)
    ctx.exit(EXIT_OK)


__all__ = ["scan_command"]
