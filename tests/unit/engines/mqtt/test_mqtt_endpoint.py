"""Broker URLs, client ids, reconnect delays, errorDetail texts and MQTT settings (pure)."""

from __future__ import annotations

import random
import socket
import ssl

import pytest

from bridge import Settings
from bridge.engines.mqtt import reasons
from bridge.engines.mqtt.endpoint import (
    backoff_delay,
    client_id_for,
    logical_credentials,
    parse_broker_url,
)
from bridge.errors import ConfigError


@pytest.mark.parametrize(("url", "scheme", "host", "port", "tls", "ws", "ws_path"), [
    ("mqtt://127.0.0.1:1883", "mqtt", "127.0.0.1", 1883, False, False, "/mqtt"),
    ("mqtt://broker", "mqtt", "broker", 1883, False, False, "/mqtt"),
    ("mqtts://broker", "mqtts", "broker", 8883, True, False, "/mqtt"),
    ("MQTTS://Broker:9999/", "mqtts", "broker", 9999, True, False, "/mqtt"),
    ("ws://broker:8080/mqtt", "ws", "broker", 8080, False, True, "/mqtt"),
    ("wss://broker/ws?x=1", "wss", "broker", 443, True, True, "/ws?x=1"),
    ("ws://[::1]:9001", "ws", "::1", 9001, False, True, "/mqtt"),
])
def test_broker_urls(url: str, scheme: str, host: str, port: int, tls: bool, ws: bool,
                     ws_path: str) -> None:
    endpoint = parse_broker_url(url)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.tls, endpoint.websockets,
            endpoint.ws_path) == (scheme, host, port, tls, ws, ws_path)


@pytest.mark.parametrize(("url", "problem"), [
    ("amqps://broker", "unsupported scheme"),
    ("mqtt://", "no host"),
    ("mqtt://broker:notaport", "not a valid URL"),
    ("mqtt://broker/path", "only meaningful for ws"),
])
def test_bad_broker_urls(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_broker_url(url)


def test_credentials_in_urls_never_show_in_repr_or_describe() -> None:
    endpoint = parse_broker_url("mqtts://dev%40x:s%3Acret@broker:8883")
    assert (endpoint.username, endpoint.password) == ("dev@x", "s:cret")
    assert "cret" not in repr(endpoint) and "cret" not in endpoint.describe()
    assert endpoint.describe() == "mqtts://broker:8883"
    assert logical_credentials("amqps://u:p@hub.example") == ("u", "p")
    assert logical_credentials("amqps://hub.example") == (None, None)


def test_client_ids_are_stable_per_agent_and_connection() -> None:
    assert client_id_for(None, "agent-a", 3) == "agent-a-3"
    assert client_id_for("{agent_id}/c{connection}", "agent-a", 3) == "agent-a/c3"
    assert client_id_for("fixed", "agent-a", 3) == "fixed"


def test_backoff_doubles_caps_and_jitters() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0), (500, 30.0)]:
        delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # really jittered


@pytest.mark.parametrize(("settings", "problem"), [
    ({"url": "http://x"}, "mqtt.url"),
    ({"verify": False}, "insecure"),
    ({"reconnect_min_delay": 5, "reconnect_max_delay": 1}, "reconnect_min_delay"),
    ({"dead_letter_topic": "dl/#"}, "wildcard"),
    ({"client_id": ""}, "client_id"),
    ({"qos": 3}, "qos"),
    ({"protocol": "3.1"}, "protocol"),
])
def test_bad_mqtt_settings_fail_at_start_up(settings: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Settings(backend="mqtt", mqtt=settings)


def test_password_never_appears_in_errors_or_repr() -> None:
    good = Settings(backend="mqtt", mqtt={"username": "u", "password": "hunter2"})
    assert "hunter2" not in repr(good) and "hunter2" not in str(good.mqtt)
    with pytest.raises(ConfigError) as info:
        Settings(backend="mqtt", mqtt={"password": "hunter2", "keepalive": 0})
    assert "hunter2" not in str(info.value)


def test_insecure_allows_verify_off() -> None:
    settings = Settings(backend="mqtt", mqtt={"verify": False, "insecure": True})
    assert not settings.mqtt.verify


@pytest.mark.parametrize(("code", "packet", "symbol"), [
    (0x86, "CONNACK", "amqp:unauthorized-access"),
    (0x87, "CONNACK", "amqp:unauthorized-access"),
    (0x87, "SUBACK", "amqp:unauthorized-access"),
    (0x87, "PUBACK", "amqp:unauthorized-access"),
    (0x97, "PUBACK", "amqp:resource-limit-exceeded"),
    (0x95, "PUBACK", "amqp:link:message-size-exceeded"),
    (0x8F, "SUBACK", "amqp:invalid-field"),
    (0x80, "SUBACK", "amqp:not-allowed"),
    (0x80, "PUBACK", "amqp:internal-error"),
    (0x8E, "DISCONNECT", "amqp:connection:forced"),
    (0x88, "CONNACK", "amqp:connection:forced"),
])
def test_reason_codes_map_to_amqp_conditions(code: int, packet: str, symbol: str) -> None:
    assert reasons.condition(code, packet) == symbol


def test_detail_texts_name_condition_packet_and_code() -> None:
    text = reasons.connack_detail(0x87, "Not authorized", "mqtt://b:1883")
    assert text.startswith("amqp:unauthorized-access: ") and "CONNACK" in text
    assert "Not authorized (0x87)" in text
    text = reasons.disconnect_detail(0x8E, "Session taken over", "mqtt://b:1883",
                                     from_broker=True)
    assert text.startswith("amqp:connection:forced: ") and "Session taken over (0x8E)" in text
    assert "keep-alive" in reasons.disconnect_detail(141, "Keep alive timeout", "b",
                                                    from_broker=False)
    assert "lost" in reasons.disconnect_detail(128, "Unspecified error", "b", from_broker=False)
    assert "'a/b'" in reasons.suback_detail(0x87, "Not authorized", "a/b")
    assert "'t'" in reasons.puback_detail(0x87, "Not authorized", "t")


@pytest.mark.parametrize(("exc", "words"), [
    (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
    (socket.gaierror(-2, "Name or service not known"), "cannot resolve"),
    (TimeoutError(), "timed out"),
    (ssl.SSLError("handshake failure"), "TLS handshake"),
    (RuntimeError("odd"), "RuntimeError: odd"),
])
def test_transport_failures(exc: BaseException, words: str) -> None:
    text = reasons.transport_detail(exc, "mqtts://b:8883")
    assert text.startswith("amqp:connection:forced: ") and words in text
    assert "mqtts://b:8883" in text


def test_paho_client_is_built_for_our_loop() -> None:
    from bridge.engines.mqtt.client import build_client, connect_properties, tls_context

    tls = tls_context(None, None, None, verify=False, insecure=True)
    assert tls.verify_mode == ssl.CERT_NONE and not tls.check_hostname
    strict = tls_context(None, None, None, verify=True, insecure=False)
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    client = build_client(endpoint=parse_broker_url("wss://broker/ws"), client_id="agent-1",
                          v5=True, clean_start=False, username="u", password="p",
                          connect_timeout=3.0, tls=strict)
    assert client.transport == "websockets" and client.connect_timeout == 3.0
    assert client.max_inflight_messages == 0  # the backend keeps the window
    props = connect_properties(receive_maximum=7, session_expiry=60)
    assert props.ReceiveMaximum == 7 and props.SessionExpiryInterval == 60
    assert not hasattr(connect_properties(receive_maximum=7, session_expiry=0),
                       "SessionExpiryInterval")
