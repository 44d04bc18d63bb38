"""``bridge backends`` and ``bridge config``: what can be selected, and the effective settings."""

from __future__ import annotations

import json
from typing import Any

import click

from bridge.backends.registry import backend_entry, backend_names
from bridge.cli.app import Options, fail_config
from bridge.errors import ConfigError
from bridge.settings_sources import EffectiveSetting, explain_settings


@click.command(short_help="List the backends that can be selected.")
def backends() -> None:
    """List the backends that can be selected (--backend, BRIDGE_BACKEND)."""
    names = backend_names(selectable_only=True)
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {backend_entry(name).description}")


@click.command("config", short_help="Show the effective settings and where each came from.")
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
