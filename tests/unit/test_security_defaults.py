"""Security defaults (issue 9, part 5): the pure decisions behind them.

- TLS verification is on unless turned off explicitly, and turning it off is logged;
- a password is never sent over plaintext ``mqtt://``, ``ws://`` or ``amqp://`` to a host that is
  not loopback unless ``*.allow_plaintext_credentials`` opts in.

The end-to-end checks (refused before any socket, warnings on real connections) are in
tests/reliability/test_security.py.
"""

from __future__ import annotations

import logging
import ssl

import pytest

from bridge import Settings
from bridge.backends.amqp import endpoint as amqp_endpoint
from bridge.backends.amqp.endpoint import connect_options
from bridge.backends.amqp.handler import ConnectionHandler
from bridge.engines.mqtt import endpoint as mqtt_endpoint
from bridge.engines.mqtt.client import tls_context
from bridge.engines.mqtt.endpoint import parse_broker_url, plaintext_credentials_problem
from bridge.errors import ConfigError
from tests.conftest import register_secret

SECRET = register_secret("plain-text-secret-42")

LOOPBACK = ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "localhost.", "::1", "[::1]",
            "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]
NOT_LOOPBACK = ["192.0.2.1", "198.51.100.7", "10.0.0.1", "0.0.0.0", "::", "::ffff:192.0.2.1",
                "broker.example", "localhost.example", "my-localhost", "128.0.0.1", ""]


@pytest.mark.parametrize("module", [mqtt_endpoint, amqp_endpoint], ids=["mqtt", "amqp"])
@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(module: object, host: str) -> None:
    assert module.is_loopback_host(host)  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", [mqtt_endpoint, amqp_endpoint], ids=["mqtt", "amqp"])
@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_other_hosts_are_not_loopback(module: object, host: str) -> None:
    assert not module.is_loopback_host(host)  # type: ignore[attr-defined]


# -- MQTT ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "password", "allowed", "refused"), [
    ("mqtt://192.0.2.1:1883", SECRET, False, True),
    ("tcp://broker.example", SECRET, False, True),
    ("ws://192.0.2.1:8080/mqtt", SECRET, False, True),
    ("mqtt://192.0.2.1:1883", SECRET, True, False),     # explicit opt-in
    ("mqtts://192.0.2.1:8883", SECRET, False, False),   # TLS
    ("wss://192.0.2.1/mqtt", SECRET, False, False),
    ("mqtt://127.0.0.1:1883", SECRET, False, False),    # loopback
    ("mqtt://localhost", SECRET, False, False),
    ("mqtt://[::1]:1883", SECRET, False, False),
    ("mqtt://192.0.2.1:1883", None, False, False),      # nothing secret to protect
    ("mqtt://192.0.2.1:1883", "", False, False),
])
def test_mqtt_plaintext_credentials_decision(url: str, password: str | None, allowed: bool,
                                             refused: bool) -> None:
    problem = plaintext_credentials_problem(parse_broker_url(url), password, allowed=allowed)
    assert (problem is not None) == refused
    if problem is not None:
        assert problem.startswith("amqp:not-allowed: ")
        assert "mqtt.allow_plaintext_credentials" in problem
        assert SECRET not in problem
        assert parse_broker_url(url).describe() in problem


def test_mqtt_defaults_are_safe() -> None:
    mqtt = Settings().mqtt
    assert mqtt.verify is True and mqtt.insecure is False
    assert mqtt.allow_plaintext_credentials is False
    with pytest.raises(ConfigError, match="insecure"):
        Settings(mqtt={"verify": False})  # turning verification off needs a second, explicit flag


def test_tls_context_verifies_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "bridge")
    context = tls_context(None, None, None, verify=True, insecure=False)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert not caplog.records


@pytest.mark.parametrize(("verify", "insecure", "mode", "hostname", "warning"), [
    (False, True, ssl.CERT_NONE, False, "verification is OFF (mqtt.verify = false)"),
    (True, True, ssl.CERT_REQUIRED, False, "host-name check is OFF (mqtt.insecure = true)"),
])
def test_weakened_tls_is_logged(caplog: pytest.LogCaptureFixture, verify: bool, insecure: bool,
                                mode: ssl.VerifyMode, hostname: bool, warning: str) -> None:
    caplog.set_level(logging.WARNING, "bridge")
    context = tls_context(None, None, None, verify=verify, insecure=insecure)
    assert context.verify_mode == mode and context.check_hostname is hostname
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warning in warnings[0].getMessage()


# -- AMQP ----------------------------------------------------------------------------------------


def _amqp_problem(given_url: str, **amqp: object) -> str | None:
    settings = Settings(backend="amqp", amqp=amqp)
    return amqp_endpoint.plaintext_credentials_problem(
        connect_options(settings.amqp, given_url, "agent", 1))


@pytest.mark.parametrize(("given_url", "amqp", "refused"), [
    (f"amqp://user:{SECRET}@192.0.2.1:5672", {}, True),
    ("amqp://192.0.2.1", {"username": "user", "password": SECRET}, True),
    ("amqps://hub.example", {"url": f"amqp://user:{SECRET}@broker.example"}, True),
    (f"amqp://user:{SECRET}@192.0.2.1", {"allow_plaintext_credentials": True}, False),
    (f"amqps://user:{SECRET}@192.0.2.1", {}, False),
    (f"amqp://user:{SECRET}@127.0.0.1", {}, False),
    (f"amqp://user:{SECRET}@localhost:5672", {}, False),
    (f"amqp://user:{SECRET}@[::1]:5672", {}, False),
    ("amqp://user@192.0.2.1", {}, False),  # a user name alone: ANONYMOUS-less PLAIN, no secret
    ("amqp://192.0.2.1", {}, False),
    ("amqps://hub.example", {}, False),  # the IoT Hub CBS flow: no SASL credentials at all
])
def test_amqp_plaintext_credentials_decision(given_url: str, amqp: dict[str, object],
                                             refused: bool) -> None:
    problem = _amqp_problem(given_url, **amqp)
    assert (problem is not None) == refused
    if problem is not None:
        assert problem.startswith("amqp:not-allowed: ")
        assert "amqp.allow_plaintext_credentials" in problem
        assert SECRET not in problem


def test_amqp_defaults_are_safe() -> None:
    amqp = Settings().amqp
    assert amqp.verify is True and amqp.allow_plaintext_credentials is False


@pytest.mark.parametrize("verify", [True, False])
def test_amqp_tls_verification_off_is_logged(caplog: pytest.LogCaptureFixture,
                                             verify: bool) -> None:
    caplog.set_level(logging.WARNING, "bridge")
    settings = Settings(backend="amqp", amqp={"verify": verify})
    options = connect_options(settings.amqp, "amqps://broker.example", "agent", 1)
    handler = ConnectionHandler(options, events=None, close_timeout=1.0)  # type: ignore[arg-type]
    assert handler._ssl_domain() is not None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if verify:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert "verification is OFF for amqps://broker.example:5671 (amqp.verify = false)" \
            in warnings[0]
