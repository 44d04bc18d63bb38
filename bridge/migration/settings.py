"""Settings of the staged-migration tools: per-address routes, shadows and the relay."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bridge.settings_base import Section


class RouteRule(Section):
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


class ShadowSettings(Section):
    report_file: Path | None = Field(None, description="Where the divergence report is written "
                                                       "(JSON) for `bridge shadow-report`.")
    report_interval: float = Field(5.0, gt=0, description="Seconds between report writes.")


class RelayRule(Section):
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
    qos: Literal[0, 1, 2] | None = Field(None, description="MQTT QoS of the forwarded "
                                         "publishes (MQTT targets only; unset: mqtt.qos). 2 = "
                                         "exactly once into the broker: the target connection "
                                         "then keeps a persistent session (clean_start = false,"
                                         " session_expiry at least 600 s).")
    retries: int = Field(2, ge=0, description="Times a message the target refused is sent "
                         "again before it is dead-lettered.")
    dead_letter: str | None = Field(None, pattern=r"^([A-Za-z0-9_-]+:.+|drop)$", description=(
        "Where a message the target keeps refusing goes, with its reason in the property "
        "bridge-relay-dead-reason: BACKEND:PATH, or \"drop\" (logged and counted). Unset: "
        "it is released back to the source, which may deliver it again."))
    dead_letter_options: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the dead-letter backend's section.")


class RelaySettings(Section):
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
    ledger: Path | None = Field(None, description="File of the targets' confirmations: a "
                                "relay killed and restarted does not forward again what a "
                                "target had confirmed (unset: no ledger).")
    ledger_capacity: int = Field(100_000, ge=1, description="Confirmations the ledger keeps "
                                 "(the newest); it must exceed what a source can redeliver.")
    ledger_fsync: bool = Field(False, description="fsync the ledger before settling at the "
                               "source (survives a power loss, not just a process kill).")
