"""Conformance profile of the MQTT backend against the shared Mosquitto on 127.0.0.1:1883.

Faults are produced on the real broker: a closed port for a failed open, a raw client taking
over the client id (Mosquitto drops the client that had it) for a lost connection, a private
broker that refuses a publish, and raw MQTT 5 publishes for what only a foreign application
could send. What MQTT cannot do at all is a documented deviation (docs/semantics.md), pinned
below.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bridge import Agent, Settings
from bridge.backends.mqtt.backend import live_backends
from bridge.backends.mqtt.mapping import compile_rules, map_path
from tests.support.mosquitto import Mosquitto

from ..harness import Ctx, pin_cancel_cannot_withdraw
from .base import BackendProfile

HOST, PORT = "127.0.0.1", 1883

# case -> (payload, user properties) as a foreign MQTT 5 application would publish them
_INJECTED: dict[str, tuple[bytes, list[tuple[str, str]]]] = {
    "unconvertible_property": (b"x", [("x-amqp-body", "value"), ("ok", "1"),
                                      ("bad", "6f0c5d1e-0000-4000-8000-000000000000"),
                                      ("x-amqp-types", '{"ok":"int","bad":"uuid"}')]),
    "unsupported_body": (uuid.uuid4().bytes, [("x-amqp-body", "uuid")]),
    "list_body": (b'[1,"a"]', [("x-amqp-body", "json")]),
    "map_body": (b'{"k":1}', [("x-amqp-body", "json")]),
    "symbol_body": (b'"sym"', [("x-amqp-body", "json")]),
}


def _topic(agent: Agent, path: str) -> str:
    """The topic the agent's settings map *path* to (the same pure function the backend uses)."""
    mqtt = agent.settings.mqtt
    return map_path(path, "sender", compile_rules(mqtt.topic_rules),
                    reserved_prefix=mqtt.reserved_prefix).topic


class RawClient:
    """A plain paho MQTT 5 client on the profile's broker, used synchronously."""

    def __init__(self, client_id: str, host: str = HOST, port: int = PORT) -> None:
        self.connected = threading.Event()
        self.acks: dict[int, Any] = {}
        self.acked = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, u, f, rc, p: self.connected.set()
        self.client.on_publish = self._on_publish
        self.client.connect(host, port)
        self.client.loop_start()
        if not self.connected.wait(10):
            self.close()
            raise RuntimeError(f"raw MQTT client {client_id!r} could not connect")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self.acked:
            self.acks[mid] = reason
            self.acked.notify_all()

    def publish(self, topic: str, payload: bytes, user_properties: list[tuple[str, str]],
                timeout: float = 10.0) -> Any:
        """Publish at QoS 1 and return the PUBACK reason code."""
        props = Properties(PacketTypes.PUBLISH)
        if user_properties:
            props.UserProperty = user_properties
        info = self.client.publish(topic, payload, qos=1, properties=props)
        with self.acked:
            if not self.acked.wait_for(lambda: info.mid in self.acks, timeout):
                raise TimeoutError(f"no PUBACK for the publish to {topic!r}")
            return self.acks.pop(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class MQTTProfile(BackendProfile):
    name = "mqtt"
    timeout = 10.0

    def available(self) -> str | None:
        try:
            with socket.create_connection((HOST, PORT), timeout=2):
                return None
        except OSError as exc:
            return f"Mosquitto on {HOST}:{PORT}: {exc}"

    def settings(self, **overrides: Any) -> Settings:
        # Mosquitto disconnects a client whose id is reused: every agent gets its own id.
        overrides.setdefault("agent_id", f"conf-{uuid.uuid4().hex[:12]}")
        mqtt = {"url": f"mqtt://{HOST}:{PORT}", **overrides.pop("mqtt", {})}
        return Settings(backend=self.backend_name, mqtt=mqtt, **overrides)

    # -- fault hooks -----------------------------------------------------------------------------
    def failing_open(self) -> tuple[Settings, str]:
        # port 1 on loopback: nothing listens, the connect is refused at once
        return self.settings(mqtt={"url": f"mqtt://{HOST}:1"}), self.url()

    def drop_connection(self, agent: Agent) -> None:
        backends = live_backends(agent.settings.agent_id)
        assert backends, "the agent has no live MQTT connection"
        for backend in backends:
            # a second client with the same id: Mosquitto drops ours
            RawClient(backend.client_id).close()

    def inject(self, agent: Agent, path: str, case: str) -> None:
        payload, user_properties = _INJECTED[case]
        topic = _topic(agent, path)
        raw = RawClient(f"inject-{uuid.uuid4().hex[:12]}")
        try:
            raw.publish(topic, payload, user_properties)
        finally:
            raw.close()

    def attached_receivers(self, agent: Agent, path: str) -> int:
        """Asks the broker itself: an MQTT 5 PUBACK says 0x10 "No matching subscribers" when
        nobody is subscribed (the probe is delivered otherwise, and auto-accepted)."""
        topic = _topic(agent, path)
        raw = RawClient(f"probe-{uuid.uuid4().hex[:12]}")
        try:
            reason = raw.publish(topic, b"probe", [])
        finally:
            raw.close()
        return 0 if reason.value == 0x10 else 1

    # -- deviations ------------------------------------------------------------------------------
    def pin_deviation(self, n: int, ctx: Ctx) -> None:
        {37: self._pin_37, 39: pin_cancel_cannot_withdraw, 45: self._pin_45}[n](ctx)

    def _pin_37(self, ctx: Ctx) -> None:
        """Both transfers complete with nobody subscribed; a later receiver gets neither."""
        agent = ctx.agent()
        conn, _ = ctx.connect(agent)
        session, _ = ctx.session(agent, conn)
        path = self.address("credit37")
        sender, _ = ctx.sender(agent, session, path)
        done: list[str] = []
        for body in ("first", "second"):
            sender.createtransfer(agent.amqp.createmessage(body)).sendasync(
                lambda b=body: done.append(b))
        ctx.wait(agent, lambda: done == ["first", "second"], "both confirmed without credit")
        backend = live_backends(agent.settings.agent_id)[0]
        assert backend.stats.no_subscribers == 2  # the broker said: nobody to give it to
        received: list[Any] = []
        receiver, _ = ctx.receiver(agent, session, path, lambda ds: received.extend(ds))
        ctx.send(agent, sender, agent.amqp.createmessage("marker"))
        ctx.wait(agent, lambda: len(received) == 1, "marker")
        assert [d.message().body() for d in received] == ["marker"] and receiver.isopen()

    def _pin_45(self, ctx: Ctx) -> None:
        """A refused publish: SENDER_ERROR naming amqp:unauthorized-access, sender open.

        Uses a private broker whose ACL allows only ``allowed/#``. (Mosquitto 2.0.11 also drops
        the connection after refusing; reconnect = "auto" keeps the objects open through it.)
        """
        with tempfile.TemporaryDirectory() as tmp, \
                Mosquitto(Path(tmp), acl=["topic readwrite allowed/#"]) as broker:
            agent = ctx.agent(mqtt={"url": broker.url, "reconnect": "auto",
                                    "reconnect_min_delay": 0.05})
            conn, _ = ctx.connect(agent)
            session, _ = ctx.session(agent, conn)
            sender, rec = ctx.sender(agent, session, f"/forbidden/{uuid.uuid4().hex[:8]}")
            fired: list[str] = []
            sender.createtransfer(agent.amqp.createmessage("x")).sendasync(
                lambda: fired.append("x"))
            ctx.wait(agent, lambda: rec.has("SENDER_ERROR"), "SENDER_ERROR")
            assert "amqp:unauthorized-access" in (rec.detail("SENDER_ERROR") or "")
            assert fired == [] and sender.isopen() and not rec.has("SENDER_CLOSED")
            agent.close()


PROFILE = MQTTProfile()
