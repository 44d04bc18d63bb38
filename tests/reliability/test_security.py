"""Security defaults on real connections (issue 9, part 5).

- A password over plaintext ``mqtt://``, ``ws://`` or ``amqp://`` to a host that is not loopback
  is refused with ``CONNECTION_ERROR`` *before any connect attempt*: the socket layer is
  watched and must never see the address (192.0.2.1 is TEST-NET-1, used only as a string; with
  the opt-in, the one connect attempt is answered by the watcher itself, so no packet ever
  leaves this machine).
- Loopback with credentials keeps working (local brokers, tests, sidecars).
- TLS verification is on by default; turning it off works and is logged once per connection.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import Agent
from bridge.backends.mqtt.backend import live_backends
from tests.conftest import register_secret
from tests.integration.amqp.peer import AmqpPeer
from tests.reliability.conftest import signal_on
from tests.support.mosquitto import Mosquitto, make_tls_material

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SECRET = register_secret("never-in-clear-7f3a")
FAR = "192.0.2.1"  # TEST-NET-1 (RFC 5737): a documentation address, never contacted


class SocketWatch:
    """Records every name lookup and connect of this process; refuses any to *FAR*."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lookups: list[Any] = []
        self.connects: list[Any] = []
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo
        watch = self

        def far(address: Any) -> bool:
            return isinstance(address, tuple) and address and address[0] == FAR

        def connect(sock: socket.socket, address: Any) -> None:
            watch.connects.append(address)
            if far(address):
                raise ConnectionRefusedError(111, "refused by the test (no traffic)")
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            watch.connects.append(address)
            if far(address):
                return 111
            return real_connect_ex(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            watch.lookups.append(host)
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def touched(self, host: str) -> bool:
        return host in self.lookups or any(isinstance(a, tuple) and a and a[0] == host
                                           for a in self.connects)


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> SocketWatch:
    return SocketWatch(monkeypatch)


@pytest.fixture
def agents() -> Iterator[Callable[..., Agent]]:
    from bridge import Settings

    made: list[Agent] = []

    def make(**settings: Any) -> Agent:
        settings.setdefault("agent_id", f"sec-{uuid.uuid4().hex[:10]}")
        agent = Agent(Settings(**settings))
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


def _first_event(agent: Agent, url: str, timeout: float = 5.0) -> tuple[str, str | None, float]:
    events: list[tuple[str, str | None]] = []
    started = time.monotonic()
    conn = agent.amqp.openconnection(url, lambda e, d: events.append((e, d)))
    assert agent.run_until(lambda: bool(events), timeout), "no connection event"
    elapsed = time.monotonic() - started
    assert conn is not None
    return events[0][0], events[0][1], elapsed


# -- refused before any connect ------------------------------------------------------------------


@pytest.mark.parametrize(("mqtt", "logical"), [
    ({"url": f"mqtt://{FAR}:1883", "username": "dev", "password": SECRET}, "amqps://hub"),
    ({"url": f"mqtt://dev:{SECRET}@{FAR}:1883"}, "amqps://hub"),
    ({"url": f"ws://{FAR}:8080/mqtt", "password": SECRET}, "amqps://hub"),
    ({"url": f"mqtt://{FAR}"}, f"amqps://dev:{SECRET}@hub.example"),  # the agent's own URL
], ids=["settings", "url-userinfo", "websocket", "openconnection-url"])
def test_mqtt_plaintext_password_to_a_remote_host_is_refused_before_connecting(
        watch: SocketWatch, agents: Callable[..., Agent], mqtt: dict[str, Any],
        logical: str) -> None:
    agent = agents(backend="mqtt", mqtt={"connect_timeout": 30, **mqtt})
    event, detail, elapsed = _first_event(agent, logical)
    assert event == "CONNECTION_ERROR"
    assert detail is not None and detail.startswith("amqp:not-allowed: ")
    assert "mqtt.allow_plaintext_credentials" in detail and SECRET not in detail
    assert not watch.touched(FAR), (watch.lookups, watch.connects)
    assert elapsed < 2  # decided at once, not after a connect attempt or its time-out
    assert live_backends(agent.settings.agent_id) == []


def test_mqtt_opt_in_lets_the_connect_attempt_through(watch: SocketWatch,
                                                      agents: Callable[..., Agent]) -> None:
    agent = agents(backend="mqtt", mqtt={"url": f"mqtt://{FAR}:1883", "password": SECRET,
                                         "allow_plaintext_credentials": True})
    event, detail, _ = _first_event(agent, "amqps://hub")
    assert event == "CONNECTION_ERROR"
    # the watcher answered (a non-blocking connect_ex gets its 111, ECONNREFUSED)
    assert detail is not None and "refused" in detail.lower()
    assert watch.touched(FAR)


@pytest.mark.parametrize(("amqp", "logical"), [
    ({}, f"amqp://dev:{SECRET}@{FAR}:5672"),
    ({"url": f"amqp://{FAR}", "username": "dev", "password": SECRET}, "amqps://hub"),
    ({"url": f"amqp://dev:{SECRET}@{FAR}"}, f"amqps://dev:{SECRET}@hub.example"),
], ids=["openconnection-url", "settings", "amqp-url"])
def test_amqp_plaintext_password_to_a_remote_host_is_refused_before_connecting(
        watch: SocketWatch, agents: Callable[..., Agent], amqp: dict[str, Any],
        logical: str) -> None:
    agent = agents(backend="amqp", amqp={"connect_timeout": 30, **amqp})
    event, detail, elapsed = _first_event(agent, logical)
    assert event == "CONNECTION_ERROR"
    assert detail is not None and detail.startswith("amqp:not-allowed: ")
    assert "amqp.allow_plaintext_credentials" in detail and SECRET not in detail
    assert not watch.touched(FAR), (watch.lookups, watch.connects)
    assert elapsed < 2


def test_amqp_opt_in_lets_the_connect_attempt_through(watch: SocketWatch,
                                                      agents: Callable[..., Agent]) -> None:
    agent = agents(backend="amqp", amqp={"allow_plaintext_credentials": True,
                                         "connect_timeout": 30})
    event, detail, _ = _first_event(agent, f"amqp://dev:{SECRET}@{FAR}:5672")
    assert event == "CONNECTION_ERROR"
    assert detail is not None and "refused" in detail.lower()
    assert watch.touched(FAR)


# -- loopback with credentials works ---------------------------------------------------------


def test_mqtt_password_to_loopback_connects(tmp_path: Path,
                                            agents: Callable[..., Agent]) -> None:
    with Mosquitto(tmp_path / "auth", users={"dev": SECRET}, allow_anonymous=False) as broker:
        agent = agents(backend="mqtt", mqtt={"url": broker.url, "username": "dev",
                                             "password": SECRET})
        event, detail, _ = _first_event(agent, "amqps://hub")
        assert (event, detail) == ("CONNECTION_OPEN", None)
        agent.close()


def test_amqp_password_to_loopback_connects(agents: Callable[..., Agent]) -> None:
    agent = agents(backend="amqp")
    event, detail, _ = _first_event(agent, "amqp://guest:guest@127.0.0.1:5672")
    assert (event, detail) == ("CONNECTION_OPEN", None)


# -- TLS verification ----------------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and text in r.getMessage()]


def test_mqtt_tls_verification_on_by_default_and_off_is_logged_once_per_connection(
        tmp_path: Path, agents: Callable[..., Agent], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bridge")
    with Mosquitto(tmp_path / "tls", tls=True) as broker:
        # default: the broker's self-signed CA is not trusted -> refused
        strict = agents(backend="mqtt", mqtt={"url": broker.tls_url})
        event, detail, _ = _first_event(strict, "amqps://hub")
        assert event == "CONNECTION_ERROR" and detail is not None
        assert "certificate" in detail.lower()
        assert _warnings(caplog, "verification is OFF") == []

        lax = agents(backend="mqtt", mqtt={"url": broker.tls_url, "verify": False,
                                           "insecure": True, "reconnect": "auto",
                                           "reconnect_min_delay": 0.05,
                                           "reconnect_max_delay": 0.2})
        event, detail, _ = _first_event(lax, "amqps://hub")
        assert (event, detail) == ("CONNECTION_OPEN", None)
        (backend,) = live_backends(lax.settings.agent_id)
        up = signal_on(backend, "on_up")
        broker.restart()  # a reconnect is the same connection: no second warning
        assert up.wait(15) and backend.stats.reconnects == 1
        assert len(_warnings(caplog, "verification is OFF (mqtt.verify = false)")) == 1


def test_amqp_tls_verification_off_is_logged(tmp_path: Path, agents: Callable[..., Agent],
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bridge")
    _, cert, key = make_tls_material(tmp_path / "tls")
    with AmqpPeer(tls=(cert, key)) as peer:
        url = f"amqps://localhost:{peer.port}"
        strict = agents(backend="amqp")
        event, _, _ = _first_event(strict, url)
        assert event == "CONNECTION_ERROR"  # the peer's CA is not trusted
        assert _warnings(caplog, "verification is OFF") == []
        lax = agents(backend="amqp", amqp={"verify": False})
        event, detail, _ = _first_event(lax, url)
        assert (event, detail) == ("CONNECTION_OPEN", None)
        assert len(_warnings(caplog, "verification is OFF for amqps://localhost")) == 1
