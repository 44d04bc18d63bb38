"""A private Mosquitto broker for tests: own port, own config, own temp dir; start/stop/restart.

Tests that restart a broker, need TLS, credentials or ACLs, or flood it use one of these instead
of the shared Mosquitto on 127.0.0.1:1883::

    with Mosquitto(tmp_path, tls=True, users={"dev": "secret"}) as broker:
        broker.url        # mqtt://127.0.0.1:<port>
        broker.tls_url    # mqtts://localhost:<tls port> (certificate from broker.ca_file)
        broker.restart()  # SIGTERM (persistence is written), then start on the same ports

Readiness is observed, not guessed: `start` waits until the broker logs that it is running.
The TLS material is a throw-away CA and a server certificate for ``localhost``/``127.0.0.1``,
made with the ``openssl`` command (no Python dependency).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bridge.testing.hub.broker import free_port
from bridge.testing.mosquitto import PrivateMosquitto

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"


def password_line(user: str, password: str) -> str:
    """A mosquitto password-file line (``$6$``: salted SHA-512, accepted by Mosquitto 2)."""
    salt = os.urandom(12)
    digest = hashlib.sha512(password.encode("utf-8") + salt).digest()
    return (f"{user}:$6${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def _openssl(*args: str) -> None:
    subprocess.run([OPENSSL, *args], check=True, capture_output=True)


def make_tls_material(directory: Path, hostname: str = "localhost") -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key): a self-signed CA and a server certificate it signs
    for *hostname* and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=bridge test CA", "-keyout", str(ca_key), "-out", str(ca_crt))
    crt, key = sign_certificate(directory, "server", hostname,
                                f"subjectAltName=DNS:{hostname},IP:127.0.0.1\n"
                                "extendedKeyUsage=serverAuth\n")
    return ca_crt, crt, key


def sign_certificate(directory: Path, name: str, common_name: str,
                     extensions: str = "extendedKeyUsage=clientAuth\n") -> tuple[Path, Path]:
    """(name.crt, name.key) signed by the CA in *directory* (made by `make_tls_material`)."""
    key, csr, crt = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   + extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}",
             "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(directory / "ca.crt"),
             "-CAkey", str(directory / "ca.key"), "-CAcreateserial", "-days", "2",
             "-extfile", str(ext), "-out", str(crt))
    return crt, key


class Mosquitto(PrivateMosquitto):
    """One private ``mosquitto`` process and its files under *directory*: the product's
    `PrivateMosquitto` plus TLS, users, ACLs and refusals."""

    def __init__(self, directory: Path, *, tls: bool = False, require_certificate: bool = False,
                 users: dict[str, str] | None = None, allow_anonymous: bool = True,
                 acl: list[str] | None = None, deny: dict[str, list[str]] | None = None,
                 persistence: bool = True,
                 max_queued_messages: int = 0, extra: list[str] | None = None) -> None:
        super().__init__(directory, persistence=persistence,
                         max_queued_messages=max_queued_messages,
                         allow_anonymous=allow_anonymous, extra=extra)
        self.tls_port = free_port() if tls else None
        self.users = dict(users or {})
        self.acl = acl
        self.deny = deny
        self.require_certificate = require_certificate
        self.ca_file: Path | None = None
        if tls:
            self.ca_file, self._cert, self._key = make_tls_material(self.directory / "tls")

    # -- addresses -------------------------------------------------------------------------------
    def client_certificate(self, name: str = "client") -> tuple[Path, Path]:
        """(certificate, key) for TLS client authentication, signed by this broker's CA."""
        return sign_certificate(self.directory / "tls", name, name)

    @property
    def tls_url(self) -> str:
        assert self.tls_port is not None, "broker started without tls=True"
        return f"mqtts://localhost:{self.tls_port}"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        super().start(timeout)
        return self

    def __enter__(self) -> Mosquitto:
        return self.start()

    # -- configuration ---------------------------------------------------------------------------
    def config_lines(self) -> list[str]:
        lines = super().config_lines()
        if self.users:
            password_file = self.directory / "passwords"
            password_file.write_text("".join(password_line(u, p) + "\n"
                                             for u, p in self.users.items()))
            lines.append(f"password_file {password_file}")
        if self.acl is not None:
            acl_file = self.directory / "acl"
            acl_file.write_text("".join(line + "\n" for line in self.acl))
            lines.append(f"acl_file {acl_file}")
        if self.deny is not None:
            lines += self._dynamic_security()
        return lines

    def listener_lines(self) -> list[str]:
        lines = super().listener_lines()
        if self.tls_port is not None:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.ca_file}",
                      f"certfile {self._cert}", f"keyfile {self._key}"]
            if self.require_certificate:
                lines.append("require_certificate true")
        return lines

    def _dynamic_security(self) -> list[str]:
        """Refusals an ``acl_file`` cannot express: Mosquitto 2's acl_file grants every
        SUBSCRIBE (it filters deliveries later), the dynamic-security plugin refuses it with
        SUBACK 0x87. ``deny = {"subscribe": [...], "publish": [...]}`` (topic patterns) applies to
        anonymous clients; everything else stays allowed."""
        assert self.deny is not None
        acls = [{"acltype": "subscribePattern", "topic": topic, "priority": 1, "allow": False}
                for topic in self.deny.get("subscribe", [])]
        acls += [{"acltype": "publishClientSend", "topic": topic, "priority": 1,
                  "allow": False} for topic in self.deny.get("publish", [])]
        config = {
            "defaultACLAccess": {"publishClientSend": True, "publishClientReceive": True,
                                 "subscribe": True, "unsubscribe": True},
            "clients": [],
            "groups": [{"groupname": "anonymous", "roles": [{"rolename": "restricted"}]}],
            "roles": [{"rolename": "restricted", "acls": acls}],
            "anonymousGroup": "anonymous",
        }
        path = self.directory / "dynamic-security.json"
        path.write_text(json.dumps(config, indent=1))
        return [f"plugin {DYNSEC_PLUGIN}", f"plugin_opt_config_file {path}"]


@contextlib.contextmanager
def started_brokers(directory: Path, *, kill: bool = False,
                    **defaults: Any) -> Iterator[Callable[..., Mosquitto]]:
    """``start(**options)``: a started private Mosquitto in its own folder under *directory*
    (*defaults* apply unless given); every one is stopped on exit (SIGTERM), or killed with
    *kill* (a test that crashed them on purpose must not wait for a clean stop)."""
    brokers: list[Mosquitto] = []

    def start(**options: Any) -> Mosquitto:
        broker = Mosquitto(directory / f"mosquitto{len(brokers)}", **{**defaults, **options})
        brokers.append(broker.start())
        return broker

    try:
        yield start
    finally:
        for broker in brokers:
            broker.kill() if kill else broker.stop()
