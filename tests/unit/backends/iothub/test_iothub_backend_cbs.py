"""The iothub backend's authentication state machine, driven by hand: a fake driver stands in for
the network thread (its hooks are called as the real one would), events are recorded. The real
broker paths are in tests/integration/iothub/test_backend.py."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
import pytest

from bridge import Settings
from bridge.backends.iothub import sas
from bridge.backends.iothub.backend import IoTHubBackend
from bridge.contract.backend import Outcome
from bridge.contract.message import Message
from bridge.engines.mqtt.inbound import Token
from bridge.engines.mqtt.transport import BrokerLimits
from bridge.loop.core import Timer
from tests.conftest import register_secret
from tests.support.contexts import backend_context

HOST = "hub.azure-devices.net"
KEY = register_secret(base64.b64encode(b"state-machine-test-key-32-bytes!").decode())
AUDIENCE = f"{HOST}/devices/dev1"


@dataclass(eq=False)
class Handle:
    path: str
    role: str = "sender"
    session: Any = "session"
    backend_state: Any = None
    id: int = field(default_factory=lambda: uuid.uuid4().int & 0xFFFFFF)


@dataclass(eq=False)
class TransferHandle:
    link: Handle
    message: Message
    id: int = field(default_factory=lambda: uuid.uuid4().int & 0xFFFFFF)


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any, Any]] = []  # (event, first argument, second argument)
        self.full: list[tuple[Any, ...]] = []  # (event, *arguments)

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.log.append((name, args[0] if args else None, args[1] if len(args) > 1 else None))
            self.full.append((name, *args))
        return record

    def names(self) -> list[str]:
        return [name for name, _, _ in self.log]

    def replies(self) -> list[dict[str, Any]]:
        return [message.properties() for name, _, message in self.log
                if name == "delivery" and isinstance(message, Message)
                and "status-code" in message.properties()]

    def of(self, link: Handle) -> list[tuple[str, Any]]:
        return [(name, detail) for name, target, detail in self.log if target is link]


class FakeClient:
    def __init__(self) -> None:
        self.subscribed: list[str] = []
        self.mid = 0

    def subscribe(self, topic: str, qos: int, properties: Any) -> tuple[int, int]:
        self.subscribed.append(topic)
        self.mid += 1
        return paho.MQTT_ERR_SUCCESS, self.mid

    def unsubscribe(self, topic: str) -> tuple[int, int]:
        self.mid += 1
        return paho.MQTT_ERR_SUCCESS, self.mid

    def ack(self, mid: int, qos: int) -> None:
        pass


class FakeDriver:
    """Runs commands inline; records restart/park; timers are kept for the test to fire."""

    def __init__(self) -> None:
        self.state = "idle"
        self.refused_code: int | None = None
        self.epoch = 0
        self.client = FakeClient()
        self.calls: list[str] = []
        self.timers: list[Timer] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def join(self, timeout: float) -> bool:
        return True

    def call(self, fn: Any, *args: Any) -> None:
        fn(*args)

    def call_later(self, delay: float, fn: Any) -> Timer:
        timer = Timer(time.monotonic() + delay, fn)
        self.timers.append(timer)
        return timer

    def restart(self) -> None:
        self.calls.append("restart")
        self.state = "connecting"

    def park(self) -> None:
        self.calls.append("park")
        self.state = "idle"

    def fire_timers(self) -> None:
        due, self.timers = self.timers, []
        for timer in due:
            if not timer.cancelled:
                timer.callback()


def make(**iothub: Any) -> tuple[IoTHubBackend, FakeDriver, Events]:
    events = Events()
    settings = Settings(backend="iothub", iothub=iothub)
    backend = IoTHubBackend(backend_context(settings, url=f"amqps://{HOST}", events=events))
    driver = FakeDriver()
    backend.driver = driver  # type: ignore[assignment]
    return backend, driver, events


def connack(backend: IoTHubBackend, driver: FakeDriver) -> None:
    driver.state = "up"
    driver.epoch += 1
    backend.on_up(False, BrokerLimits())


def refuse(backend: IoTHubBackend, driver: FakeDriver, code: int = 0x87) -> None:
    driver.state = "idle"
    driver.refused_code = code
    backend.on_failed("amqp:unauthorized-access: MQTT broker refused the connection (CONNACK): "
                      "Not authorized (0x87)")


def token(ttl: float = 3600, key: str = KEY) -> str:
    return register_secret(sas.generate_token(AUDIENCE, key, int(time.time() + ttl)))


def cbs_links(backend: IoTHubBackend) -> tuple[Handle, Handle]:
    receiver, sender = Handle("$cbs", "receiver"), Handle("$cbs", "sender")
    backend.open_link(receiver)
    backend.open_link(sender)
    return receiver, sender


def put(backend: IoTHubBackend, sender: Handle, text: str) -> None:
    backend.send(TransferHandle(sender, Message.value(text, {
        "operation": "put-token", "type": sas.LEGACY_CBS_TOKEN_TYPE, "name": AUDIENCE})))


def test_cbs_path_opens_without_mqtt_and_connects_on_put_token() -> None:
    backend, driver, events = make()
    backend.open()
    assert events.names() == ["connection_opened"] and driver.calls == ["start"]
    receiver, sender = cbs_links(backend)
    early = Handle("/devices/dev1/messages/events")
    backend.open_link(early)
    assert events.of(early) == []  # waits for authorisation
    put(backend, sender, token())
    assert driver.calls[-1] == "restart" and backend.identity is not None
    assert events.replies() == []  # not before the CONNACK
    connack(backend, driver)
    assert events.replies() == [{"status-code": 200, "status-description": "OK"}]
    assert events.of(early) == [("link_opened", None)]
    assert [n for n, t, _ in events.log if t is receiver] == ["link_opened", "delivery"]


def test_a_refused_put_token_is_401_and_waiting_links_fail() -> None:
    backend, driver, events = make()
    backend.open()
    _, sender = cbs_links(backend)
    early = Handle("/devices/dev1/messages/devicebound", "receiver")
    backend.open_link(early)
    put(backend, sender, token())
    refuse(backend, driver)
    [reply] = events.replies()
    assert reply["status-code"] == 401 and "Not authorized" in reply["status-description"]
    [(name, detail)] = events.of(early)
    assert name == "link_error" and "amqp:unauthorized-access" in detail
    assert "connection_error" not in events.names()


def test_a_refused_renewal_keeps_the_previous_token() -> None:
    backend, driver, events = make()
    backend.open()
    _, sender = cbs_links(backend)
    first = token(600)
    put(backend, sender, first)
    connack(backend, driver)
    link = Handle("/devices/dev1/messages/events")
    backend.open_link(link)
    put(backend, sender, token(1200))
    refuse(backend, driver)
    assert [r["status-code"] for r in events.replies()] == [200, 401]
    assert driver.calls.count("restart") == 3  # first, renewal, back to the previous token
    assert backend._password == first
    connack(backend, driver)
    assert events.of(link) == [("link_opened", None)]  # nothing ended


def test_expiry_ends_event_links_with_the_legacy_texts_and_keeps_the_rest() -> None:
    backend, driver, events = make()
    backend.open()
    receiver_cbs, sender = cbs_links(backend)
    put(backend, sender, token(1))
    connack(backend, driver)
    d2c = Handle("/devices/dev1/messages/events")
    c2d = Handle("/devices/dev1/messages/devicebound", "receiver")
    backend.open_link(d2c)
    backend.open_link(c2d)
    backend.inbox.on_suback(driver.client.mid, [])  # the C2D subscription is granted
    driver.fire_timers()  # the token's expiry
    assert driver.calls[-1] == "park"
    [(_, sender_detail)] = [e for e in events.of(d2c) if e[0] == "link_error"]
    [(_, receiver_detail)] = [e for e in events.of(c2d) if e[0] == "link_error"]
    assert sender_detail.startswith("amqp:unauthorized-access: the SAS token expired")
    assert "Token Invalid" in receiver_detail and "amqp:unauthorized-access" in receiver_detail
    assert "connection_error" not in events.names()
    assert not any(name == "link_error" for name, _ in events.of(receiver_cbs))
    # the C2D subscription is kept for the next receiver
    assert backend.inbox._waiting_for_receiver(
        backend.inbox.subs["devices/dev1/messages/devicebound/#"])
    later = Handle("/devices/dev1/messages/events")
    backend.open_link(later)
    assert events.of(later) == []  # waits for a new put-token
    put(backend, sender, token())
    connack(backend, driver)
    assert events.of(later) == [("link_opened", None)]


def test_loss_of_a_valid_cbs_connection_is_a_connection_error() -> None:
    backend, driver, events = make()
    backend.open()
    _, sender = cbs_links(backend)
    put(backend, sender, token())
    connack(backend, driver)
    driver.state = "idle"  # parked: reconnect is off
    backend.on_failed("amqp:connection:forced: connection to MQTT broker lost")
    assert events.names()[-1] == "connection_error"


def test_self_auth_signs_connects_and_schedules_renewal() -> None:
    backend, driver, events = make(hostname=HOST, device_id="dev1", shared_access_key=KEY,
                                   token_ttl=100)
    backend.open()
    assert driver.calls == ["start", "restart"] and events.names() == []

    class Client:
        _client_id = b""

        def username_pw_set(self, user: str, password: str | None) -> None:
            self.user, self.password = user, password

    client = Client()
    backend._before_attempt(client)  # type: ignore[arg-type]
    assert client._client_id == b"dev1" and client.user.startswith(f"{HOST}/dev1/?api-version=")
    assert client.password is not None
    sas.verify_token(client.password, KEY, audience=AUDIENCE)
    connack(backend, driver)
    assert events.names() == ["connection_opened"]
    [timer] = driver.timers
    assert 75 < timer.deadline - time.monotonic() <= 80  # 20 s (ttl / 5) before expiry
    driver.fire_timers()
    assert driver.calls[-1] == "restart"


def test_self_auth_verifies_put_tokens_against_its_key() -> None:
    backend, driver, events = make(hostname=HOST, device_id="dev1", shared_access_key=KEY)
    backend.open()
    connack(backend, driver)
    _, sender = cbs_links(backend)
    put(backend, sender, token())
    put(backend, sender, token(key=base64.b64encode(b"some-other-key").decode()))
    replies = events.replies()
    assert replies[0] == {"status-code": 200, "status-description": "OK"}
    assert replies[1]["status-code"] == 401 and "signature" in replies[1]["status-description"]
    assert driver.calls.count("restart") == 1  # only the first connect


def test_self_auth_refused_first_connect_is_a_connection_error() -> None:
    backend, driver, events = make(connection_string=f"HostName={HOST};DeviceId=dev1;"
                                                     f"SharedAccessKey={KEY}")
    backend.open()
    refuse(backend, driver)
    assert events.names() == ["connection_error"]
    assert "amqp:unauthorized-access" in events.log[0][1]


@pytest.mark.parametrize(("mode", "outcome"), [("redeliver", Outcome.RELEASED),
                                              ("complete", Outcome.ACCEPTED)])
def test_release_mode(mode: str, outcome: Outcome, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, _, _ = make(hostname=HOST, device_id="dev1", shared_access_key=KEY,
                         release=mode)
    seen: list[Outcome] = []
    monkeypatch.setattr(backend.inbox, "settle", lambda token, how: seen.append(how))
    token_ = Token.__new__(Token)
    token_.deliveries = 1
    backend.settle(Handle("x", "receiver"), token_, Outcome.RELEASED)
    backend.settle(Handle("x", "receiver"), object(), Outcome.RELEASED)  # a CBS reply: ignored
    assert seen == [outcome]


# -- the MQTT inbox's retained subscriptions (what the expiry path relies on) ---------------


class Publish:
    def __init__(self, mid: int, topic: str, payload: bytes) -> None:
        self.mid, self.topic, self.payload, self.qos, self.dup = mid, topic, payload, 1, False
        self.properties = None


def test_a_retained_subscription_holds_messages_for_the_next_receiver() -> None:
    backend, driver, events = make(hostname=HOST, device_id="dev1", shared_access_key=KEY)
    acks: list[int] = []
    driver.client.ack = lambda mid, qos: acks.append(mid)  # type: ignore[method-assign]
    backend.open()
    connack(backend, driver)
    inbox = backend.inbox
    old = Handle("/devices/dev1/messages/devicebound", "receiver")
    backend.open_link(old)
    inbox.on_suback(driver.client.mid, [])
    topic = "devices/dev1/messages/devicebound/a=1"
    inbox.on_message(Publish(1, topic, b"before"))
    [(_, delivered)] = [(n, d) for n, t, d in events.log if t is old and n == "delivery"]
    inbox.retain(old)  # its authorisation ended
    inbox.on_message(Publish(2, topic, b"meanwhile"))
    inbox.settle(next(t for _, lk, t in _tokens(events) if lk is old), Outcome.RELEASED)
    assert acks == []  # nothing acknowledged: both wait
    new = Handle("/devices/dev1/messages/devicebound", "receiver")
    backend.open_link(new)
    names = [n for n, t, _ in events.log if t is new]
    assert names == ["link_opened", "delivery", "delivery"]  # granted already: at once
    bodies = sorted(m.body() for n, t, m in events.log if t is new and n == "delivery")
    assert bodies == [b"before", b"meanwhile"] and delivered.body() == b"before"
    for _, link, token_ in _tokens(events):
        if link is new:
            inbox.settle(token_, Outcome.ACCEPTED)
    assert sorted(acks) == [1, 2]


def _tokens(events: Events) -> list[tuple[str, Any, Any]]:
    """(name, link, token) of every delivery the inbox reported (the token is the 3rd arg)."""
    return [(entry[0], entry[1], entry[3]) for entry in events.full if entry[0] == "delivery"]
