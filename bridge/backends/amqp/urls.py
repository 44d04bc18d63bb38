"""AMQP broker URLs (pure): what the settings validate and the endpoint builds on."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


@dataclass(frozen=True, slots=True)
class AMQPEndpoint:
    """A parsed ``amqp[s]://[user[:password]@]host[:port][/path]`` URL (userinfo decoded)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "amqps"

    @property
    def address(self) -> str:
        """``scheme://host:port`` with no credentials: what proton dials and what is logged."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_url(url: str) -> AMQPEndpoint:
    """Parse a broker URL; ``ValueError`` (never echoing the password) when it is unusable.

    A path (``amqps://hub/devices/x``) is allowed and ignored: legacy code sometimes passes the
    full resource URL, and addresses are given per link anyway.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # e.g. a non-numeric port
        raise ValueError(f"invalid broker URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}; use amqp:// or amqps://")
    if not parts.hostname:
        raise ValueError("the broker URL has no host")
    return AMQPEndpoint(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
