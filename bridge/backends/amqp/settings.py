"""Settings of the ``amqp`` backend (``[amqp]``, ``BRIDGE_AMQP__*``) and their checks."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from bridge.settings_base import Section


class AMQPSettings(Section):
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
    subject_property: str | None = Field(None, min_length=1, description="Put the AMQP "
                                         "subject of each received message into this "
                                         "application property (none: not added); the relay "
                                         "uses it for target templates ({subject}).")
    to_property: str | None = Field(None, min_length=1, description="Put the AMQP to (address) "
                                    "of each received message into this application property "
                                    "(none: not added); the relay's {to} templates use it.")
    multiplex: int = Field(0, ge=0, description="Connections of any agents to the same host "
                           "with the same TLS and SASL settings share one physical AMQP "
                           "connection, at most this many on each (each keeps its own sessions, "
                           "links, $cbs token and CONNECTION_* events: IoT Hub's gateway "
                           "pattern, up to ~995 devices per connection); 0: one each.")
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
            from bridge.backends.amqp.urls import parse_url

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
