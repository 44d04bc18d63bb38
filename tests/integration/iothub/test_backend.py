"""The ``iothub`` backend against a private TLS Mosquitto (hub-side paho client) and the IoT Hub
stand-in: self-auth, the CBS put-token path, renewal, expiry, settlement, addresses."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from bridge import Agent, Settings
from bridge.backends.iothub import sas, topics
from bridge.backends.iothub.backend import IoTHubBackend, live_backends
from bridge.testing.hub import C2DState
from tests.conftest import register_secret
from tests.integration.iothub.targets import StandinTarget, Target, TestDevice, TlsHub

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []

    def __call__(self, event: str, detail: str | None) -> None:
        self.events.append((event, detail))

    def names(self) -> list[str]:
        return [event for event, _ in self.events]

    def has(self, event: str) -> bool:
        return event in self.names()

    def detail(self, event: str) -> str:
        return next(d or "" for e, d in self.events if e == event)


def make_agent(target: Target, **iothub: Any) -> Agent:
    return Agent(Settings(backend="iothub", agent_id=f"iot-{uuid.uuid4().hex[:10]}",
                          iothub=target.iothub_settings(**iothub)))


def wait(agent: Agent, predicate: Any, what: str, timeout: float = TIMEOUT) -> None:
    assert agent.run_until(predicate, timeout), f"timed out waiting for {what}"


def backend_of(agent: Agent) -> IoTHubBackend:
    [backend] = live_backends(agent.settings.agent_id)
    return backend


class Cbs:
    """The legacy library's connect sequence: connection, auth session, $cbs receiver and
    sender; `put_token` returns the reply's properties."""

    def __init__(self, agent: Agent, target: Target) -> None:
        self.agent = agent
        self.conn_rec = Recorder()
        self.conn = agent.amqp.openconnection(target.url(), self.conn_rec)
        wait(agent, lambda: self.conn_rec.has("CONNECTION_OPEN") or
             self.conn_rec.has("CONNECTION_ERROR"), "CONNECTION_OPEN")
        assert self.conn_rec.names() == ["CONNECTION_OPEN"], self.conn_rec.events
        self.rec = Recorder()
        self.session = self.conn.opensession(self.rec)
        self.replies: list[dict[str, Any]] = []
        self.receiver = self.session.openreceiver("$cbs", self.rec, self._on_reply)
        self.sender = self.session.opensender("$cbs", self.rec)
        wait(agent, lambda: self.receiver.isopen() and self.sender.isopen(), "$cbs links")

    def _on_reply(self, deliveries: list[Any]) -> None:
        for delivery in deliveries:
            delivery.accept()
            self.replies.append(delivery.message().properties())

    def put_token(self, token: str, name: str, **props: Any) -> dict[str, Any]:
        request = {"operation": "put-token", "type": sas.LEGACY_CBS_TOKEN_TYPE, "name": name,
                   **props}
        count = len(self.replies)
        confirmed: list[bool] = []
        self.sender.createtransfer(self.agent.amqp.createmessage(token, request)).sendasync(
            lambda: confirmed.append(True))
        wait(self.agent, lambda: len(self.replies) > count and confirmed, "CBS reply")
        return self.replies[-1]

    def authorise(self, device: TestDevice, ttl: float = 3600) -> dict[str, Any]:
        reply = self.put_token(device.token(ttl), device.audience)
        assert reply == {"status-code": 200, "status-description": "OK"}, reply
        assert type(reply["status-code"]) is int
        return reply


class Links:
    """An event session with the D2C sender and the C2D receiver of *device*."""

    def __init__(self, agent: Agent, conn: Any, device: TestDevice) -> None:
        self.agent = agent
        self.rec = Recorder()
        self.session = conn.opensession(self.rec)
        self.messages: list[Any] = []
        self.held: list[Any] = []
        self.sender_rec, self.receiver_rec = Recorder(), Recorder()
        self.receiver = self.session.openreceiver(device.c2d_path, self.receiver_rec,
                                                  self._on_messages)
        self.sender = self.session.opensender(device.events_path, self.sender_rec)
        wait(agent, lambda: self.sender.isopen() and self.receiver.isopen(), "event links")

    def _on_messages(self, deliveries: list[Any]) -> None:
        for delivery in deliveries:
            self.messages.append(delivery.message())
            self.held.append(delivery)

    def send(self, message: Any) -> None:
        done: list[bool] = []
        self.sender.createtransfer(message).sendasync(lambda: done.append(True))
        wait(self.agent, lambda: bool(done), "sendasync callback")


# -- self-auth -----------------------------------------------------------------------------------


def test_self_auth_sends_telemetry_and_receives_c2d(target: Target) -> None:
    device = target.device()
    agent = make_agent(target, connection_string=device.connection_string)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(target.url(), rec)
        wait(agent, lambda: rec.events, "CONNECTION_OPEN")
        assert rec.names() == ["CONNECTION_OPEN"], rec.events
        links = Links(agent, conn, device)
        links.send(agent.amqp.createbinarymessage(b'{"t": 21.5}', {"n": 1, "ok": True,
                                                                   "where": "a b/c&d"}))
        [d2c] = target.wait_d2c(device)
        assert d2c.body == b'{"t": 21.5}'
        assert d2c.properties == {"n": "1", "ok": "true", "where": "a b/c&d"}
        target.send_c2d(device, b"\x00cmd", {"k": "v w", "empty": "", "bare": None})
        wait(agent, lambda: links.messages, "C2D message")
        message = links.messages[0]
        assert message.body() == b"\x00cmd" and message.kind == "data"
        assert message.properties() == {"k": "v w", "empty": "", "bare": ""}
        links.held[0].accept()
        if isinstance(target, StandinTarget):
            [c2d] = target.hub.c2d(device.device_id)
            target.hub.wait_c2d(c2d.message_id)
            assert target.hub.c2d(device.device_id)[0].state is C2DState.COMPLETED
    finally:
        agent.close()


def test_self_auth_with_a_wrong_key_is_a_connection_error(standin: StandinTarget) -> None:
    device = standin.device()
    wrong = TestDevice(device.device_id, register_secret("d3Jvbmcta2V5LXdyb25nLWtleQ=="),
                       device.host_name)
    agent = make_agent(standin, connection_string=wrong.connection_string)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(standin.url(), rec)
        wait(agent, lambda: rec.events, "CONNECTION_ERROR")
        assert rec.names() == ["CONNECTION_ERROR"]
        assert "amqp:unauthorized-access" in rec.detail("CONNECTION_ERROR")
        assert not conn.isopen()
    finally:
        agent.close()


def test_self_auth_renews_its_own_token_without_closing_anything(standin: StandinTarget) -> None:
    device = standin.device()
    agent = make_agent(standin, connection_string=device.connection_string, token_ttl=3)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(standin.url(), rec)
        wait(agent, lambda: rec.events, "CONNECTION_OPEN")
        links = Links(agent, conn, device)
        hub = standin.hub

        def logins() -> int:
            return sum(1 for a in hub.auth_attempts() if a.device_id == device.device_id and a.ok)

        hub.wait_for(lambda: logins() >= 2, 10)  # renewed ~0.6 s before each 3 s expiry
        links.send(agent.amqp.createmessage("after renewal"))
        standin.wait_d2c(device)
        assert rec.names() == ["CONNECTION_OPEN"]
        assert links.sender_rec.names() == ["SENDER_OPEN"]
        assert links.receiver_rec.names() == ["RECEIVER_OPEN"]
        assert backend_of(agent).stats.reconnects >= 1
    finally:
        agent.close()


# -- the CBS path ----------------------------------------------------------------------------------


def test_cbs_put_token_connects_and_answers_200_ok(target: Target) -> None:
    device = target.device()
    agent = make_agent(target)  # no credential: the agent's put-token authenticates
    try:
        cbs = Cbs(agent, target)
        backend = backend_of(agent)
        assert backend.driver.state == "idle"  # CONNECTION_OPEN came without MQTT
        cbs.authorise(device)
        assert backend.driver.state == "up"
        assert backend.identity is not None and backend.identity.device_id == device.device_id
        links = Links(agent, cbs.conn, device)
        links.send(agent.amqp.createmessage("hello", {"seq": 1}))
        [d2c] = target.wait_d2c(device)
        assert d2c.body == b"hello" and d2c.properties == {"seq": "1"}
        target.send_c2d(device, b"ping", {"a": "1"})
        wait(agent, lambda: links.messages, "C2D")
        assert links.messages[0].properties() == {"a": "1"}
        assert [e for e, _ in cbs.rec.events] == ["SESSION_OPEN", "RECEIVER_OPEN",
                                                  "SENDER_OPEN"]
    finally:
        agent.close()


def test_put_token_requests_are_validated(tls_hub: TlsHub) -> None:
    device, other = tls_hub.device(), tls_hub.device()
    agent = make_agent(tls_hub)
    try:
        cbs = Cbs(agent, tls_hub)
        token = device.token()
        cases = [
            (dict(operation="delete-token"), token, device.audience, 400, "put-token"),
            (dict(type="jwt"), token, device.audience, 400, "token type"),
            ({}, token, f"otherhub.example/devices/{device.device_id}", 401, "names hub"),
            ({}, token, "myhub.azure-devices.net/queues/x", 400, "audience must be"),
            ({}, "not a token", device.audience, 401, "SharedAccessSignature"),
            ({}, other.token(), device.audience, 401, "not for"),
            ({}, device.token(-10), device.audience, 401, "expired"),
        ]
        for props, body, name, status, text in cases:
            reply = cbs.put_token(body, name, **props)
            assert reply["status-code"] == status, (props, name, reply)
            assert text in reply["status-description"], reply
        assert backend_of(agent).driver.state == "idle"  # none of them connected
        cbs.authorise(device)
        reply = cbs.put_token(other.token(), other.audience)
        assert reply["status-code"] == 401 and "one identity" in reply["status-description"]
        for reply in cbs.replies:
            assert token not in str(reply)
    finally:
        agent.close()


def test_wrong_key_is_a_401_reply_and_waiting_links_fail(standin: StandinTarget) -> None:
    device = standin.device()
    agent = make_agent(standin)
    try:
        cbs = Cbs(agent, standin)
        early_rec = Recorder()
        session = cbs.conn.opensession()
        early = session.opensender(device.events_path, early_rec)  # waits for authorisation
        agent.run(timeout=0.2)
        assert not early.isopen() and early_rec.events == []
        forged = TestDevice(device.device_id, register_secret("Zm9yZ2VkLWtleS1mb3JnZWQta2V5"),
                            device.host_name)
        reply = cbs.put_token(forged.token(), device.audience)
        assert reply["status-code"] == 401
        assert "Not authorized" in reply["status-description"]
        wait(agent, lambda: early_rec.events, "SENDER_ERROR on the waiting sender")
        assert early_rec.names() == ["SENDER_ERROR"]
        assert "amqp:unauthorized-access" in early_rec.detail("SENDER_ERROR")
        assert cbs.conn.isopen() and cbs.sender.isopen() and cbs.receiver.isopen()
        cbs.authorise(device)  # the right token still works on the same connection
        links = Links(agent, cbs.conn, device)
        links.send(agent.amqp.createmessage("ok"))
        standin.wait_d2c(device)
    finally:
        agent.close()


def test_renewal_reconnects_and_resubscribes_without_closing_objects(target: Target) -> None:
    device = target.device()
    agent = make_agent(target)
    try:
        cbs = Cbs(agent, target)
        cbs.authorise(device, ttl=600)
        links = Links(agent, cbs.conn, device)
        backend = backend_of(agent)
        epoch = backend.driver.epoch
        renewed = device.token(1200)
        ok = {"status-code": 200, "status-description": "OK"}
        assert cbs.put_token(renewed, device.audience) == ok  # reconnects with the new token
        assert backend.driver.epoch == epoch + 1
        assert cbs.put_token(renewed, device.audience) == ok  # the same: no reconnect
        assert backend.driver.epoch == epoch + 1
        links.send(agent.amqp.createmessage("after"))
        assert target.wait_d2c(device)[-1].body == b"after"
        target.send_c2d(device, b"still subscribed")
        wait(agent, lambda: links.messages, "C2D after the renewal")
        assert links.sender_rec.names() == ["SENDER_OPEN"]
        assert links.receiver_rec.names() == ["RECEIVER_OPEN"]
        assert cbs.conn_rec.names() == ["CONNECTION_OPEN"]
    finally:
        agent.close()


def test_token_expiry_ends_event_links_and_a_new_put_token_resumes(target: Target) -> None:
    device = target.device()
    agent = make_agent(target)
    try:
        cbs = Cbs(agent, target)
        cbs.authorise(device, ttl=2)
        links = Links(agent, cbs.conn, device)
        wait(agent, lambda: links.sender_rec.has("SENDER_ERROR") and
             links.receiver_rec.has("RECEIVER_ERROR"), "errors at token expiry", timeout=8)
        sender_detail = links.sender_rec.detail("SENDER_ERROR")
        receiver_detail = links.receiver_rec.detail("RECEIVER_ERROR")
        assert "amqp:unauthorized-access" in sender_detail and "expired" in sender_detail
        assert "Token Invalid" in receiver_detail  # what the legacy library looks for
        assert not links.sender.isopen() and not links.receiver.isopen()
        assert cbs.conn.isopen() and links.session.isopen() and cbs.sender.isopen()
        assert cbs.conn_rec.names() == ["CONNECTION_OPEN"]
        # C2D sent while the device is away waits for the next receiver
        target.send_c2d(device, b"while expired", {"n": "1"})
        cbs.authorise(device)
        receiver_rec, got = Recorder(), []
        receiver = links.session.openreceiver(
            device.c2d_path, receiver_rec, lambda ds: got.extend(d.message().body() for d in ds))
        wait(agent, lambda: got, "the C2D message sent during the expiry")
        assert got == [b"while expired"] and receiver_rec.names() == ["RECEIVER_OPEN"]
        assert receiver.isopen()
        sender_rec = Recorder()
        sender = links.session.opensender(device.events_path, sender_rec)
        done: list[bool] = []
        sender.createtransfer(agent.amqp.createmessage("renewed")).sendasync(
            lambda: done.append(True))
        wait(agent, lambda: done, "a send after the renewal")
        assert target.wait_d2c(device)[-1].body == b"renewed"
    finally:
        agent.close()


# -- settlement ----------------------------------------------------------------------------------


def test_release_is_redelivered_by_the_bridge_and_reject_completes(
        target: Target, caplog: pytest.LogCaptureFixture) -> None:
    device = target.device()
    agent = make_agent(target, connection_string=device.connection_string, release_delay=0.05)
    caplog.set_level(logging.WARNING, logger="bridge.backends.iothub")
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(target.url(), rec)
        wait(agent, lambda: rec.events, "open")
        seen: list[bytes] = []

        def on_messages(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                body = delivery.message().body()
                seen.append(body)
                if body == b"release-me" and seen.count(body) == 1:
                    delivery.release()
                elif body == b"reject-me":
                    delivery.reject()
                else:
                    delivery.accept()

        session = conn.opensession()
        receiver = session.openreceiver(device.c2d_path, None, on_messages)
        wait(agent, receiver.isopen, "receiver")
        target.send_c2d(device, b"release-me")
        wait(agent, lambda: seen.count(b"release-me") == 2, "redelivery after release")
        target.send_c2d(device, b"reject-me")
        target.send_c2d(device, b"marker")
        wait(agent, lambda: b"marker" in seen, "marker")
        agent.run(timeout=0.3)
        assert seen.count(b"reject-me") == 1
        assert "cannot reject" in caplog.text
        if isinstance(target, StandinTarget):
            hub = target.hub
            hub.wait_for(lambda: all(m.state is C2DState.COMPLETED
                                     for m in hub.c2d(device.device_id)), 10)
            # the hub never saw an abandon or a reject: it counts completions only
            assert [m.delivery_count for m in hub.c2d(device.device_id)] == [0, 0, 0]
    finally:
        agent.close()


def test_release_complete_mode_acknowledges_at_once(
        tls_hub: TlsHub, caplog: pytest.LogCaptureFixture) -> None:
    device = tls_hub.device()
    agent = make_agent(tls_hub, connection_string=device.connection_string, release="complete")
    caplog.set_level(logging.WARNING, logger="bridge.backends.iothub")
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(tls_hub.url(), rec)
        wait(agent, lambda: rec.events, "open")
        seen: list[bytes] = []

        def on_messages(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                seen.append(delivery.message().body())
                delivery.release() if seen[-1] == b"once" else delivery.accept()

        receiver = conn.opensession().openreceiver(device.c2d_path, None, on_messages)
        wait(agent, receiver.isopen, "receiver")
        tls_hub.send_c2d(device, b"once")
        tls_hub.send_c2d(device, b"marker")
        wait(agent, lambda: b"marker" in seen, "marker")
        agent.run(timeout=0.3)
        assert seen == [b"once", b"marker"]
        assert "cannot abandon" in caplog.text
        stats = backend_of(agent).stats
        assert stats.released == 1 and stats.redelivered == 0
    finally:
        agent.close()


# -- addresses, sizes, modules, types, loss -------------------------------------------------


def test_unsupported_paths_are_refused_naming_the_supported_ones(tls_hub: TlsHub) -> None:
    device = tls_hub.device()
    agent = make_agent(tls_hub, connection_string=device.connection_string)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(tls_hub.url(), rec)
        wait(agent, lambda: rec.events, "open")
        session = conn.opensession()
        refused = [  # (role, path, condition): an event from the far end, never an exception
            ("sender", "/queue/telemetry", "amqp:not-found"),
            ("receiver", device.events_path, "amqp:not-found"),
            ("sender", device.c2d_path, "amqp:not-found"),
            ("receiver", f"/devices/{device.device_id}/twin", "amqp:not-found"),
            ("sender", "/devices/a+b/messages/events", "amqp:not-found"),
            ("sender", "/devices/someone-else/messages/events", "amqp:unauthorized-access"),
            ("sender", f"/devices/{device.device_id}/modules/m1/messages/events",
             "amqp:unauthorized-access"),
        ]
        links, recs = [], []
        for role, path, _ in refused:
            link_rec = Recorder()
            links.append(session.opensender(path, link_rec) if role == "sender"
                         else session.openreceiver(path, link_rec))
            recs.append(link_rec)
        wait(agent, lambda: all(r.events for r in recs), "an answer for every link")
        for (role, path, condition), link_rec in zip(refused, recs, strict=True):
            event = "SENDER_ERROR" if role == "sender" else "RECEIVER_ERROR"
            assert link_rec.names() == [event], (path, link_rec.events)
            assert link_rec.detail(event).startswith(condition), (path, link_rec.events)
            if condition == "amqp:not-found":
                assert "Supported: $cbs" in link_rec.detail(event)
        # the URI form the C SDK uses is accepted
        sender = session.opensender(f"amqps://{tls_hub.host_name}{device.events_path}")
        wait(agent, sender.isopen, "sender on the amqps:// form")
        assert not rec.has("CONNECTION_ERROR") and conn.isopen()
    finally:
        agent.close()


def test_a_d2c_message_over_256_kb_is_refused_before_sending(tls_hub: TlsHub) -> None:
    device = tls_hub.device()
    agent = make_agent(tls_hub, connection_string=device.connection_string)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(tls_hub.url(), rec)
        wait(agent, lambda: rec.events, "open")
        sender_rec = Recorder()
        sender = conn.opensession().opensender(device.events_path, sender_rec)
        wait(agent, sender.isopen, "sender")
        fired: list[bool] = []
        big = agent.amqp.createbinarymessage(b"x" * (topics.MAX_D2C_SIZE - 5), {"kind": "big"})
        sender.createtransfer(big).sendasync(lambda: fired.append(True))
        wait(agent, lambda: sender_rec.has("SENDER_ERROR"), "SENDER_ERROR")
        assert "amqp:link:message-size-exceeded" in sender_rec.detail("SENDER_ERROR")
        assert sender.isopen() and fired == []
        assert tls_hub.d2c(device) == []
    finally:
        agent.close()


def test_module_identity_outputs_and_inputs(tls_hub: TlsHub) -> None:
    device = tls_hub.device(module=True)
    agent = make_agent(tls_hub, connection_string=device.connection_string)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(tls_hub.url(), rec)
        wait(agent, lambda: rec.events, "open")
        session = conn.opensession()
        got: list[Any] = []
        # the C# spelling: a receiver on .../messages/events is the module's input
        receiver = session.openreceiver(device.events_path, None,
                                        lambda ds: got.extend(d.message() for d in ds))
        sender = session.opensender(device.events_path)
        wait(agent, lambda: receiver.isopen() and sender.isopen(), "module links")
        done: list[bool] = []
        sender.createtransfer(agent.amqp.createmessage("out", {"o": 1})).sendasync(
            lambda: done.append(True))
        [d2c] = tls_hub.wait_d2c(device)
        assert d2c.topic == (f"devices/{device.device_id}/modules/{device.module_id}/messages/"
                             f"events/o=1")
        tls_hub.send_input(device, "in1", b"input", {"p": "q"})
        wait(agent, lambda: got, "module input")
        assert got[0].body() == b"input" and got[0].properties() == {"p": "q"}
    finally:
        agent.close()


def test_type_hints_keep_types_and_body_kind_between_bridges(tls_hub: TlsHub) -> None:
    device = tls_hub.device()
    agent = make_agent(tls_hub, connection_string=device.connection_string, type_hints=True)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(tls_hub.url(), rec)
        wait(agent, lambda: rec.events, "open")
        links = Links(agent, conn, device)
        props = {"n": 7, "r": 0.25, "ok": False, "s": "7"}
        links.send(agent.amqp.createmessage("text", props))
        [d2c] = tls_hub.wait_d2c(device)
        assert d2c.properties["n"] == "7" and "x-amqp-types" in d2c.properties
        # the hub side sends the same bag back as C2D (bridge -> hub -> bridge)
        bag = d2c.topic.partition("/messages/events/")[2]
        tls_hub.publish(f"devices/{device.device_id}/messages/devicebound/{bag}", d2c.body)
        wait(agent, lambda: links.messages, "the echoed message")
        echoed = links.messages[0]
        assert echoed.body() == "text" and echoed.kind == "value"
        assert echoed.properties() == props
        assert {k: type(v) for k, v in echoed.properties().items()} == {
            "n": int, "r": float, "ok": bool, "s": str}
    finally:
        agent.close()


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_connection_loss_is_connection_error_or_reconnect(tls_hub: TlsHub, mode: str) -> None:
    device = tls_hub.device()
    agent = make_agent(tls_hub, connection_string=device.connection_string, reconnect=mode,
                       reconnect_min_delay=0.05)
    try:
        rec = Recorder()
        conn = agent.amqp.openconnection(tls_hub.url(), rec)
        wait(agent, lambda: rec.events, "open")
        links = Links(agent, conn, device)
        backend = backend_of(agent)
        tls_hub.kick(device.device_id)  # same client id: the broker drops ours
        if mode == "off":
            wait(agent, lambda: rec.has("CONNECTION_ERROR"), "CONNECTION_ERROR")
            assert "amqp:connection:forced" in rec.detail("CONNECTION_ERROR")
            assert links.sender_rec.names() == ["SENDER_OPEN", "SENDER_CLOSED"]
        else:
            wait(agent, lambda: backend.stats.reconnects >= 1, "reconnect")
            links.send(agent.amqp.createmessage("after the reconnect"))
            assert rec.names() == ["CONNECTION_OPEN"]
            assert links.sender_rec.names() == ["SENDER_OPEN"]
    finally:
        agent.close()
