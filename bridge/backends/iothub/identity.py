"""Who the ``iothub`` backend connects as, where to, and how it authenticates (pure).

Settings (`bridge.backends.iothub.settings.IoTHubSettings`) give either a connection string or
the separate fields; the URL given to ``amqp.openconnection`` supplies the hub's host name when
neither does (legacy code opens ``amqps://<hub>``). Two ways to authenticate follow from what is
given:

- **self-auth**: a key (``SharedAccessKey``) or a pre-made ``SharedAccessSignature``: the
  backend connects at once; with a key it signs (and renews) its own tokens;
- **CBS**: no credential: the connection reports open without an MQTT connection and the agent
  code's ``$cbs`` put-token supplies the token (and, if not configured, the device id).

Nothing here does I/O; every error text names fields, never a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

from bridge.backends.iothub import sas, topics
from bridge.backends.iothub.connection_string import parse_connection_string
from bridge.engines.mqtt.endpoint import MQTTEndpoint
from bridge.version import __version__

if TYPE_CHECKING:
    from bridge.backends.iothub.settings import IoTHubSettings

MQTT_PORT = 8883
WEBSOCKET_PORT = 443
WEBSOCKET_PATH = "/$iothub/websocket"
DEFAULT_CLIENT_TYPE = f"amqp-mqtt-bridge/{__version__}"


@dataclass(frozen=True, slots=True)
class Identity:
    """One device (or module) identity on one hub: what an MQTT connection authenticates as."""

    host: str
    device_id: str
    module_id: str | None = None

    @property
    def audience(self) -> str:
        """The SAS resource URI (unencoded): ``{host}/devices/{d}[/modules/{m}]``."""
        return sas.resource_uri(self.host, self.device_id, self.module_id)

    @property
    def client_id(self) -> str:
        return topics.client_id(self.device_id, self.module_id)

    def describe(self) -> str:
        who = f"module {self.device_id}/{self.module_id}" if self.module_id else \
            f"device {self.device_id}"
        return f"{who} on {self.host}"


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the backend needs to know before its first connect."""

    host: str  # the hub's host name (SAS audience, MQTT user name)
    device_id: str | None
    module_id: str | None
    endpoint: MQTTEndpoint  # where the TCP/TLS connection goes
    key: SecretStr | None = field(default=None, repr=False)
    key_name: str | None = None
    token: SecretStr | None = field(default=None, repr=False)  # pre-made, cannot be renewed

    @property
    def identity(self) -> Identity | None:
        if self.device_id is None:
            return None
        return Identity(self.host, self.device_id, self.module_id)

    @property
    def self_auth(self) -> bool:
        """Connect at open (a key or a pre-made token is configured)."""
        return self.key is not None or self.token is not None

    @property
    def can_sign(self) -> bool:
        return self.key is not None


def plan_for(settings: IoTHubSettings, url: str) -> Plan:
    """Resolve the settings (already validated) and the ``openconnection`` URL into a `Plan`.

    Raises `ValueError` when no hub host name can be found.
    """
    key = settings.shared_access_key
    key_name = settings.shared_access_key_name
    token: SecretStr | None = None
    host = settings.hostname
    device_id, module_id = settings.device_id, settings.module_id
    gateway = None
    if settings.connection_string is not None:
        cs = parse_connection_string(settings.connection_string.get_secret_value())
        host, device_id, module_id = cs.host_name, cs.device_id, cs.module_id
        key, key_name, token = cs.shared_access_key, cs.shared_access_key_name, \
            cs.shared_access_signature
        gateway = cs.gateway_host_name
    if host is None:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
    if not host:
        raise ValueError(f"no IoT Hub host name: set iothub.hostname (or a connection string), "
                         f"or open a URL such as amqps://<hub>.azure-devices.net (got "
                         f"{_url_shown(url)!r})")
    connect_host = settings.gateway_host or gateway or host
    port = settings.port or (WEBSOCKET_PORT if settings.websockets else MQTT_PORT)
    endpoint = MQTTEndpoint(scheme="wss" if settings.websockets else "mqtts", host=connect_host,
                        port=port, tls=True, websockets=settings.websockets,
                        ws_path=WEBSOCKET_PATH)
    return Plan(host=host, device_id=device_id, module_id=module_id, endpoint=endpoint,
                key=key, key_name=key_name, token=token)


def mqtt_username(identity: Identity, settings: IoTHubSettings) -> str:
    client_type = settings.device_client_type
    if client_type is None:
        client_type = DEFAULT_CLIENT_TYPE
    return topics.username(identity.host, identity.device_id, identity.module_id,
                           api_version=settings.api_version,
                           device_client_type=client_type or None)


def _url_shown(url: str) -> str:
    """The URL without userinfo (which may hold a password)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<not a URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()
