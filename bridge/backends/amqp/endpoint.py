"""Where and how to connect: the broker URL and the settings turned into connection options.

Pure (no proton, no sockets) so every rule here is unit-tested on its own. The password travels
only in `ConnectOptions.password`; `ConnectOptions.address` and everything logged carry none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from bridge.backends.netpolicy import is_loopback_host

if TYPE_CHECKING:
    from bridge.settings import AMQPSettings

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


@dataclass(frozen=True, slots=True)
class Endpoint:
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


def parse_url(url: str) -> Endpoint:
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
    return Endpoint(
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


@dataclass(frozen=True, slots=True)
class TLSOptions:
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    key_password: str | None
    verify: bool


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Everything the reactor needs to open one connection."""

    endpoint: Endpoint
    user: str | None
    password: str | None
    mechanisms: str
    allow_insecure_plain: bool
    virtual_host: str | None
    tls: TLSOptions | None
    idle_timeout: float
    container_id: str
    connect_timeout: float
    prefetch: int
    durable: bool = False  # durable termini (queues) and durable messages: survive a restart
    allow_plaintext_credentials: bool = False  # a password over amqp:// to a non-loopback host

    @property
    def address(self) -> str:
        return self.endpoint.address

    def describe(self) -> str:
        """One log-safe line: where, as whom, how (never the password)."""
        who = f"user {self.user!r}" if self.user else "anonymous"
        return f"{self.address} as {who} (SASL {self.mechanisms}, container {self.container_id})"

    def __repr__(self) -> str:  # the dataclass repr would print the password
        return f"<ConnectOptions {self.describe()}>"


def sasl_mechanisms(configured: str, *, has_credentials: bool) -> str:
    """The mechanisms offered to proton for one connection.

    With credentials ANONYMOUS is dropped: a broker that does not offer PLAIN must fail the
    connection rather than let it in silently as nobody. Without credentials PLAIN is dropped
    (there is nothing to send). If that would leave nothing, the configured list is kept and the
    broker decides.
    """
    names = configured.split()
    unwanted = "ANONYMOUS" if has_credentials else "PLAIN"
    kept = [name for name in names if name != unwanted]
    return " ".join(kept or names)


def connect_options(settings: AMQPSettings, given_url: str, agent_id: str,
                    connection_index: int) -> ConnectOptions:
    """Combine ``amqp.*`` settings with the URL the agent code gave to ``amqp.openconnection``.

    ``amqp.url`` replaces the agent's URL as a whole (credentials included), so a URL written for
    one broker never leaks its userinfo to another. ``amqp.username`` / ``amqp.password`` win
    over the URL's userinfo. Without any credentials SASL ANONYMOUS is used (IoT Hub's CBS flow
    authenticates later, on ``$cbs``).
    """
    endpoint = parse_url(settings.url or given_url)
    user = settings.username if settings.username is not None else endpoint.username
    password = (settings.password.get_secret_value() if settings.password is not None
                else endpoint.password)
    tls = None
    if endpoint.tls:
        tls = TLSOptions(
            ca_file=settings.ca_file, cert_file=settings.cert_file, key_file=settings.key_file,
            key_password=(settings.key_password.get_secret_value()
                          if settings.key_password is not None else None),
            verify=settings.verify)
    container_id = settings.container_id or \
        f"{agent_id}-{connection_index}-{uuid.uuid4().hex[:8]}"
    return ConnectOptions(
        endpoint=endpoint, user=user or None, password=password if user else None,
        mechanisms=sasl_mechanisms(settings.sasl_mechanisms, has_credentials=bool(user)),
        allow_insecure_plain=settings.allow_insecure_plain,
        virtual_host=settings.virtual_host, tls=tls, idle_timeout=settings.idle_timeout,
        container_id=container_id, connect_timeout=settings.connect_timeout,
        prefetch=settings.prefetch, durable=settings.durable,
        allow_plaintext_credentials=settings.allow_plaintext_credentials)


PLAINTEXT_OPT_IN = "amqp.allow_plaintext_credentials"


def plaintext_credentials_problem(options: ConnectOptions) -> str | None:
    """Why the connection must not be attempted, or None.

    SASL PLAIN over ``amqp://`` (no TLS) sends the password readable by anyone on the path, so a
    password is refused for any host but loopback unless ``amqp.allow_plaintext_credentials``
    opts in. A user name without a password is let through.
    """
    endpoint = options.endpoint
    if endpoint.tls or not options.password or options.allow_plaintext_credentials \
            or is_loopback_host(endpoint.host):
        return None
    return (f"amqp:not-allowed: refusing to send a password unencrypted to {endpoint.address} "
            f"(not a loopback address); use amqps://, or set {PLAINTEXT_OPT_IN} = true to "
            f"allow it")
