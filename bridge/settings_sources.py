"""Where each setting came from, for ``bridge config`` and for errors that say which variable
or file holds a bad value.

Each pydantic-settings source is built the way `Settings` builds it and called on its own, in
the precedence order `Settings.settings_customise_sources` returns; the first source whose data
contains a setting is where it came from (a table is merged across sources, so all are named).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_settings import (
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)

from bridge.errors import ConfigError
from bridge.settings import (
    MASK,
    Settings,
    env_var_name,
    is_secret_field,
    leaf_fields,
    mask_url_password,
)


def public_value(value: Any) -> Any:
    """*value* as JSON-compatible data with every secret replaced by `MASK`."""
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(value, BaseModel):
        return {name: public_value(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, Mapping):
        return {str(key): public_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [public_value(item) for item in value]
    if isinstance(value, str):
        return mask_url_password(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)  # Path and friends


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value came from: *kind* is init (or cli), env, dotenv, toml, secrets or default;
    *detail* names the variable or file."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        label = ".env" if self.kind == "dotenv" else self.kind
        return f"{label} {self.detail}" if self.detail else label


@dataclass(frozen=True, slots=True)
class EffectiveSetting:
    """One leaf setting as `bridge config` shows it."""

    key: str                     # dotted, e.g. "mqtt.url"
    value: Any                   # JSON-compatible, secrets masked
    origins: tuple[Origin, ...]  # highest precedence first; several only for a merged table
    secret: bool


def _evaluate_sources(init: Mapping[str, Any], init_kind: str
                      ) -> list[tuple[PydanticBaseSettingsSource, Origin, dict[str, Any]]]:
    """Build the sources the way `Settings` does and call each one on its own, in precedence
    order (whatever `Settings.settings_customise_sources` returns)."""
    ordered = Settings.settings_customise_sources(
        Settings,
        init_settings=InitSettingsSource(Settings, init_kwargs=dict(init)),
        env_settings=EnvSettingsSource(Settings),
        dotenv_settings=DotEnvSettingsSource(Settings),
        file_secret_settings=SecretsSettingsSource(Settings),
    )
    evaluated = []
    for source in ordered:
        # Subclasses first: the TOML source is an InitSettingsSource, .env an Env one.
        if isinstance(source, TomlConfigSettingsSource):
            path = getattr(source, "path", None)
            origin = Origin("toml", str(path) if path is not None else "")
        elif type(source) is InitSettingsSource:
            origin = Origin(init_kind)
        elif isinstance(source, DotEnvSettingsSource):
            origin = Origin("dotenv")
        elif isinstance(source, EnvSettingsSource):
            origin = Origin("env")
        elif isinstance(source, SecretsSettingsSource):
            origin = Origin("secrets", str(source.secrets_dir or ""))
        else:
            origin = Origin(type(source).__name__)
        evaluated.append((source, origin, source()))
    return evaluated


def _provides(data: Any, path: tuple[str, ...]) -> bool:
    node = data
    for part in path:
        if isinstance(node, BaseModel):
            # A model instance given whole replaces the section (sources merge only dicts).
            return part in type(node).model_fields
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _env_detail(source: PydanticBaseSettingsSource, path: tuple[str, ...]) -> str:
    """The variable that supplied *path*: the most specific one present (BRIDGE_MQTT__URL
    before BRIDGE_MQTT given as JSON), or the per-key variables of a table."""
    present = {name.lower() for name in getattr(source, "env_vars", {})}
    for depth in range(len(path), 0, -1):
        name = env_var_name(path[:depth])
        if name.lower() in present:
            return name
    below = env_var_name(path).lower() + "__"
    return ", ".join(sorted(name.upper() for name in present if name.startswith(below)))


def _origins(sources: list[tuple[PydanticBaseSettingsSource, Origin, dict[str, Any]]],
             path: tuple[str, ...]) -> list[Origin]:
    found = []
    for source, origin, data in sources:
        if _provides(data, path):
            if origin.kind in ("env", "dotenv"):
                origin = Origin(origin.kind, _env_detail(source, path))
            found.append(origin)
    return found


def explain_settings(init: Mapping[str, Any] | None = None, *, init_kind: str = "init"
                     ) -> tuple[Settings, list[EffectiveSetting]]:
    """The effective settings and, for every leaf, its masked value and the source it came from.

    Raises `ConfigError` like `Settings` does. *init_kind* labels init arguments (``cli`` when
    they come from command-line options).
    """
    init = dict(init or {})
    settings = Settings(**init)
    sources = _evaluate_sources(init, init_kind)
    explained = []
    for path, field in leaf_fields(Settings):
        value: Any = settings
        for part in path:
            value = getattr(value, part)
        origins = _origins(sources, path)
        if not origins:
            origins = [Origin("default")]
        elif not isinstance(value, Mapping):
            origins = origins[:1]  # only a table is merged across sources; otherwise first wins
        explained.append(EffectiveSetting(".".join(path), public_value(value), tuple(origins),
                                          is_secret_field(field)))
    return settings, explained


def origin_of(key: str, init: Mapping[str, Any] | None = None, *, init_kind: str = "init"
              ) -> Origin | None:
    """Which source gave *key* (dotted; may point inside a table), even when the settings as a
    whole are invalid; None when no source did or the sources themselves cannot be read."""
    try:
        sources = _evaluate_sources(dict(init or {}), init_kind)
    except (ConfigError, SettingsError):
        return None
    origins = _origins(sources, tuple(key.split(".")))
    return origins[0] if origins else None
