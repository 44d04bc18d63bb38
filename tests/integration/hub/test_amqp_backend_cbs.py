"""The bridge's ``amqp`` backend runs the legacy AzureIoTHub CBS flow against the stand-in.

`LegacyIoTHubClient` is the Electric Imp AzureIoTHub v2.2.0 library's connect / send / receive
logic (spec imp-amqp-api §5), written against the imp AMQP API the bridge provides: connection
-> auth session -> ``$cbs`` receiver -> ``$cbs`` sender -> put-token -> event session -> event
sender -> telemetry, plus the device-bound receiver and the ``unauthorized-access`` renewal.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge import Agent, Settings
from bridge.backends.iothub import sas
from bridge.testing.hub import C2DState, Hub, HubDevice, Surface

pytestmark = pytest.mark.integration

TIMEOUT = 15.0


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class LegacyIoTHubClient:
    """The library's state machine, event by event (what ported agent code does)."""

    def __init__(self, agent: Agent, device: HubDevice, key: str, ttl: int = 3600) -> None:
        self.amqp = agent.amqp
        self.device = device
        self.key = key
        self.ttl = ttl
        self.conn: Any = None
        self.auth_session: Any = None
        self.auth_receiver: Any = None
        self.auth_sender: Any = None
        self.event_session: Any = None
        self.event_sender: Any = None
        self.event_receiver: Any = None
        self.connected: str | None = None  # None until onConnected: "" ok, else the error
        self.sender_token_error = False
        self.log: list[str] = []
        self.received: list[Any] = []
        self.on_delivery: Callable[[Any], None] = lambda d: d.accept()

    # -- connect ------------------------------------------------------------------------------
    def connect(self) -> None:
        self.conn = self.amqp.openconnection(f"amqps://{self.device.host_name}",
                                             self._conn_handler)

    def _conn_handler(self, event: str, detail: str | None) -> None:
        self.log.append(f"connection {event} {detail or ''}".strip())
        if event == "CONNECTION_OPEN":
            self.auth_session = self.conn.opensession(self._auth_session_handler)
        elif event == "CONNECTION_ERROR" and self.connected is None:
            self.connected = detail or event

    def _auth_session_handler(self, event: str, detail: str | None) -> None:
        if event == "SESSION_OPEN":
            self.auth_receiver = self.auth_session.openreceiver(
                "$cbs", self._auth_receiver_handler, self._auth_replies)

    def _auth_receiver_handler(self, event: str, detail: str | None) -> None:
        if event == "RECEIVER_OPEN":
            self.auth_sender = self.auth_session.opensender("$cbs", self._auth_sender_handler)

    def _auth_sender_handler(self, event: str, detail: str | None) -> None:
        if event == "SENDER_OPEN":
            self.put_token()

    def put_token(self) -> None:
        host, device_id = self.device.host_name, self.device.device_id
        token = sas.legacy_device_token(host, device_id, self.key, int(time.time()) + self.ttl)
        message = self.amqp.createmessage(token, {"operation": "put-token",
                                                  "type": "azure-devices.net:sastoken",
                                                  "name": f"{host}/devices/{device_id}"})
        self.auth_sender.createtransfer(message).sendasync(lambda: None)

    def _auth_replies(self, deliveries: list[Any]) -> None:
        authorised = False
        while deliveries:
            delivery = deliveries.pop(0)
            delivery.accept()
            props = delivery.message().properties()
            self.log.append(f"cbs {props.get('status-code')} {props.get('status-description')}")
            if props.get("status-code") == 200 and props.get("status-description") == "OK":
                authorised = True
                if self.sender_token_error:
                    self.sender_token_error = False
                    self.event_sender = self.event_session.opensender(
                        self._events_path, self._event_sender_handler)
                elif self.event_session is None:
                    self.event_session = self.conn.opensession(self._event_session_handler)
        if self.connected is None and not authorised:
            self.connected = "Not authorised with Azure IOT Hub"

    def _event_session_handler(self, event: str, detail: str | None) -> None:
        if event == "SESSION_OPEN":
            self.event_sender = self.event_session.opensender(self._events_path,
                                                              self._event_sender_handler)

    def _event_sender_handler(self, event: str, detail: str | None) -> None:
        self.log.append(f"event sender {event} {detail or ''}".strip())
        if event == "SENDER_OPEN" and self.connected is None:
            self.connected = ""
        elif event == "SENDER_ERROR" and detail and "unauthorized-access" in detail:
            self.sender_token_error = True
            self.put_token()  # the library renews on the existing $cbs sender

    @property
    def _events_path(self) -> str:
        return f"/devices/{self.device.device_id}/messages/events"

    # -- data path ----------------------------------------------------------------------------
    def send_event(self, body: dict[str, Any], props: dict[str, Any],
                   done: Callable[[], None]) -> None:
        message = self.amqp.createbinarymessage(json.dumps(body), props)
        self.event_sender.createtransfer(message).sendasync(done)

    def receive(self) -> None:
        self.event_receiver = self.event_session.openreceiver(
            f"/devices/{self.device.device_id}/messages/devicebound",
            lambda event, detail: self.log.append(f"event receiver {event}"), self._deliveries)

    def _deliveries(self, deliveries: list[Any]) -> None:
        while deliveries:
            delivery = deliveries.pop(0)
            self.received.append(delivery.message().body())
            self.on_delivery(delivery)


@pytest.fixture
def agent(iothub_standin: Hub) -> Iterator[Agent]:
    agent = Agent(Settings(backend="amqp", amqp={"url": iothub_standin.amqp_url,
                                                 "ca_file": str(iothub_standin.ca_file)}))
    yield agent
    agent.close()


def wait(agent: Agent, predicate: Callable[[], Any], what: str) -> None:
    assert agent.run_until(lambda: bool(predicate()), TIMEOUT), f"timed out waiting for {what}"


def test_legacy_cbs_flow_sends_telemetry_and_settles_commands(agent: Agent, device: HubDevice,
                                                              iothub_standin: Hub) -> None:
    client = LegacyIoTHubClient(agent, device, device.key)
    client.connect()
    wait(agent, lambda: client.connected is not None, "onConnected")
    assert client.connected == "", client.log
    assert "cbs 200 OK" in client.log

    confirmed: list[int] = []
    for seq in (1, 2):
        client.send_event({"seq": seq, "temperature": 21.5}, {"seq": seq, "unit": "celsius"},
                          lambda seq=seq: confirmed.append(seq))
    wait(agent, lambda: confirmed == [1, 2], "both sends confirmed")
    first, second = device.wait_d2c(2)
    assert first.surface is Surface.AMQP
    assert json.loads(first.body) == {"seq": 1, "temperature": 21.5}
    assert first.system["body-section"] == "data"  # createbinarymessage -> data section
    assert first.properties == {"seq": 1, "unit": "celsius"}
    assert second.properties["seq"] == 2

    # commands: complete, abandon (release: redelivered), reject
    decisions = {"ok": "accept", "later": "release", "bad": "reject"}
    abandoned: list[str] = []

    def decide(delivery: Any) -> None:
        body = delivery.message().body()
        text = body.decode() if isinstance(body, bytes) else body
        if decisions[text] == "release" and not abandoned:
            abandoned.append(text)
            delivery.release()
        elif decisions[text] == "reject":
            delivery.reject()
        else:
            delivery.accept()

    client.on_delivery = decide
    # dispatch on a background thread from here on, and wait on the hub's side
    agent.start()
    agent.call_soon(client.receive)
    sent = {text: device.send_c2d(text.encode()) for text in decisions}
    states = {text: iothub_standin.wait_c2d(m.message_id, timeout=TIMEOUT)
              for text, m in sent.items()}
    assert states["ok"].state is C2DState.COMPLETED
    assert states["later"].state is C2DState.COMPLETED
    assert states["later"].delivery_count == 1
    assert states["bad"].dead_letter_reason == "rejected"
    assert sorted(client.received) == [b"bad", b"later", b"later", b"ok"]


def test_legacy_flow_reports_a_wrong_key_as_not_authorised(agent: Agent,
                                                           device: HubDevice) -> None:
    client = LegacyIoTHubClient(agent, device, random_key())
    client.connect()
    wait(agent, lambda: client.connected is not None, "onConnected")
    assert client.connected == "Not authorised with Azure IOT Hub"
    assert any(line.startswith("cbs 401") for line in client.log), client.log


def test_legacy_flow_renews_after_unauthorized_access(agent: Agent, device: HubDevice) -> None:
    client = LegacyIoTHubClient(agent, device, device.key, ttl=2)
    client.connect()
    wait(agent, lambda: client.connected is not None, "onConnected")
    assert client.connected == ""
    client.ttl = 3600  # the renewal's token lives long
    # the hub detaches the event sender when the 2 s token expires; the library renews
    wait(agent, lambda: any("SENDER_ERROR" in line for line in client.log), "SENDER_ERROR")
    error = next(line for line in client.log if "SENDER_ERROR" in line)
    assert "amqp:unauthorized-access" in error and "Token Invalid" in error
    wait(agent, lambda: client.log.count("event sender SENDER_OPEN") == 2, "sender reopened")
    done: list[bool] = []
    client.send_event({"after": "renewal"}, {}, lambda: done.append(True))
    wait(agent, lambda: done, "send after renewal confirmed")
    assert json.loads(device.wait_d2c(1)[0].body) == {"after": "renewal"}



def test_a_clean_put_token_run_logs_no_warning(agent: Agent, device: HubDevice,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """The stand-in's CBS replies carry their status in properties and no body (as a CBS reply
    must): that is not a malformed message."""
    caplog.set_level(logging.WARNING, logger="bridge")
    client = LegacyIoTHubClient(agent, device, device.key)
    client.connect()
    wait(agent, lambda: client.connected is not None, "onConnected")
    assert client.connected == "", client.log
    confirmed: list[int] = []
    client.send_event({"seq": 1}, {"seq": 1}, lambda: confirmed.append(1))
    wait(agent, lambda: confirmed == [1], "the send confirmed")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            and r.name.startswith("bridge")] == []


def test_devices_multiplexed_on_one_connection_each_authorise_with_their_own_token(
        iothub_standin: Hub) -> None:
    """IoT Hub's gateway pattern (``amqp.multiplex``): five device agents on one physical
    connection, each with its own ``$cbs`` put-token; a wrong key fails only its own device."""
    devices = [iothub_standin.register_device(f"mux-{n}-{os.urandom(4).hex()}") for n in range(5)]
    settings = Settings(backend="amqp", amqp={"url": iothub_standin.amqp_url,
                                              "ca_file": str(iothub_standin.ca_file),
                                              "multiplex": 10})
    agents = [Agent(settings.model_copy(update={"agent_id": d.device_id})) for d in devices]
    connections_before = iothub_standin.counters().get("amqp.connections", 0)
    clients = [LegacyIoTHubClient(agent, device, device.key if n else random_key())
               for n, (agent, device) in enumerate(zip(agents, devices, strict=True))]
    try:
        for client in clients:
            client.connect()
        for agent, client in zip(agents, clients, strict=True):
            wait(agent, lambda c=client: c.connected is not None, "onConnected")
        assert clients[0].connected == "Not authorised with Azure IOT Hub"
        assert [c.connected for c in clients[1:]] == [""] * 4
        confirmed: list[str] = []
        for agent, client, device in zip(agents[1:], clients[1:], devices[1:], strict=True):
            client.send_event({"from": device.device_id}, {},
                              lambda d=device.device_id: confirmed.append(d))
            wait(agent, lambda d=device.device_id: d in confirmed, "the send confirmed")
        for device in devices[1:]:
            (event,) = device.wait_d2c(1)
            assert json.loads(event.body) == {"from": device.device_id}
        assert iothub_standin.counters()["amqp.connections"] - connections_before == 1
    finally:
        for agent in agents:
            agent.close()
