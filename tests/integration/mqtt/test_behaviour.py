"""The MQTT backend's contract mapping against real Mosquitto brokers (shared and private)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bridge import Agent
from bridge.backends.mqtt.backend import MQTTBackend, live_backends
from bridge.errors import AddressError
from tests.conftest import leaked_secrets, register_secret
from tests.support.mosquitto import Mosquitto, free_port

from .conftest import Objects, RawClient, kick, signal_on, unique

pytestmark = pytest.mark.integration


def backend_of(agent: Agent) -> MQTTBackend:
    (backend,) = live_backends(agent.settings.agent_id)
    return backend


# -- connections ---------------------------------------------------------------------------------


def test_refused_tcp_connect_is_connection_error_naming_the_broker(
        make_agent: Callable[..., Agent]) -> None:
    port = free_port()
    objects = Objects(make_agent(url=f"mqtt://127.0.0.1:{port}"))
    detail = objects.detail("CONNECTION_ERROR")
    assert detail is not None and detail.startswith("amqp:connection:forced: ")
    assert f"127.0.0.1:{port}" in detail and "refused" in detail.lower()
    assert not objects.conn.isopen()


def test_credentials_from_settings_or_url_and_refusal(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    password = register_secret(f"pw-{uuid.uuid4().hex}")
    broker = private_broker(users={"device": password}, allow_anonymous=False)
    wrong = Objects(make_agent(url=broker.url, username="device", password="wrong-password"))
    detail = wrong.detail("CONNECTION_ERROR")
    assert detail is not None and detail.startswith("amqp:unauthorized-access: ")
    assert "CONNACK" in detail and "wrong-password" not in detail
    anonymous = Objects(make_agent(url=broker.url))
    assert anonymous.has("CONNECTION_ERROR")
    right = Objects(make_agent(url=broker.url, username="device", password=password))
    assert right.has("CONNECTION_OPEN")
    # legacy code may carry credentials in the logical URL
    in_url = Objects(make_agent(url=broker.url), url=f"amqps://device:{password}@hub.example")
    assert in_url.has("CONNECTION_OPEN")
    assert not [leak for leak in leaked_secrets() if leak[0] == password]


def test_kicked_connection_with_reconnect_off_closes_everything(
        make_agent: Callable[..., Agent]) -> None:
    agent = make_agent()
    objects = Objects(agent)
    session = objects.open_session()
    sender = objects.sender(f"/kick/{unique('p')}")
    kick(backend_of(agent).client_id)
    objects.wait(lambda: objects.has("CONNECTION_ERROR"), "CONNECTION_ERROR")
    # Mosquitto 2.0.11 closes the socket of the replaced client without a DISCONNECT packet
    detail = objects.detail("CONNECTION_ERROR") or ""
    assert detail.startswith("amqp:connection:forced: ") and "lost" in detail
    names = [e for e, _ in objects.events]
    assert names[-3:] == ["SENDER_CLOSED", "SESSION_CLOSED", "CONNECTION_ERROR"]
    assert not (session.isopen() or sender.isopen() or objects.conn.isopen())


def test_reconnect_auto_keeps_objects_open_and_resubscribes(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    path = f"/auto/{unique('p')}"
    agent = make_agent(reconnect="auto", reconnect_min_delay=0.05)
    objects = Objects(agent)
    receiver = objects.receiver(path)
    backend = backend_of(agent)
    resubscribed = signal_on(backend.inbox, "on_suback")
    kick(backend.client_id)  # kicked once; the raw client then leaves
    assert resubscribed.wait(10), "no SUBACK after the reconnect"
    assert backend.stats.reconnects == 1
    # clean session: the broker knows the subscription only because the backend renewed it
    assert raw_client().publish(path[1:], b"after").value == 0
    objects.wait(lambda: len(objects.messages) == 1, "message after the reconnect")
    assert receiver.isopen() and objects.conn.isopen() and not objects.has("CONNECTION_ERROR")


def test_offline_buffer_overflow_is_sender_error_and_buffered_sends_arrive(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker()
    path = f"/buffer/{unique('p')}"
    receiving = Objects(make_agent(url=broker.url, reconnect="auto", reconnect_min_delay=0.05,
                                   clean_start=False, session_expiry=60))
    receiving.receiver(path)
    agent = make_agent(url=broker.url, reconnect="auto", reconnect_min_delay=0.05,
                       reconnect_max_delay=0.2, buffer_limit=3)
    objects = Objects(agent)
    sender = objects.sender(path)
    down = signal_on(backend_of(agent), "on_down")
    broker.stop()
    assert down.wait(10), "connection loss not noticed"
    confirmed: list[int] = []
    for n in range(4):
        sender.createtransfer(agent.amqp.createmessage(f"m{n}")).sendasync(
            lambda n=n: confirmed.append(n))
    objects.wait(lambda: objects.has("SENDER_ERROR"), "overflow reported")
    detail = objects.detail("SENDER_ERROR") or ""
    assert detail.startswith("amqp:resource-limit-exceeded:") and "buffer_limit = 3" in detail
    assert sender.isopen()
    broker.start()
    objects.wait(lambda: sorted(confirmed) == [0, 1, 2], "buffered sends confirmed")
    receiving.wait(lambda: len(receiving.messages) == 3, "buffered sends delivered")
    assert [m.body() for m in receiving.messages] == ["m0", "m1", "m2"]


# -- links ---------------------------------------------------------------------------------------


def test_wildcard_paths_are_refused_at_the_call(make_agent: Callable[..., Agent]) -> None:
    objects = Objects(make_agent())
    session = objects.open_session()
    with pytest.raises(AddressError, match=r"'/a/\+/b'.*wildcard"):
        session.openreceiver("/a/+/b")
    with pytest.raises(AddressError, match="empty level"):
        session.opensender("/a//b")
    assert session.isopen()


def test_refused_subscription_is_receiver_error(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker(deny={"subscribe": ["secret/#"]})
    objects = Objects(make_agent(url=broker.url))
    session = objects.open_session()
    errors: list[tuple[str, str | None]] = []
    receiver = session.openreceiver("/secret/x", lambda e, d: errors.append((e, d)),
                                    lambda ds: None)
    objects.wait(lambda: bool(errors), "RECEIVER_ERROR")
    (event, detail), = errors
    assert event == "RECEIVER_ERROR" and not receiver.isopen()
    assert detail is not None and detail.startswith("amqp:unauthorized-access: ")
    assert "'secret/x'" in detail and "SUBACK" in detail
    allowed = objects.receiver("/allowed/x")
    assert allowed.isopen()


# -- settlement ----------------------------------------------------------------------------------


def test_release_redelivers_to_the_same_receiver_then_accept_acks(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    path = f"/settle/{unique('rel')}"
    agent = make_agent(release_delay=0.1)
    objects = Objects(agent)
    seen: list[str] = []

    def on_messages(deliveries: list[Any]) -> None:
        for delivery in deliveries:
            seen.append(delivery.message().body())
            if len(seen) < 3:
                delivery.release()
            else:
                delivery.accept()

    objects.receiver(path, on_messages)
    objects.send(objects.sender(path), agent.amqp.createmessage("again"))
    objects.wait(lambda: len(seen) == 3, "two redeliveries")
    stats = backend_of(agent).stats  # both counted before the redelivery was handed over
    assert seen == ["again"] * 3 and stats.released == 2 and stats.redelivered == 2


def test_reject_goes_to_the_dead_letter_topic_intact(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    path = f"/settle/{unique('rej')}"
    dead = f"dead/{unique('letters')}"
    raw = raw_client()
    raw.subscribe(dead)
    agent = make_agent(dead_letter_topic=dead)
    objects = Objects(agent)
    objects.receiver(path, lambda ds: [d.reject() for d in ds])
    objects.send(objects.sender(path), agent.amqp.createmessage("poison", {"n": 1}))
    raw.wait(lambda: len(raw.messages) == 1, "dead letter")
    copy = raw.messages[0]
    user = dict(copy.properties.UserProperty)
    assert copy.payload == b"poison" and user["n"] == "1"
    assert user["x-amqp-dead-letter-reason"] == "rejected"
    assert user["x-amqp-dead-letter-from"] == path[1:]
    assert backend_of(agent).stats.rejected == 1  # counted before the copy was sent


def test_receive_maximum_is_the_receivers_credit(
        make_agent: Callable[..., Agent], raw_client: Callable[..., RawClient]) -> None:
    path = f"/credit/{unique('p')}"
    agent = make_agent(receive_maximum=2)
    objects = Objects(agent)
    held: list[Any] = []
    accept_now = [False]

    def on_messages(deliveries: list[Any]) -> None:
        held.extend(deliveries)
        if accept_now[0]:
            for delivery in deliveries:
                delivery.accept()

    objects.receiver(path, on_messages)
    raw = raw_client()
    for n in range(5):
        raw.publish(path[1:], f"m{n}".encode())
    objects.wait(lambda: len(held) == 2, "two deliveries")
    objects.agent.run(timeout=0.3)  # nothing more arrives while both are unsettled
    assert len(held) == 2
    # settling gives the credit back (Mosquitto may refill more than one slot per PUBACK, so
    # only the totals are checked from here on)
    accept_now[0] = True
    for delivery in list(held):
        delivery.accept()
    objects.wait(lambda: len(held) == 5, "the rest once credit came back")
    assert [d.message().body() for d in held] == [f"m{n}".encode() for n in range(5)]


def test_qos0_confirms_on_write(make_agent: Callable[..., Agent]) -> None:
    path = f"/qos0/{unique('p')}"
    objects = Objects(make_agent(qos=0))
    objects.receiver(path)
    sender = objects.sender(path)
    objects.send(sender, objects.agent.amqp.createmessage("fire and forget"))
    objects.wait(lambda: len(objects.messages) == 1, "message")
    assert not objects.has("SENDER_ERROR")


def test_refused_publish_is_sender_error_with_the_reason(
        make_agent: Callable[..., Agent], private_broker: Callable[..., Mosquitto]) -> None:
    broker = private_broker(acl=["topic readwrite allowed/#"])
    objects = Objects(make_agent(url=broker.url, reconnect="auto", reconnect_min_delay=0.05))
    sender = objects.sender("/forbidden/x")
    sender.createtransfer(objects.agent.amqp.createmessage("no")).sendasync()
    objects.wait(lambda: objects.has("SENDER_ERROR"), "SENDER_ERROR")
    detail = objects.detail("SENDER_ERROR") or ""
    assert detail.startswith("amqp:unauthorized-access: ") and "'forbidden/x'" in detail
    assert "PUBACK" in detail and sender.isopen()
