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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
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


class RouteRule(_Section):
    """Send the links whose path matches to another backend (staged migration)."""

    match: str = Field(min_length=1, description="AMQP path pattern: {name} matches one level, "
                                                 "* matches the rest, e.g. /devices/{id}/*")
    backend: str = Field(min_length=1, description="Backend for matching links.")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="Overrides of that backend's section, e.g. "
                                                "{url = \"mqtt://broker:1883\"}.")
    shadow: str | None = Field(None, description="Also send every transfer (and receive) on "
                                                 "this backend, compare, never affect the "
                                                 "primary path.")
    shadow_options: dict[str, Any] = Field(default_factory=dict,
                                           description="Overrides of the shadow backend's "
                                                       "section.")


class ShadowSettings(_Section):
    report_file: Path | None = Field(None, description="Where the divergence report is written "
                                                       "(JSON) for `bridge shadow-report`.")
    report_interval: float = Field(5.0, gt=0, description="Seconds between report writes.")


class RelayRule(_Section):
    """Forward everything arriving on *source* to *target* (each ``BACKEND:PATH``)."""

    source: str = Field(pattern=r"^[A-Za-z0-9_-]+:.+", description="Where messages come from, "
                        "e.g. amqp:/queue/telemetry.")
    target: str = Field(pattern=r"^[A-Za-z0-9_-]+:.+", description="Where they go, e.g. "
                        "mqtt:/devices/d1/messages/events.")
    window: int = Field(0, ge=0, description="In-flight window of this rule (0: relay.window).")
    source_options: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the source backend's section for this "
                                          "rule's source connection, e.g. {clean_start = false}.")
    target_options: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the target backend's section for this "
                                          "rule's target connection, e.g. {durable = true} for "
                                          "an AMQP target that must survive a broker restart.")


class RelaySettings(_Section):
    """`bridge relay`: forwarding between brokers, at least once."""

    rules: list[RelayRule] = Field(default_factory=list, description="What to forward.")
    url: str = Field("amqp://relay.local", description="Logical URL the relay's connections "
                     "open (the backends' own url settings decide the broker reached).")
    window: int = Field(100, ge=1, description="Messages in flight per rule, unconfirmed.")
    drain_timeout: float = Field(30.0, ge=0, description="On SIGTERM, seconds to wait for "
                                 "in-flight messages to be confirmed.")
    metrics_port: int | None = Field(None, ge=0, le=65535, description="Serve Prometheus "
                                     "metrics on this port (0: any free port).")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics server binds.")
    status_interval: float = Field(10.0, ge=0, description="Seconds between status lines "
                                   "(0: none).")
    reconnect_min_delay: float = Field(0.5, gt=0, description="First delay (s) before "
                                       "reopening a lost connection; doubles per failure.")
    reconnect_max_delay: float = Field(10.0, gt=0, description="Longest delay (s) between "
                                       "reconnection attempts.")


class OutboxSettings(_Section):
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


class _ReconnectDelays(_Section):
    """Sections with ``reconnect_min_delay`` / ``reconnect_max_delay`` (checked in order)."""

    @field_validator("reconnect_max_delay", check_fields=False)
    @classmethod
    def _delays_ordered(cls, value: float, info: Any) -> float:
        if value < info.data.get("reconnect_min_delay", 0):
            raise ValueError("must not be smaller than reconnect_min_delay")
        return value


class MQTTSettings(_ReconnectDelays):
    """The MQTT backend (paho-mqtt 2.x). See docs/semantics.md for how AMQP maps onto MQTT."""

    url: str = Field("mqtt://127.0.0.1:1883",
                     description="Broker actually reached: mqtt://, mqtts://, ws:// or wss:// "
                                 "(host, port; a ws path such as ws://host:8080/mqtt). The URL "
                                 "given to amqp.openconnection is only the logical endpoint.")
    client_id: str | None = Field(None, description="MQTT client id; may use {agent_id} and "
                                                    "{connection}. Default: <agent_id>-<connection "
                                                    "number>, stable per agent.")
    username: str | None = Field(None, description="MQTT user name; default: the userinfo of "
                                                   "mqtt.url, else of the openconnection URL.")
    password: SecretStr | None = Field(None, description="MQTT password (never logged).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    keepalive: int = Field(60, ge=1, le=65535, description="Keep-alive interval in seconds.")
    qos: Literal[0, 1] = Field(1, description="QoS for publishes and subscriptions: 1 = "
                                              "sendasync confirms on PUBACK, 0 = on write.")
    ca_file: Path | None = Field(None, description="CA bundle that signs the broker's "
                                                   "certificate (default: the system's).")
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for TLS client "
                                                     "authentication.")
    key_file: Path | None = Field(None, description="Private key of cert_file (PEM).")
    verify: bool = Field(True, description="Verify the broker's TLS certificate chain; false "
                                           "also needs insecure = true.")
    insecure: bool = Field(False, validate_default=True,
                           description="Explicit opt-in to weaker TLS: skip the host-name check "
                                       "(and allows verify = false).")
    allow_plaintext_credentials: bool = Field(
        False, description="Allow a password over unencrypted mqtt:// or ws:// to a host that is "
                           "not loopback (127.0.0.0/8, ::1, localhost). Off: such a connection is "
                           "refused with CONNECTION_ERROR before anything is sent.")
    clean_start: bool = Field(True, description="Start a clean MQTT session (3.1.1: clean "
                                                "session). false + session_expiry keeps "
                                                "subscriptions and queued messages across "
                                                "reconnects.")
    session_expiry: int = Field(0, ge=0, le=4294967295,
                                description="MQTT 5 session expiry interval (s) after a "
                                            "disconnect.")
    reconnect: Literal["off", "auto"] = Field(
        "off", description="off: connection loss ends the connection (CONNECTION_ERROR, children "
                           "closed) as AMQP did; auto: reconnect with backoff, resubscribe, "
                           "resend unacknowledged publishes, keep objects open.")
    reconnect_min_delay: float = Field(0.5, gt=0, description="First reconnect delay ceiling (s).")
    reconnect_max_delay: float = Field(30.0, gt=0, validate_default=True,
                                       description="Largest reconnect delay (s).")
    reconnect_max_attempts: int = Field(0, ge=0, description="Failed reconnect attempts in a row "
                                                             "before giving up with "
                                                             "CONNECTION_ERROR; 0 = forever.")
    buffer_limit: int = Field(10_000, ge=0,
                              description="Sends held while reconnecting; beyond it the send "
                                          "fails with SENDER_ERROR naming the cause.")
    max_inflight: int = Field(20, ge=1, le=65535,
                              description="Unacknowledged QoS 1 publishes in flight (the "
                                          "sender's link credit); capped by the broker's "
                                          "Receive Maximum.")
    receive_maximum: int = Field(100, ge=1, le=65535,
                                 description="MQTT 5 Receive Maximum: unsettled deliveries the "
                                             "broker may push (the receivers' link credit).")
    topic_rules: list[TopicRule] = Field(default_factory=list,
                                         description="Ordered path -> topic rules ({name} "
                                                     "captures a level, * the rest); default: "
                                                     "strip the leading '/'.")
    reserved_prefix: str = Field("bridge", min_length=1,
                                 description="Topic level put in front of a path starting with "
                                             "'$' ($cbs -> bridge/$cbs): '$' topics belong to "
                                             "the broker.")
    properties_v311: Literal["envelope", "drop"] = Field(
        "envelope", description="MQTT 3.1.1 has no user properties: wrap body and properties in "
                                "a JSON envelope, or send the bare body and drop properties "
                                "(logged).")
    release_delay: float = Field(1.0, ge=0, description="Delay (s) before a released delivery is "
                                                        "redelivered to its receiver.")
    max_delivery_count: int = Field(10, ge=1, description="Deliveries of one message (releases "
                                                          "count) before it is treated as "
                                                          "rejected.")
    dead_letter_topic: str | None = Field(None, description="Where rejected deliveries are "
                                                            "republished (none: dropped, "
                                                            "counted).")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds for TCP/TLS connect and for "
                                                           "the CONNACK.")
    shared_group: str | None = Field(None, description="Subscribe receivers as the shared "
                                                       "subscription $share/<group>/<filter>: "
                                                       "the broker gives each message to one "
                                                       "client of the group (scaling out "
                                                       "`bridge relay`). Senders are unaffected.")

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        from bridge.backends.mqtt.endpoint import parse_broker_url

        parse_broker_url(value)
        return value

    @field_validator("client_id")
    @classmethod
    def _valid_client_id(cls, value: str | None) -> str | None:
        from bridge.backends.mqtt.endpoint import check_client_id_template

        if value is not None:
            check_client_id_template(value)
        return value

    @field_validator("topic_rules")
    @classmethod
    def _valid_rules(cls, value: list[TopicRule]) -> list[TopicRule]:
        from bridge.backends.mqtt.mapping import compile_rules

        compile_rules(value)
        return value

    @field_validator("dead_letter_topic")
    @classmethod
    def _valid_dead_letter_topic(cls, value: str | None) -> str | None:
        from bridge.backends.mqtt.mapping import topic_problem

        if value is not None:
            problem = topic_problem(value, allow_wildcards=False)
            if problem is not None:
                raise ValueError(problem)
        return value

    @field_validator("shared_group")
    @classmethod
    def _valid_shared_group(cls, value: str | None) -> str | None:
        # MQTT 5, 4.8.2: a ShareName is at least one character and contains no /, + or #.
        if value is not None and (not value or any(c in value for c in "/+#\x00")):
            raise ValueError("must be a non-empty name without '/', '+', '#' or NUL")
        return value

    @field_validator("insecure")
    @classmethod
    def _insecure_is_explicit(cls, value: bool, info: Any) -> bool:
        if not info.data.get("verify", True) and not value:
            raise ValueError("verify = false turns TLS certificate checks off; set insecure = "
                             "true as well to opt in explicitly")
        return value



class AMQPSettings(_Section):
    """The AMQP 1.0 backend (python-qpid-proton). See docs/backends/amqp.md."""

    url: str | None = Field(None, description="Broker actually reached: amqp://[user:pass@]host"
                                              "[:port] or amqps://...; default: the URL given "
                                              "to amqp.openconnection. Its userinfo (percent-"
                                              "encoded) gives the SASL PLAIN credentials.")
    username: str | None = Field(None, description="SASL user; overrides the URL's userinfo.")
    password: SecretStr | None = Field(None, description="SASL password; overrides the URL's.")
    sasl_mechanisms: str = Field(
        "ANONYMOUS PLAIN",
        description="Space-separated SASL mechanisms the client may use. With credentials "
                    "ANONYMOUS is left out (PLAIN is used; never a silent anonymous login), "
                    "without them PLAIN is left out (ANONYMOUS: what IoT Hub's CBS flow "
                    "needs).")
    allow_insecure_plain: bool = Field(True, description="Let proton offer SASL PLAIN on an "
                                                         "amqp:// (unencrypted) connection at "
                                                         "all (to a non-loopback host it also "
                                                         "needs allow_plaintext_credentials).")
    allow_plaintext_credentials: bool = Field(
        False, description="Allow a password over unencrypted amqp:// to a host that is not "
                           "loopback (127.0.0.0/8, ::1, localhost). Off: such a connection is "
                           "refused with CONNECTION_ERROR before anything is sent.")
    virtual_host: str | None = Field(None, description="Hostname sent in the AMQP open frame "
                                                       "(RabbitMQ: vhost:NAME); default: the "
                                                       "URL's host.")
    ca_file: Path | None = Field(None, description="PEM file of CAs trusted for amqps://; "
                                                   "default: the system store.")
    cert_file: Path | None = Field(None, description="PEM client certificate (X.509 auth).")
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")
    key_password: SecretStr | None = Field(None, description="Password of key_file.")
    verify: bool = Field(True, description="Verify the broker's TLS certificate and host name.")
    idle_timeout: float = Field(60.0, ge=0, description="No frame from the broker for this "
                                                        "long (s) ends the connection "
                                                        "(CONNECTION_ERROR); half of it is "
                                                        "announced so the broker's heartbeats "
                                                        "come in time; 0 disables.")
    container_id: str | None = Field(None, description="AMQP container id; default "
                                                       "<agent_id>-<connection>-<random>.")
    prefetch: int = Field(100, ge=1, description="Link credit of each receiver: unsettled "
                                                 "deliveries it may hold (re-granted one per "
                                                 "settlement).")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds from openconnection to "
                                                           "the broker's open frame before "
                                                           "CONNECTION_ERROR.")
    durable: bool = Field(False, description="Send messages durable and attach links with "
                                             "durable termini (RabbitMQ: durable queues, "
                                             "persistent messages), so both survive a broker "
                                             "restart. RabbitMQ refuses a link whose durability "
                                             "differs from the existing queue's: every client "
                                             "of a queue must agree.")

    @field_validator("url")
    @classmethod
    def _amqp_url(cls, value: str | None) -> str | None:
        if value is not None:
            from bridge.backends.amqp.endpoint import parse_url

            parse_url(value)  # ValueError text never contains the password
        return value

    @field_validator("sasl_mechanisms")
    @classmethod
    def _mechanisms(cls, value: str) -> str:
        names = value.split()
        if not names or not all(re.fullmatch(r"[A-Z0-9_-]{1,20}", n) for n in names):
            raise ValueError("must be space-separated upper-case SASL mechanism names, "
                             "e.g. 'ANONYMOUS PLAIN'")
        return " ".join(names)


class IoTHubSettings(_ReconnectDelays):
    """The Azure IoT Hub backend: AMQP agent code (CBS put-token included) over IoT Hub's MQTT
    device surface (paho-mqtt 2.x). See docs/backends/iothub.md."""

    connection_string: SecretStr | None = Field(
        None, description="Device or module connection string (HostName;DeviceId[;ModuleId];"
                          "SharedAccessKey[Name] or SharedAccessSignature[;GatewayHostName]). "
                          "With a key the bridge signs its own tokens; without any credential "
                          "the agent code's CBS put-token authenticates.")
    hostname: str | None = Field(None, description="IoT Hub host name (SAS audience, MQTT user "
                                                   "name); default: the host of the URL given "
                                                   "to amqp.openconnection.")
    device_id: str | None = Field(None, description="Device id; default: from the connection "
                                                    "string, else from the first put-token's "
                                                    "name.")
    module_id: str | None = Field(None, description="Module id (IoT Edge module identity).")
    shared_access_key: SecretStr | None = Field(
        None, description="Device (or policy) key: the bridge connects at once and renews its "
                          "own tokens; put-tokens are then verified against it.")
    shared_access_key_name: str | None = Field(None, description="Shared access policy name "
                                                                 "when shared_access_key is a "
                                                                 "policy key (tokens get skn).")
    gateway_host: str | None = Field(None, description="Host the TCP/TLS connection goes to "
                                                       "(IoT Edge, a local stand-in); default: "
                                                       "GatewayHostName, else the hub.")
    port: int | None = Field(None, ge=1, le=65535, description="TCP port; default 8883 (443 "
                                                              "with websockets).")
    websockets: bool = Field(False, description="MQTT over WebSockets (wss, path "
                                                "/$iothub/websocket).")
    ca_file: Path | None = Field(None, description="CA bundle that signs the hub's (gateway's) "
                                                   "certificate; default: the system's.")
    token_ttl: int = Field(3600, ge=2, le=365 * 86400,
                           description="Lifetime (s) of the tokens the bridge signs itself; it "
                                       "reconnects with a fresh one before expiry.")
    api_version: str = Field("2021-04-12", min_length=1, pattern=r"^[0-9A-Za-z._-]+$",
                             description="api-version in the MQTT user name.")
    device_client_type: str | None = Field(
        None, description="DeviceClientType (user agent) in the MQTT user name; default "
                          "amqp-mqtt-bridge/<version>; an empty string leaves it out.")
    keepalive: int = Field(60, ge=1, le=1177, description="MQTT keep-alive (s); IoT Hub allows "
                                                           "at most 1177.")
    clean_session: bool = Field(False, description="MQTT clean session; false (the SDKs' "
                                                   "choice) keeps subscriptions and queued "
                                                   "cloud-to-device messages across reconnects.")
    reconnect: Literal["off", "auto"] = Field(
        "off", description="Connection loss (not token expiry): off ends the connection with "
                           "CONNECTION_ERROR as AMQP did; auto reconnects with backoff and keeps "
                           "objects open.")
    reconnect_min_delay: float = Field(0.5, gt=0, description="First reconnect delay ceiling (s).")
    reconnect_max_delay: float = Field(30.0, gt=0, description="Largest reconnect delay (s).")
    reconnect_max_attempts: int = Field(0, ge=0, description="Failed reconnect attempts in a row "
                                                             "before CONNECTION_ERROR; 0 = "
                                                             "forever.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds for TCP/TLS connect and for "
                                                           "the CONNACK.")
    max_inflight: int = Field(20, ge=1, le=65535, description="Unacknowledged D2C publishes in "
                                                              "flight (the sender's credit).")
    buffer_limit: int = Field(10_000, ge=0, description="Sends held while the connection is down "
                                                        "(renewal, reconnect); beyond it a send "
                                                        "fails with SENDER_ERROR.")
    release: Literal["redeliver", "complete"] = Field(
        "redeliver", description="release() of a C2D message: redeliver (PUBACK withheld, the "
                                 "bridge redelivers after release_delay, up to "
                                 "max_delivery_count) or complete (PUBACK and a warning). "
                                 "reject() always completes with a warning.")
    release_delay: float = Field(1.0, ge=0, description="Delay (s) before a released C2D "
                                                        "message is redelivered.")
    max_delivery_count: int = Field(10, ge=1, le=100, description="Deliveries of one C2D "
                                                                  "message before a release "
                                                                  "completes it (IoT Hub's "
                                                                  "default is 10).")
    type_hints: bool = Field(False, description="Between two bridges: add x-amqp-types / "
                                                "x-amqp-body application properties so property "
                                                "types and the body kind survive the string-only "
                                                "property bag.")

    @model_validator(mode="after")
    def _consistent(self) -> IoTHubSettings:
        from bridge.backends.iothub.identity import check_settings

        check_settings(self)  # ValueError naming every problem, never a secret
        return self



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
    memory: MemorySettings = Field(default_factory=MemorySettings)
    mqtt: MQTTSettings = Field(default_factory=MQTTSettings)
    amqp: AMQPSettings = Field(default_factory=AMQPSettings)
    iothub: IoTHubSettings = Field(default_factory=IoTHubSettings)

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
            from bridge.routing import validate_routes

            validate_routes(self)

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

    @property
    def path(self) -> Path | None:
        """The profile read (None: no profile named)."""
        return self._path

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
        elif error["type"] == "value_error":
            message = message.removeprefix("Value error, ")  # our validators' text says it all
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


# --------------------------------------------------------------------------------------------
# Masking and model walking (also used by bridge.settings_sources and bridge.docs_gen)
# --------------------------------------------------------------------------------------------

MASK = "**********"

# scheme://user:password@host -> the password part; a URL setting may carry credentials.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^/@\s]+)@")


def mask_url_password(text: str) -> str:
    """``mqtt://user:secret@host`` -> ``mqtt://user:**********@host``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)


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
    config = Settings.model_config
    delimiter = config.get("env_nested_delimiter") or "__"
    return f"{config.get('env_prefix') or ''}{delimiter.join(path)}".upper()


def leaf_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()
                ) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """Every leaf setting of *model* (sections are walked, lists and tables are leaves)."""
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from leaf_fields(sub, (*prefix, name))
        else:
            yield (*prefix, name), field


def is_secret_field(field: FieldInfo) -> bool:
    return "SecretStr" in str(field.annotation) or "SecretBytes" in str(field.annotation)
