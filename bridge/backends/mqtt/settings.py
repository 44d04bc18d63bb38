"""Settings of the ``mqtt`` backend (``[mqtt]``, ``BRIDGE_MQTT__*``) and their checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from bridge.settings_base import ReconnectDelays, Section


class TopicRule(Section):
    """One address -> topic rule: ``{name}`` captures one level, ``*`` any rest."""

    path: str = Field(description="AMQP path pattern, e.g. /devices/{device}/messages/events")
    topic: str = Field(description="MQTT topic template, e.g. devices/{device}/messages/events")


class MQTTSettings(ReconnectDelays):
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
    qos: Literal[0, 1, 2] = Field(1, description="QoS for publishes and subscriptions: 1 = "
                                                 "sendasync confirms on PUBACK, 0 = on write; "
                                                 "2 = publishes exactly once (confirmed on "
                                                 "PUBCOMP; needs a persistent session), "
                                                 "subscriptions stay at 1.")
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
    topic_property: str | None = Field(None, min_length=1, description="Put the topic each "
                                       "message arrived on into this application property of "
                                       "the received message (none: not added); the relay "
                                       "uses it for topic templates.")
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
        from bridge.engines.mqtt.endpoint import parse_broker_url

        parse_broker_url(value)
        return value

    @field_validator("client_id")
    @classmethod
    def _valid_client_id(cls, value: str | None) -> str | None:
        from bridge.engines.mqtt.endpoint import check_client_id_template

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
