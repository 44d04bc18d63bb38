"""mqtts:// against a private Mosquitto with a throw-away CA."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge import Agent
from tests.support.mosquitto import Mosquitto

from .conftest import Objects, unique

pytestmark = pytest.mark.integration


def test_tls_with_the_ca_verifies_and_carries_messages(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker(tls=True)
    objects = Objects(make_agent(url=broker.tls_url, ca_file=str(broker.ca_file)))
    assert objects.has("CONNECTION_OPEN"), objects.events
    path = f"/tls/{unique('p')}"
    objects.receiver(path)
    objects.send(objects.sender(path), objects.agent.amqp.createmessage("over TLS"))
    objects.wait(lambda: len(objects.messages) == 1, "message over TLS")
    assert objects.messages[0].body() == "over TLS"


def test_tls_without_the_ca_is_refused_naming_the_certificate(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker(tls=True)
    objects = Objects(make_agent(url=broker.tls_url))  # system CAs do not know ours
    detail = objects.detail("CONNECTION_ERROR") or ""
    assert detail.startswith("amqp:connection:forced: ")
    assert "certificate" in detail and f"localhost:{broker.tls_port}" in detail


def test_verification_can_only_be_turned_off_explicitly(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker(tls=True)
    objects = Objects(make_agent(url=broker.tls_url, verify=False, insecure=True))
    assert objects.has("CONNECTION_OPEN"), objects.events


def test_client_certificate_authentication(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker(tls=True, require_certificate=True)
    without = Objects(make_agent(url=broker.tls_url, ca_file=str(broker.ca_file)))
    assert without.has("CONNECTION_ERROR")
    cert, key = broker.client_certificate("device-1")
    with_cert = Objects(make_agent(url=broker.tls_url, ca_file=str(broker.ca_file),
                                   cert_file=str(cert), key_file=str(key)))
    assert with_cert.has("CONNECTION_OPEN"), with_cert.events


def test_unreadable_tls_files_are_a_connection_error(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker(tls=True)
    objects = Objects(make_agent(url=broker.tls_url, ca_file="/nonexistent/ca.pem"))
    detail = objects.detail("CONNECTION_ERROR") or ""
    assert detail.startswith("amqp:internal-error: cannot set up the MQTT client")


def test_a_burst_of_large_messages_over_tls_arrives_whole_and_in_order(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    """The driver's buffered socket under TLS: a burst far larger than the socket buffers
    (partial TLS writes, retried as the kernel takes more) and reads of several records at once."""
    broker = private_broker(tls=True)
    objects = Objects(make_agent(url=broker.tls_url, ca_file=str(broker.ca_file)))
    assert objects.has("CONNECTION_OPEN"), objects.events
    path = f"/tls/{unique('burst')}"
    objects.receiver(path)
    sender = objects.sender(path)
    # Mosquitto's Receive Maximum (20) bounds the window: 20 x 512 KiB = 10 MiB handed to the
    # socket in one driver turn, more than the kernel takes at once
    count, size = 60, 512 * 1024
    confirmed: list[int] = []
    for i in range(count):
        body = i.to_bytes(4, "big") * (size // 4)
        sender.createtransfer(objects.agent.amqp.createbinarymessage(body)).sendasync(
            lambda i=i: confirmed.append(i))
    objects.wait(lambda: len(objects.messages) == count and len(confirmed) == count,
                 "every message over TLS", timeout=60)
    for i, message in enumerate(objects.messages):
        assert message.body() == i.to_bytes(4, "big") * (size // 4), f"message {i} damaged"
    assert confirmed == list(range(count))
