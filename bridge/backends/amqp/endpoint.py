"""Where and how to connect: the broker URL and the settings turned into connection options.

Pure (no proton, no sockets) so every rule here is unit-tested on its own. The password travels
only in `AMQPConnectOptions.password`; `AMQPConnectOptions.address` and everything logged carry
none.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.backends.amqp.urls import DEFAULT_PORTS, AMQPEndpoint, parse_url
from bridge.engines.netpolicy import is_loopback_host

if TYPE_CHECKING:
    from bridge.backends.amqp.settings import AMQPSettings

__all__ = ["DEFAULT_PORTS", "AMQPConnectOptions", "AMQPEndpoint", "TLSOptions", "connect_options",
           "parse_url", "plaintext_credentials_problem", "sasl_mechanisms"]

@dataclass(frozen=True, slots=True)
class TLSOptions:
    ca_file: Path | None
    cert_file: Path | None
    key_file: Path | None
    key_password: str | None
    verify: bool


@dataclass(frozen=True, slots=True)
class AMQPConnectOptions:
    """Everything the reactor needs to open one connection."""

    endpoint: AMQPEndpoint
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
    # application properties that receive a delivery's AMQP subject / to (None: not added)
    subject_property: str | None = None
    to_property: str | None = None
    allow_plaintext_credentials: bool = False  # a password over amqp:// to a non-loopback host

    @property
    def address(self) -> str:
        return self.endpoint.address

    def describe(self) -> str:
        """One log-safe line: where, as whom, how (never the password)."""
        who = f"user {self.user!r}" if self.user else "anonymous"
        return f"{self.address} as {who} (SASL {self.mechanisms}, container {self.container_id})"

    def __repr__(self) -> str:  # the dataclass repr would print the password
        return f"<AMQPConnectOptions {self.describe()}>"


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
                    connection_index: int) -> AMQPConnectOptions:
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
    return AMQPConnectOptions(
        endpoint=endpoint, user=user or None, password=password if user else None,
        mechanisms=sasl_mechanisms(settings.sasl_mechanisms, has_credentials=bool(user)),
        allow_insecure_plain=settings.allow_insecure_plain,
        virtual_host=settings.virtual_host, tls=tls, idle_timeout=settings.idle_timeout,
        container_id=container_id, connect_timeout=settings.connect_timeout,
        prefetch=settings.prefetch, durable=settings.durable,
        subject_property=settings.subject_property, to_property=settings.to_property,
        allow_plaintext_credentials=settings.allow_plaintext_credentials)


PLAINTEXT_OPT_IN = "amqp.allow_plaintext_credentials"


def plaintext_credentials_problem(options: AMQPConnectOptions) -> str | None:
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
