"""Settings of the ``iothub`` backend (``[iothub]``, ``BRIDGE_IOTHUB__*``) and their checks."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from bridge.backends.iothub.connection_string import (
    AuthKind,
    ConnectionStringError,
    parse_connection_string,
    validate_topic_id,
)
from bridge.settings_base import ReconnectDelays

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}))$")


class IoTHubSettings(ReconnectDelays):
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
        check_settings(self)  # ValueError naming every problem, never a secret
        return self


def check_settings(settings: IoTHubSettings) -> None:
    """`ValueError` listing every inconsistency of an ``iothub`` section."""
    problems: list[str] = []
    separate = [name for name in ("hostname", "device_id", "module_id", "shared_access_key",
                                  "shared_access_key_name")
                if getattr(settings, name) is not None]
    if settings.connection_string is not None:
        try:
            cs = parse_connection_string(settings.connection_string.get_secret_value())
        except ConnectionStringError as exc:
            problems += [p.removeprefix("IoT Hub connection string: ")
                         for p in exc.problems]
        else:
            if cs.auth is AuthKind.X509:
                problems.append("X.509 connection strings are not supported by the iothub "
                                "backend (use a key or a SAS token)")
            problems += _id_problems(cs.device_id, cs.module_id)
        if separate:
            problems.append(f"give either connection_string or {', '.join(separate)}, not both")
    else:
        problems += _id_problems(settings.device_id, settings.module_id)
        if settings.module_id is not None and settings.device_id is None:
            problems.append("module_id needs device_id")
        if settings.shared_access_key is not None:
            if settings.device_id is None:
                problems.append("shared_access_key needs device_id (the identity it signs for)")
            if not _is_base64(settings.shared_access_key.get_secret_value()):
                problems.append("shared_access_key is not valid base64")
        if settings.shared_access_key_name is not None and settings.shared_access_key is None:
            problems.append("shared_access_key_name needs shared_access_key")
        if settings.hostname is not None and not _HOST.match(settings.hostname):
            problems.append("hostname must be a plain host name (no scheme, port or path)")
    if settings.gateway_host is not None and not _HOST.match(settings.gateway_host):
        problems.append("gateway_host must be a plain host name (no scheme, port or path)")
    if problems:
        raise ValueError("; ".join(problems))


def _id_problems(device_id: str | None, module_id: str | None) -> list[str]:
    problems = []
    for kind, value in (("device_id", device_id), ("module_id", module_id)):
        if value is None:
            continue
        why = validate_topic_id(kind, value)
        if why is not None:
            problems.append(why)
    return problems


def _is_base64(text: str) -> bool:
    try:
        return bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False
