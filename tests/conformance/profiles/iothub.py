"""Conformance profile of the ``iothub`` backend: a private TLS Mosquitto playing IoT Hub with an
IoT Edge-style echo route.

IoT Hub has no address that one identity can both send to and receive from, except a module's
own: ``/devices/{d}/modules/{m}/messages/events`` is the module's output as a sender and its
input as a receiver (the C# SDK's spelling). So every agent gets a fresh *module* identity
(self-auth with a key; `address` is that identity's path, whatever the label), and the hub side
routes each module output back to the module's input ``echo``, as an IoT Edge route
``FROM /messages/modules/m/outputs/* INTO BrokeredEndpoint("/modules/m/inputs/echo")`` does.
Property types and body kinds travel with the opt-in ``iothub.type_hints`` (bridge to bridge);
what hints-off gives a real service is covered by tests/integration/iothub/test_backend.py.

What IoT Hub cannot do is pinned below (docs/backends/iothub.md, "Conformance deviations").
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from bridge import Agent, Settings
from bridge.backends.iothub import sas
from bridge.backends.iothub.backend import live_backends
from bridge.backends.iothub.topics import route_for_path
from tests.integration.iothub.targets import TestDevice, TlsHub

from ..harness import Ctx, pin_cancel_cannot_withdraw
from .base import BackendProfile

# case -> (payload, application properties) a foreign application could put on a module input
_INJECTED: dict[str, tuple[bytes, dict[str, str | None]]] = {
    "unconvertible_property": (b"x", {"x-amqp-body": "value", "ok": "1",
                                      "bad": "6f0c5d1e-0000-4000-8000-000000000000",
                                      "x-amqp-types": '{"ok":"int","bad":"uuid"}'}),
    "unsupported_body": (uuid.uuid4().bytes, {"x-amqp-body": "uuid"}),
    "list_body": (b'[1,"a"]', {"x-amqp-body": "json"}),
    "map_body": (b'{"k":1}', {"x-amqp-body": "json"}),
    "symbol_body": (b'"sym"', {"x-amqp-body": "json"}),
}


class IoTHubProfile(BackendProfile):
    name = "iothub"
    timeout = 10.0

    def __init__(self) -> None:
        self._hub: TlsHub | None = None
        self._lock = threading.Lock()
        self._last: TestDevice | None = None

    # -- the broker ------------------------------------------------------------------------------
    def hub(self) -> TlsHub:
        with self._lock:
            if self._hub is None:
                directory = Path(tempfile.mkdtemp(prefix="iothub-conformance-"))
                hub = TlsHub(directory).start()
                hub.echo = True
                weakref.finalize(self, hub.stop)
                self._hub = hub
            return self._hub

    def available(self) -> str | None:
        try:
            self.hub()
        except Exception as exc:  # mosquitto or openssl missing
            return f"private TLS Mosquitto: {exc}"
        return None

    # -- agents and addresses --------------------------------------------------------------------
    def settings(self, device: TestDevice | None = None, **overrides: Any) -> Settings:
        hub = self.hub()
        extra = dict(overrides.pop("iothub", {}))
        if device is not None:
            extra.setdefault("connection_string", device.connection_string)
        iothub = hub.iothub_settings(type_hints=True, **extra)
        overrides.setdefault("agent_id", f"conf-{uuid.uuid4().hex[:12]}")
        return Settings(backend=self.backend_name, iothub=iothub, **overrides)

    def agent(self, **overrides: Any) -> Agent:
        device = self.hub().device(module=True)
        self._last = device
        return Agent(self.settings(device, **overrides))

    def url(self) -> str:
        return self.hub().url()

    def anonymous_url(self) -> str:
        return self.hub().url()

    def address(self, label: str) -> str:
        """The module's own path (sender: its output; receiver: its input) of the agent made
        last; *label* cannot be part of an IoT Hub path."""
        assert self._last is not None, "an agent must exist before its address"
        return self._last.events_path

    # -- fault hooks -----------------------------------------------------------------------------
    def failing_open(self) -> tuple[Settings, str]:
        device = self.hub().device(module=True)
        return self.settings(device, iothub={"port": 1}), self.url()  # nothing listens there

    def drop_connection(self, agent: Agent) -> None:
        backends = live_backends(agent.settings.agent_id)
        assert backends, "the agent has no live IoT Hub connection"
        for backend in backends:
            assert backend.identity is not None
            self.hub().kick(backend.identity.client_id)  # one connection per identity

    def inject(self, agent: Agent, path: str, case: str) -> None:
        payload, properties = _INJECTED[case]
        assert self._last is not None and path == self._last.events_path
        self.hub().send_input(self._last, "foreign", payload, properties)

    def attached_receivers(self, agent: Agent, path: str) -> int:
        """Asks the broker (its own log): does the connection of this agent's identity hold the
        subscription a receiver on *path* needs? (With IoT Hub's persistent session a dropped
        connection keeps its subscription on the hub for later, so what counts here is a live
        connection holding it.)"""
        assert self._last is not None
        topic_filter = route_for_path("receiver", path).topic
        client_id = f"{self._last.device_id}/{self._last.module_id}"
        return int(topic_filter in self.hub().subscriptions_of(client_id))

    # -- deviations ------------------------------------------------------------------------------
    def pin_deviation(self, n: int, ctx: Ctx) -> None:
        {30: self._pin_30, 37: self._pin_37, 39: pin_cancel_cannot_withdraw,
         45: self._pin_45, 47: self._pin_47}[n](ctx)

    def _pin_30(self, ctx: Ctx) -> None:
        agent = ctx.agent()
        pipe = ctx.pipe(agent, "unconvertible")
        self.inject(agent, pipe.path, "unconvertible_property")
        ctx.wait(agent, lambda: len(pipe.messages) == 1, "injected message")
        props = pipe.messages[0].properties()
        assert props == {"ok": "1", "bad": "6f0c5d1e-0000-4000-8000-000000000000",
                         "x-amqp-types": '{"ok":"int","bad":"uuid"}'}

    def _pin_37(self, ctx: Ctx) -> None:
        """Both transfers complete with nobody subscribed; a later receiver gets neither."""
        agent = ctx.agent()
        conn, _ = ctx.connect(agent)
        session, _ = ctx.session(agent, conn)
        path = self.address("credit37")
        sender, _ = ctx.sender(agent, session, path)
        done: list[str] = []
        echoed = self.hub().echoed
        for body in ("first", "second"):
            sender.createtransfer(agent.amqp.createmessage(body)).sendasync(
                lambda b=body: done.append(b))
        ctx.wait(agent, lambda: done == ["first", "second"], "both confirmed without credit")
        # the echo route has passed both on (to nobody) before the receiver subscribes
        self.hub().wait_echoed(echoed + 2)
        received: list[Any] = []
        receiver, _ = ctx.receiver(agent, session, path, lambda ds: received.extend(ds))
        ctx.send(agent, sender, agent.amqp.createmessage("marker"))
        ctx.wait(agent, lambda: len(received) == 1, "marker")
        assert [d.message().body() for d in received] == ["marker"] and receiver.isopen()

    def _cbs_agent(self, ctx: Ctx) -> tuple[Agent, TestDevice]:
        """An agent without credentials: its put-token authenticates (the legacy flow)."""
        device = self.hub().device(module=True)
        self._last = device
        agent = Agent(self.settings())
        ctx.agents.append(agent)
        return agent, device

    def _put_token(self, ctx: Ctx, agent: Agent, session: Any, token: str,
                   device: TestDevice) -> dict[str, Any]:
        replies: list[dict[str, Any]] = []

        def on_reply(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                delivery.accept()
                replies.append(delivery.message().properties())

        receiver, _ = ctx.receiver(agent, session, "$cbs", on_reply)
        sender, _ = ctx.sender(agent, session, "$cbs")
        sender.createtransfer(agent.amqp.createmessage(token, {
            "operation": "put-token", "type": "azure-devices.net:sastoken",
            "name": device.audience})).sendasync()
        ctx.wait(agent, lambda: bool(replies), "CBS reply")
        assert receiver.isopen()
        return replies[0]

    def _pin_45(self, ctx: Ctx) -> None:
        agent, device = self._cbs_agent(ctx)
        conn, conn_rec = ctx.connect(agent, url=self.anonymous_url())
        session, _ = ctx.session(agent, conn)
        expiry = int(time.time()) + 2
        token = sas.generate_token(device.audience, device.key, expiry)
        assert self._put_token(ctx, agent, session, token, device)["status-code"] == 200
        sender, rec = ctx.sender(agent, session, device.events_path)
        ctx.wait(agent, lambda: rec.has("SENDER_ERROR"), "SENDER_ERROR at token expiry",
                 timeout=8)
        assert "amqp:unauthorized-access" in (rec.detail("SENDER_ERROR") or "")
        assert sender.isopen() is False
        assert conn.isopen() and session.isopen() and conn_rec.names() == ["CONNECTION_OPEN"]

    def _pin_47(self, ctx: Ctx) -> None:
        agent, device = self._cbs_agent(ctx)
        conn, _ = ctx.connect(agent, url=self.anonymous_url())
        session, _ = ctx.session(agent, conn)
        bad = self._put_token(ctx, agent, session, "SharedAccessSignature sr=x&sig=y&se=1",
                              device)
        assert bad["status-code"] == 401 and "sig" in bad["status-description"]
        good = self._put_token(ctx, agent, session, device.token(), device)
        assert good == {"status-code": 200, "status-description": "OK"}
        assert isinstance(good["status-code"], int)


PROFILE = IoTHubProfile()
