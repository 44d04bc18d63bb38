"""Configuration: `Settings` from init arguments, ``BRIDGE_*`` environment, ``.env`` and a TOML
profile named by ``BRIDGE_CONFIG``, in that order of precedence, then defaults.

`Settings` is assembled from the backend registry: the core fields below, then one section per
backend whose registry entry declares a settings model (``memory``, ``mqtt``, ``amqp``,
``iothub``, and any backend published through the entry-point group), each owned and validated
by its backend package. Every section is a plain pydantic model, so the whole tree is documented
in one place (docs/configuration.md is generated from it) and ``bridge config`` can print it with
the source of each value. Secrets are ``SecretStr``: they never appear in ``repr``, logs or error
text.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, create_model, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from bridge.backends.registry import BUILTIN_ORDER, backend_entries, backend_names
from bridge.errors import ConfigError
from bridge.fleet.settings import FleetSettings
from bridge.migration.routing import validate_routes
from bridge.migration.settings import RelaySettings, RouteRule, ShadowSettings
from bridge.settings_base import (
    MASK,
    Section,
    describe_validation_error,
    is_secret_field,
    leaf_fields,
    mask_url_password,
)

__all__ = ["CONFIG_ENV", "MASK", "LimitSettings", "OutboxSettings", "RoutingSettings",
           "Settings", "describe_validation_error", "env_var_name", "is_secret_field",
           "leaf_fields", "mask_url_password", "toml_source"]

CONFIG_ENV = "BRIDGE_CONFIG"


class LimitSettings(Section):
    """imp's per-agent caps. 0 disables a cap."""

    connections: int = Field(4, ge=0, description="Concurrent connections per agent.")
    sessions: int = Field(16, ge=0, description="Concurrent sessions per agent.")
    links: int = Field(64, ge=0, description="Concurrent senders and receivers per agent.")


class RoutingSettings(Section):
    also_notify_connection: bool = Field(
        False, description="Also copy a child's events to the connection callback when the "
                           "child has its own callback (imp behaviour is unconfirmed; off = "
                           "each event is delivered once).")
class ThreadSettings(Section):
    """The process's shared threads (the first agent's settings size them)."""

    network_loops: int = Field(0, ge=0, description="Network loop threads driving every MQTT "
                               "and IoT Hub connection (0: one per core).")
    amqp_reactors: int = Field(0, ge=0, description="proton reactor threads shared by every "
                               "AMQP connection (0: one per core).")
    dispatch_workers: int = Field(0, ge=0, description="Workers that run the callbacks of "
                                  "agents started with agent.start() (0: two per core).")
    dispatch_max_workers: int = Field(0, ge=0, description="Most workers while callbacks block "
                                      "(0: sixteen times dispatch_workers).")


class OutboxSettings(Section):
    """The durable outbox (off unless ``path`` is set): sends survive outages and restarts."""

    path: Path | None = Field(None, description="SQLite file holding unconfirmed sends; set "
                              "it to turn the outbox on.")
    max_messages: int = Field(100_000, ge=1, description="Messages the outbox holds; a send "
                              "beyond it fails with SENDER_ERROR (nothing stored is dropped).")
    max_bytes: int = Field(256 * 1024 * 1024, ge=1, description="Bytes the outbox holds "
                           "(bodies and properties); same overflow policy.")
    window: int = Field(1000, ge=1, description="Unconfirmed transfers per sender handed to the "
                        "backend at once; the rest wait in the outbox.")
    tag_property: str | None = Field(None, description="If set, each message gets a unique id "
                                     "in this property so consumers can count duplicates.")


class SettingsCore(BaseSettings):
    """The fields every configuration has; `Settings` adds one section per backend."""

    model_config = SettingsConfigDict(
        env_prefix="BRIDGE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="forbid",
        validate_default=True,
        validate_assignment=True,
        hide_input_in_errors=True,
    )

    backend: str = Field("memory", description="memory (default), amqp, mqtt, iothub or a "
                                               "registered backend (bridge backends).")
    config: str | None = Field(None, description="The TOML profile that was read "
                                                 "(set with BRIDGE_CONFIG).")
    agent_id: str = Field("agent", min_length=1, pattern=r"^[A-Za-z0-9._-]+$",
                          description="Names this agent (client ids, container ids, logs).")
    amqp_enabled: bool = Field(True, description="imp's AMQP feature gate: false makes every "
                                                 "amqp.* call raise.")
    close_timeout: float = Field(5.0, ge=0, description="Seconds Agent.close() waits for "
                                                        "backends to finish closing.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging level of the bridge command (bridge --log-level, -v).")
    limits: LimitSettings = Field(default_factory=LimitSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    routes: list[RouteRule] = Field(default_factory=list,
                                    description="Ordered per-address routes; the first match "
                                                "wins, unmatched paths use `backend`.")
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    threads: ThreadSettings = Field(default_factory=ThreadSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)

    if TYPE_CHECKING:  # the backend sections are added from the registry (see below)
        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, type(self))) from None
        except SettingsError as exc:
            # e.g. BRIDGE_MQTT='not json': pydantic-settings' own error names the field and the
            # source but is not a ConfigError and would surface as a traceback.
            raise ConfigError([_describe_settings_error(exc)]) from None
        if self.routes:
            validate_routes(self)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        known = backend_names(selectable_only=True)
        if value not in known:
            if value in backend_names():
                raise ValueError(f"{value!r} is not selected by name (the router runs whenever "
                                 f"routes are set; backend names where unmatched paths go)")
            raise ValueError(f"unknown backend; allowed: {', '.join(known)}")
        return value

    def section(self, name: str) -> Any:
        """The settings section of backend *name* (None when it declares none)."""
        return getattr(self, name, None) if name in _SECTIONS else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings,
                toml_source(settings_cls, init_settings, dotenv_settings))


def _backend_sections() -> dict[str, Any]:
    """One field per backend whose registry entry declares a settings model; built-ins first,
    in their usual order, then the others by name."""
    entries = sorted(backend_entries(), key=lambda e: (
        BUILTIN_ORDER.index(e.name) if e.name in BUILTIN_ORDER else len(BUILTIN_ORDER), e.name))
    fields: dict[str, Any] = {}
    for entry in entries:
        model = entry.load_settings_model()
        if model is None:
            continue
        if entry.name in SettingsCore.model_fields:
            raise RuntimeError(f"backend {entry.name!r}: its settings section would replace "
                               f"the core setting of the same name")
        fields[entry.name] = (model, Field(default_factory=model))
    return fields


_SECTIONS = _backend_sections()

if TYPE_CHECKING:
    Settings = SettingsCore
else:
    Settings = create_model("Settings", __base__=SettingsCore, __module__=__name__,
                            __doc__="Everything the bridge reads. See docs/configuration.md "
                                    "for every field.", **_SECTIONS)


def config_file_from(init_settings: PydanticBaseSettingsSource | None = None,
                     dotenv_settings: PydanticBaseSettingsSource | None = None) -> Path | None:
    """The TOML profile: ``config=`` given to `Settings`, else ``$BRIDGE_CONFIG``, else
    ``BRIDGE_CONFIG`` in ``.env`` (the same precedence as every other setting)."""
    given = None
    if init_settings is not None:
        given = getattr(init_settings, "init_kwargs", {}).get("config")
    given = given or os.environ.get(CONFIG_ENV)
    if not given and dotenv_settings is not None:
        # Without this, BRIDGE_CONFIG in .env would set the `config` field but read no file.
        dotenv_vars = getattr(dotenv_settings, "env_vars", {})
        given = dotenv_vars.get(CONFIG_ENV.lower()) or dotenv_vars.get(CONFIG_ENV)
    return Path(given) if given else None


def toml_source(settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource | None = None,
                dotenv_settings: PydanticBaseSettingsSource | None = None,
                ) -> PydanticBaseSettingsSource:
    path = config_file_from(init_settings, dotenv_settings)
    if path is not None and not path.is_file():
        raise ConfigError([f"config: TOML profile {str(path)!r} does not exist "
                           f"(named by {CONFIG_ENV} or config=)"])
    try:
        return _NamedTomlSource(settings_cls, path)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message gives line and column, never the offending text.
        raise ConfigError([f"config: TOML profile {str(path)!r} is not valid TOML: {exc}"]
                          ) from None
    except OSError as exc:
        raise ConfigError([f"config: TOML profile {str(path)!r} cannot be read: "
                           f"{exc.strerror or exc}"]) from None


class _NamedTomlSource(TomlConfigSettingsSource):
    """A TOML source that also records which file it read in the ``config`` field."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        self._path = path
        super().__init__(settings_cls, toml_file=path)

    @property
    def path(self) -> Path | None:
        """The profile read (None: no profile named)."""
        return self._path

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        if self._path is not None:
            data.setdefault("config", str(self._path))
        return data


def _describe_settings_error(exc: SettingsError) -> str:
    """pydantic-settings' "error parsing value for field X from source Y" as one readable line."""
    found = re.search(r'field "([^"]+)" from source "([^"]+)"', str(exc))
    if found is None:
        return f"settings: {exc}"
    field, source = found.groups()
    where = {"EnvSettingsSource": "the environment",
             "DotEnvSettingsSource": ".env"}.get(source, source)
    return (f"{field}: the value from {where} is not valid JSON (a section, list or table is "
            f"written as JSON, or one field at a time as {env_var_name((field, '<name>'))})")


def env_var_name(path: tuple[str, ...]) -> str:
    """The environment variable of a setting: ``("mqtt", "url")`` -> ``BRIDGE_MQTT__URL``."""
    config = SettingsCore.model_config
    delimiter = config.get("env_nested_delimiter") or "__"
    return f"{config.get('env_prefix') or ''}{delimiter.join(path)}".upper()
