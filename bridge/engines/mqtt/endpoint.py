"""Where and as whom to connect: broker URL parsing, client ids, reconnect delays (pure)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from bridge.engines.mqtt.reasons import NOT_ALLOWED
from bridge.engines.netpolicy import is_loopback_host

SCHEMES: dict[str, tuple[int, bool, bool]] = {
    # scheme: (default port, TLS, WebSocket)
    "mqtt": (1883, False, False),
    "tcp": (1883, False, False),
    "mqtts": (8883, True, False),
    "ssl": (8883, True, False),
    "ws": (80, False, True),
    "wss": (443, True, True),
}


@dataclass(frozen=True, slots=True)
class MQTTEndpoint:
    """A broker address from ``mqtt.url``; ``password`` never shows in ``repr``."""

    scheme: str
    host: str
    port: int
    tls: bool
    websockets: bool
    ws_path: str = "/mqtt"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """For logs and errorDetail: scheme, host, port (and WebSocket path); no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.ws_path if self.websockets else ""
        return f"{self.scheme}://{host}:{self.port}{path}"


def parse_broker_url(url: str) -> MQTTEndpoint:
    """Parse ``mqtt://``, ``mqtts://``, ``ws://`` or ``wss://`` URLs; `ValueError` says why not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported scheme {parts.scheme!r}; use mqtt://, mqtts://, ws:// "
                         f"or wss://")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    default_port, tls, websockets = SCHEMES[scheme]
    ws_path = (parts.path or "/mqtt") if websockets else "/mqtt"
    if websockets and parts.query:
        ws_path += "?" + parts.query
    if not websockets and parts.path not in ("", "/"):
        raise ValueError("a path is only meaningful for ws:// and wss:// URLs")
    return MQTTEndpoint(
        scheme=scheme,
        host=parts.hostname,
        port=port or default_port,
        tls=tls,
        websockets=websockets,
        ws_path=ws_path,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


PLAINTEXT_OPT_IN = "mqtt.allow_plaintext_credentials"


def plaintext_credentials_problem(endpoint: MQTTEndpoint, password: str | None, *,
                                  allowed: bool) -> str | None:
    """Why a connection must not be attempted, or None.

    A password over ``mqtt://`` or ``ws://`` (no TLS) travels readable by anyone on the path, so
    it is refused for any host but loopback unless ``mqtt.allow_plaintext_credentials`` opts in.
    A user name alone is not a secret and is let through.
    """
    if endpoint.tls or not password or allowed or is_loopback_host(endpoint.host):
        return None
    return (f"{NOT_ALLOWED}: refusing to send a password unencrypted to "
            f"{endpoint.describe()} (not a loopback address); use mqtts:// or wss://, or set "
            f"{PLAINTEXT_OPT_IN} = true to allow it")


def logical_credentials(url: str) -> tuple[str | None, str | None]:
    """The userinfo of the URL given to ``amqp.openconnection`` (any scheme), if any."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None, None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return user, password


def client_id_for(template: str | None, agent_id: str, connection_index: int) -> str:
    """The MQTT client id: ``<agent_id>-<connection index>`` by default.

    A configured id may use ``{agent_id}`` and ``{connection}``; without them it is used as is
    (then one connection per agent: a broker disconnects a client whose id is reused).
    """
    if not template:
        return f"{agent_id}-{connection_index}"
    return template.replace("{agent_id}", agent_id).replace("{connection}",
                                                             str(connection_index))


def check_client_id_template(template: str) -> None:
    """`ValueError` if the template cannot give a usable client id."""
    if not template:
        raise ValueError("client_id must not be empty (leave it unset for the default)")
    probe = client_id_for(template, "agent", 1)
    if not probe or len(probe.encode("utf-8")) > 65535 or "\x00" in probe:
        raise ValueError("client_id must be 1 to 65535 bytes of UTF-8 without NUL")


def backoff_delay(attempt: int, min_delay: float, max_delay: float,
                  rng: random.Random | None = None) -> float:
    """Delay before reconnect attempt *attempt* (0-based): exponential, capped, with jitter.

    The ceiling doubles per attempt from *min_delay* up to *max_delay*; the delay is drawn
    uniformly from [ceiling/2, ceiling] ("equal jitter"), so many clients dropped together do
    not reconnect in lockstep, yet each still waits at least half the ceiling.
    """
    ceiling = min(max_delay, min_delay * (2 ** min(attempt, 32)))
    draw = (rng or random).random()
    return ceiling / 2 + draw * ceiling / 2
