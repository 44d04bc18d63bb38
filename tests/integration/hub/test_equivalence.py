"""Cross-protocol equivalence: the ported legacy AzureIoTHub flow on both protocols.

`examples/azure_iothub_agent.py` (the AzureIoTHub v2.x AMQP client, ported line by line) runs
unchanged twice against one IoT Hub stand-in: on ``amqp`` against its AMQP surface (CBS put-token
on ``$cbs``) and on ``iothub`` against its MQTT surface (the put-token becomes the MQTT password).
Both runs must give the hub the same D2C bodies and application properties, hand the agent the
same C2D messages, and produce the same lifecycle events — except the protocol-forced differences
listed in docs/semantics.md, which this test names explicitly.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import Agent, Settings
from bridge.testing.hub import Hub

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "azure_iothub_agent.py"
EVENTS = 3
C2D = [(b'{"action": "set-interval", "seconds": 30}', {"command-id": "1", "action": "complete"}),
       (b"reboot", {"command-id": "2", "urgent": "yes"})]


class _Recorder:
    """Wraps the amqp objects the script sees and logs (object, event) and received messages."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.received: list[tuple[Any, dict[str, Any]]] = []
        self._names: dict[str, int] = {}

    def label(self, kind: str, path: str | None = None) -> str:
        return f"{kind}:{path}" if path else kind

    def wrap_callback(self, label: str, callback: Any) -> Any:
        if callback is None:
            return None

        def recorded(event: str, detail: str | None) -> None:
            self.events.append((label, event))
            callback(event, detail)
        return recorded

    def wrap_messages(self, label: str, callback: Any) -> Any:
        if callback is None:
            return None

        def recorded(deliveries: list[Any]) -> None:
            if label.endswith("messages/devicebound"):
                for delivery in deliveries:
                    message = delivery.message()
                    self.received.append((message.body(), message.properties()))
            callback(deliveries)
        return recorded


class _Proxy:
    def __init__(self, real: Any, recorder: _Recorder) -> None:
        self._real = real
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Session(_Proxy):
    def opensender(self, path: str, callback: Any = None) -> Any:
        label = self._recorder.label("sender", path)
        return self._real.opensender(path, self._recorder.wrap_callback(label, callback))

    def openreceiver(self, path: str, eventCallback: Any = None,
                     messageCallback: Any = None) -> Any:
        label = self._recorder.label("receiver", path)
        return self._real.openreceiver(path, self._recorder.wrap_callback(label, eventCallback),
                                       self._recorder.wrap_messages(label, messageCallback))


class _Connection(_Proxy):
    def opensession(self, callback: Any = None) -> Any:
        return _Session(self._real.opensession(
            self._recorder.wrap_callback("session", callback)), self._recorder)


class _Amqp(_Proxy):
    def openconnection(self, url: str, callback: Any) -> Any:
        return _Connection(self._real.openconnection(
            url, self._recorder.wrap_callback("connection", callback)), self._recorder)


def _run_example(settings: Settings, connection_string: str,
                 monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    monkeypatch.setenv("IOTHUB_CONNECTION_STRING", connection_string)
    monkeypatch.setenv("EVENT_COUNT", str(EVENTS))
    monkeypatch.setenv("EVENT_INTERVAL", "0.05")
    monkeypatch.setenv("C2D_COUNT", str(len(C2D)))
    recorder = _Recorder()
    agent = Agent(settings)
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(EXAMPLE),
                                 "amqp": _Amqp(agent.amqp, recorder), "imp": agent.imp,
                                 "server": agent.server, "agent": agent}
    try:
        exec(compile(EXAMPLE.read_text(), str(EXAMPLE), "exec"), namespace)
        finished = agent.run_until(lambda: namespace["state"]["finished"], 60)
        assert finished, f"the legacy flow did not finish on {settings.backend}: " \
                         f"{namespace['state']} events={recorder.events}"
        agent.run(timeout=0.3)  # let the disconnect's events arrive
    finally:
        agent.close()
    return recorder


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with Hub(directory=tmp_path_factory.mktemp("equivalence-hub")) as running:
        yield running


def _d2c_view(hub: Hub, device_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    view = []
    for message in hub.wait_d2c(device_id, count=EVENTS, timeout=20):
        body = json.loads(bytes(message.body).decode())
        body.pop("ts", None)  # the send time differs from run to run
        view.append((body, dict(message.properties)))
    return view


def test_the_legacy_flow_behaves_the_same_on_amqp_and_on_mqtt(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: dict[str, tuple[_Recorder, list[Any]]] = {}
    for backend in ("amqp", "iothub"):
        device = hub.register_device(f"equiv-{backend}-{uuid.uuid4().hex[:6]}")
        for body, properties in C2D:  # queued by the hub until the device listens
            device.send_c2d(body, properties)
        if backend == "amqp":
            settings = Settings(backend="amqp", agent_id=f"equiv-amqp-{os.getpid()}",
                                amqp={"url": hub.amqp_url, "ca_file": str(hub.ca_file)})
        else:
            settings = Settings(backend="iothub", agent_id=f"equiv-mqtt-{os.getpid()}",
                                iothub={"gateway_host": "localhost", "port": hub.mqtt_port,
                                        "ca_file": str(hub.ca_file)})
        recorder = _run_example(settings, device.connection_string, monkeypatch)
        runs[backend] = (recorder, _d2c_view(hub, device.device_id))

    amqp_recorder, amqp_d2c = runs["amqp"]
    mqtt_recorder, mqtt_d2c = runs["iothub"]
    # D2C: same bodies and application properties, whichever surface they came in on. Forced
    # difference: an MQTT property bag carries strings, so the hub sees seq=1 over AMQP and
    # seq="1" over MQTT (docs/semantics.md, "IoT Hub: AMQP vs MQTT").
    assert [(body, _as_text(props)) for body, props in amqp_d2c] == \
        [(body, _as_text(props)) for body, props in mqtt_d2c]
    assert amqp_d2c[0][1]["seq"] == 1 and mqtt_d2c[0][1]["seq"] == "1"
    assert [body["seq"] for body, _ in amqp_d2c] == list(range(1, EVENTS + 1))
    assert all(props.get("kind") == "reading" for _, props in amqp_d2c)
    # C2D: the same messages reach the agent's callbacks, bodies and application properties
    def c2d_view(recorder: _Recorder) -> list[tuple[bytes, dict[str, Any]]]:
        return [(bytes(body), {k: v for k, v in props.items() if not k.startswith("iothub-")})
                for body, props in recorder.received]
    assert c2d_view(amqp_recorder) == c2d_view(mqtt_recorder)
    assert [body for body, _ in c2d_view(amqp_recorder)] == [body for body, _ in C2D]
    # Lifecycle: the same events on the same objects, in the same order
    assert _normalised(amqp_recorder.events) == _normalised(mqtt_recorder.events)
    assert ("sender:$cbs", "SENDER_OPEN") in amqp_recorder.events
    assert ("receiver:$cbs", "RECEIVER_OPEN") in mqtt_recorder.events


def _as_text(properties: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in properties.items()}


def _normalised(events: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Device ids differ per run; the object kinds, paths' shapes and events must not."""
    out = []
    for label, event in events:
        parts = label.split("/")
        if len(parts) > 2 and parts[1] == "devices":
            parts[2] = "<device>"
        out.append(("/".join(parts), event))
    return out
