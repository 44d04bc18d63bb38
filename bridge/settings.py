"""Configuration: `Settings` from init arguments, ``BRIDGE_*`` environment, ``.env`` and a TOML
profile named by ``BRIDGE_CONFIG``, in that order of precedence, then defaults.

Every section is a plain pydantic model, so the whole tree is documented in one place and
``bridge config`` can print it with the source of each value. Secrets are ``SecretStr``: they
never appear in ``repr``, logs or error text.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from bridge.errors import ConfigError

CONFIG_ENV = "BRIDGE_CONFIG"


class _Section(BaseModel):
    # hide_input_in_errors: a ValidationError that escapes describe_validation_error (e.g. from
    # an assignment) must not print a secret it was given.
    model_config = ConfigDict(extra="forbid", validate_assignment=True,
                              hide_input_in_errors=True)


class LimitSettings(_Section):
    """imp's per-agent caps. 0 disables a cap."""

    connections: int = Field(4, ge=0, description="Concurrent connections per agent.")
    sessions: int = Field(16, ge=0, description="Concurrent sessions per agent.")
    links: int = Field(64, ge=0, description="Concurrent senders and receivers per agent.")


class RoutingSettings(_Section):
    also_notify_connection: bool = Field(
        False, description="Also copy a child's events to the connection callback when the "
                           "child has its own callback (imp behaviour is unconfirmed; off = "
                           "each event is delivered once).")


class MemorySettings(_Section):
    """The in-process broker."""

    broker: str = Field("default", min_length=1,
                        description="Name of the in-process broker; agents in one process that "
                                    "name the same broker share its queues.")
    queue_capacity: int = Field(10_000, ge=1,
                                description="Messages a queue holds; a sender gets credit only "
                                            "while its queue is below this.")
    prefetch: int = Field(100, ge=1,
                          description="Credit of a receiver: unsettled deliveries it may hold.")
    max_delivery_count: int = Field(10, ge=1,
                                    description="Deliveries of one message (released ones count) "
                                                "before it is dead-lettered.")
    users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="SASL PLAIN users (name -> password). Empty: anonymous connections allowed; "
                    "otherwise the URL's userinfo must match.")


class TopicRule(_Section):
    """One address -> topic rule: ``{name}`` captures one level, ``*`` any rest."""

    path: str = Field(description="AMQP path pattern, e.g. /devices/{device}/messages/events")
    topic: str = Field(description="MQTT topic template, e.g. devices/{device}/messages/events")


class MQTTSettings(_Section):
    """The MQTT backend (paho-mqtt 2.x)."""

    url: str = Field("mqtt://127.0.0.1:1883",
                     description="Broker actually reached: mqtt://, mqtts://, ws:// or wss://.")
    client_id: str | None = Field(None, description="MQTT client id; default derived from the "
                                                    "agent id and connection number (stable).")
    username: str | None = None
    password: SecretStr | None = None
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    keepalive: int = Field(60, ge=1, le=65535, description="Keep-alive interval in seconds.")
    qos: Literal[0, 1] = Field(1, description="QoS for publishes and subscriptions.")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = Field(True, description="Verify the broker's TLS certificate.")
    insecure: bool = Field(False, description="Skip host-name checking (explicit opt-in).")
    clean_start: bool = Field(True, description="Start a clean MQTT session.")
    session_expiry: int = Field(0, ge=0, description="MQTT 5 session expiry interval (s).")
    reconnect: Literal["off", "auto"] = Field(
        "off", description="off: connection loss ends the connection (CONNECTION_ERROR, children "
                           "closed) as AMQP did; auto: reconnect and keep objects open.")
    reconnect_min_delay: float = Field(0.5, gt=0)
    reconnect_max_delay: float = Field(30.0, gt=0)
    buffer_limit: int = Field(10_000, ge=0,
                              description="Sends held while reconnecting; beyond it SENDER_ERROR.")
    max_inflight: int = Field(20, ge=1, description="Unacknowledged QoS 1 publishes in flight "
                                                    "(the sender's link credit).")
    topic_rules: list[TopicRule] = Field(default_factory=list,
                                         description="Ordered path -> topic rules; default: strip "
                                                     "the leading '/'.")
    properties_v311: Literal["envelope", "drop"] = Field(
        "envelope", description="MQTT 3.1.1 has no user properties: wrap body and properties in "
                                "a JSON envelope, or drop properties (logged).")
    release_delay: float = Field(1.0, ge=0, description="Delay before a released delivery is "
                                                        "redelivered to the receiver.")
    dead_letter_topic: str | None = Field(None, description="Where rejected deliveries are "
                                                            "republished (none: dropped).")
    connect_timeout: float = Field(10.0, gt=0)


class AMQPSettings(_Section):
    """The AMQP 1.0 backend (python-qpid-proton)."""

    url: str | None = Field(None, description="Broker actually reached; default: the URL given "
                                              "to amqp.openconnection.")
    username: str | None = None
    password: SecretStr | None = None
    sasl_mechanisms: str = Field("ANONYMOUS PLAIN", description="Allowed SASL mechanisms.")
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = Field(True, description="Verify the broker's TLS certificate and host name.")
    idle_timeout: float = Field(60.0, ge=0, description="AMQP idle time-out (s); 0 disables.")
    container_id: str | None = Field(None, description="AMQP container id; default derived.")
    prefetch: int = Field(100, ge=1, description="Link credit granted to each receiver.")
    connect_timeout: float = Field(10.0, gt=0)


class Settings(BaseSettings):
    """Everything the bridge reads. See docs/configuration.md for every field."""

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

    backend: str = Field("memory", description="memory (default), amqp, mqtt or iothub.")
    config: str | None = Field(None, description="The TOML profile that was read "
                                                 "(set with BRIDGE_CONFIG).")
    agent_id: str = Field("agent", min_length=1, pattern=r"^[A-Za-z0-9._-]+$",
                          description="Names this agent (client ids, container ids, logs).")
    amqp_enabled: bool = Field(True, description="imp's AMQP feature gate: false makes every "
                                                 "amqp.* call raise.")
    close_timeout: float = Field(5.0, ge=0, description="Seconds Agent.close() waits for "
                                                        "backends to finish closing.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    limits: LimitSettings = Field(default_factory=LimitSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    mqtt: MQTTSettings = Field(default_factory=MQTTSettings)
    amqp: AMQPSettings = Field(default_factory=AMQPSettings)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, type(self))) from None
        except SettingsError as exc:
            # e.g. BRIDGE_MQTT='not json': pydantic-settings' own error names the field and the
            # source but is not a ConfigError and would surface as a traceback.
            raise ConfigError([_describe_settings_error(exc)]) from None

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from bridge.backends.base import backend_names

        known = backend_names()
        if value not in known:
            raise ValueError(f"unknown backend; allowed: {', '.join(known)}")
        return value

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

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        if self._path is not None:
            data.setdefault("config", str(self._path))
        return data


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Field paths whose values must never be echoed."""
    found: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        annotation = str(field.annotation)
        if "SecretStr" in annotation:
            found.add((*prefix, name))
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            found |= _secret_paths(sub, (*prefix, name))
    return found


def describe_validation_error(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One readable line per bad field: where, what is allowed, what was given (never a secret)."""
    secrets = _secret_paths(model)
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        where = ".".join(loc) or "settings"
        message = error["msg"]
        unknown = error["type"] == "extra_forbidden"
        if unknown:
            message = "unknown setting"
        is_secret = any(loc[: len(path)] == path for path in secrets)
        given = error.get("input")
        # An unknown key is often a misspelt secret ("pasword"): never echo its value.
        if is_secret or unknown or isinstance(given, dict | list):
            lines.append(f"{where}: {message}")
        else:
            shown = repr(mask_url_password(given) if isinstance(given, str) else given)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            lines.append(f"{where}: {message} (given {shown})")
    return lines
