"""Stage 1 on the real brokers: AMQP primary (RabbitMQ), MQTT shadow (Mosquitto).

Every transfer of the shadowed route goes to both brokers; every receiver gets an MQTT twin.
The divergence report counts what differs: here a mismatch injected by publishing a different
message on the shadow's receive path than on the primary's. A shadow that cannot connect, or
is lost half-way, is reported there too and never reaches the agent's callbacks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from proton import Message as ProtonMessage

from bridge import Agent, Message, Settings
from bridge.cli import cli
from bridge.engines.mqtt import codec
from bridge.migration.shadow import monitor_for, report_for
from tests.integration.amqp.rabbit import RawClient as ProtonClient
from tests.integration.amqp.rabbit import delete_queue
from tests.integration.migration.conftest import SHARED_AMQP_URL, SHARED_MQTT_URL, unique_queue
from tests.integration.mqtt.conftest import RawClient as PahoClient
from tests.integration.mqtt.conftest import signal_on
from tests.support.mosquitto import Mosquitto, free_port

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
ROUTE = "/queue/*"


def shadow_agent(tmp_path: Path, **shadow_options: Any) -> Agent:
    agent = Agent(Settings(
        backend="amqp", agent_id=f"shadow-{uuid.uuid4().hex[:8]}", amqp={"url": SHARED_AMQP_URL},
        mqtt={"url": SHARED_MQTT_URL},
        shadow={"report_file": str(tmp_path / "shadow-report.json"), "report_interval": 0.1},
        routes=[{"match": ROUTE, "backend": "amqp", "shadow": "mqtt",
                 "shadow_options": shadow_options}]))
    # The monitor counts on the backends' threads and (by design) never disturbs the agent's
    # dispatcher: wake it on each update so agent.run_until(<report predicate>) re-checks.
    monitor = monitor_for(agent.settings, agent.settings.agent_id)
    for name in ("primary_settled", "shadow_settled", "shadow_failed", "primary_received",
                 "shadow_received", "shadow_problem", "shadow_link_open"):
        original = getattr(monitor, name)

        def wrapper(*args: Any, _original: Any = original) -> None:
            try:
                _original(*args)
            finally:
                agent.call_soon(lambda: None)

        setattr(monitor, name, wrapper)
    return agent


def route_stats(agent: Agent) -> dict[str, Any]:
    report = report_for(agent.settings.agent_id)
    return (report or {}).get("routes", {}).get(ROUTE, {})


def shadow_settled(agent: Agent, confirmed: int) -> dict[str, Any]:
    """`route_stats` once the shadow has confirmed *confirmed* copies (or at the time-out).

    The shadow's confirmations arrive on its own backend, independently of the primary's, so
    they can lag the exchange that sent them; the agent dispatches meanwhile."""
    deadline = time.monotonic() + TIMEOUT
    stats = route_stats(agent)
    while stats.get("shadow_confirmed", 0) < confirmed and time.monotonic() < deadline:
        agent.run(timeout=0.05)  # nothing here to wait on: the monitor counts on its thread
        stats = route_stats(agent)
    return stats


class Events:
    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, event: str, detail: str | None) -> None:
        self.names.append(event)

    def errors(self) -> list[str]:
        return [name for name in self.names if name.endswith(("_ERROR", "_CLOSED"))]


def test_shadow_report_counts_an_injected_mismatch(tmp_path: Path) -> None:
    commands, telemetry = unique_queue("shadow-commands"), unique_queue("shadow-telemetry")
    agent = shadow_agent(tmp_path)
    paho_side, proton_side = PahoClient(), ProtonClient()
    try:
        paho_side.subscribe(telemetry[1:])  # where the shadow copy of a send goes
        events = Events()
        conn = agent.amqp.openconnection("amqps://hub.example", events)
        session = conn.opensession(events)
        received: list[Message] = []

        def on_messages(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                received.append(delivery.message())
                delivery.accept()

        receiver = session.openreceiver(commands, events, on_messages)
        sender = session.opensender(telemetry, events)
        assert agent.run_until(lambda: receiver.isopen() and sender.isopen(), TIMEOUT)
        # the shadow receiver subscribes on its own schedule: wait until it is open
        assert agent.run_until(lambda: ROUTE in (report_for(agent.settings.agent_id) or {})
                               .get("routes", {}), TIMEOUT)

        # sends: confirmed by the primary, copied to the shadow
        confirmed: list[int] = []
        for i in range(5):
            sender.createtransfer(agent.amqp.createmessage(f"t{i}", {"i": i})).sendasync(
                lambda: confirmed.append(1))
        assert agent.run_until(lambda: len(confirmed) == 5
                               and route_stats(agent).get("shadow_confirmed") == 5, TIMEOUT)
        assert len(proton_side.receive(telemetry, 5)) == 5
        paho_side.wait(lambda: len(paho_side.messages) == 5, "the shadow copies on MQTT")

        # receives: the same command on both paths, then one that differs on the shadow
        def inject(body: str, primary: dict[str, Any], shadow: dict[str, Any]) -> None:
            proton_side.send(commands, ProtonMessage(body=body, properties=primary))
            encoded = codec.encode_v5(Message.value(body, shadow))
            paho_side.publish(commands[1:], encoded.payload, encoded.user_properties)

        inject("reboot", {"n": 1}, {"n": 1})
        # (the report counts on the backends' threads; the agent's callback runs later)
        assert agent.run_until(lambda: route_stats(agent).get("matched") == 1
                               and len(received) == 1, TIMEOUT)
        inject("update", {"n": 2}, {"n": 3})
        assert agent.run_until(lambda: route_stats(agent).get("mismatched") == 1
                               and len(received) == 2, TIMEOUT)

        stats = route_stats(agent)
        assert stats["sent"] == 5 and stats["shadow_sent"] == 5 and stats["shadow_failed"] == 0
        assert stats["primary_received"] == stats["shadow_received"] == 2
        assert stats["divergences"] == 1
        example = stats["mismatch_examples"][0]
        assert example["primary"]["properties"] == {"n": 2}
        assert example["shadow"]["properties"] == {"n": 3}
        # only the primary reaches the agent, and nothing went wrong for it
        assert [(m.body(), m.properties()) for m in received] == [("reboot", {"n": 1}),
                                                                 ("update", {"n": 2})]
        assert events.errors() == []
        agent.close()
    finally:
        agent.close()
        paho_side.close()
        proton_side.close()
        delete_queue(commands)
        delete_queue(telemetry)

    # the report file and the command that checks stage 1
    report_file = tmp_path / "shadow-report.json"
    written = json.loads(report_file.read_text(encoding="utf-8"))
    assert written["routes"][ROUTE]["mismatched"] == 1
    result = CliRunner().invoke(cli, ["shadow-report", str(report_file)])
    assert result.exit_code == 1, result.output  # 1: something diverged
    assert "1 divergence(s)" in result.output and "mismatched 1" in result.output


class Primary:
    """One connection of a shadowed agent; `exchange` sends 5 and receives 1 on the primary."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.events = Events()
        self.paths: list[str] = []
        conn = agent.amqp.openconnection("amqps://hub.example", self.events)
        self.session = conn.opensession(self.events)
        self.links: list[Any] = []  # held: a link nobody holds is closed

    def exchange(self) -> dict[str, Any]:
        path = unique_queue("shadow-primary")
        self.paths.append(path)
        got: list[Any] = []

        def on_messages(deliveries: list[Any]) -> None:
            for delivery in deliveries:
                got.append(delivery.message())
                delivery.accept()

        receiver = self.session.openreceiver(path, self.events, on_messages)
        sender = self.session.opensender(path, self.events)
        self.links += [receiver, sender]
        assert self.agent.run_until(lambda: receiver.isopen() and sender.isopen(), TIMEOUT), \
            self.events.names
        confirmed: list[int] = []
        for i in range(5):
            sender.createtransfer(self.agent.amqp.createmessage(f"m{i}")).sendasync(
                lambda: confirmed.append(1))
        with ProtonClient() as proton_side:
            proton_side.send(path, ProtonMessage(body="from-outside"))
        assert self.agent.run_until(lambda: len(confirmed) == 5 and len(got) == 6, TIMEOUT)
        return route_stats(self.agent)

    def close(self) -> None:
        self.agent.close()
        for path in self.paths:
            delete_queue(path)


def test_unreachable_shadow_never_affects_the_primary(tmp_path: Path) -> None:
    primary = Primary(shadow_agent(tmp_path, url=f"mqtt://127.0.0.1:{free_port()}"))
    try:
        stats = primary.exchange()
    finally:
        primary.close()
    assert primary.events.errors() == [], primary.events.names
    assert primary.events.names.count("CONNECTION_OPEN") == 1
    report = report_for(primary.agent.settings.agent_id)
    assert report is not None and any("mqtt" in p for p in report["connection_problems"])
    assert stats["shadow_skipped"] == 5 and stats["divergences"] >= 5


def test_shadow_lost_mid_way_never_affects_the_primary(
        tmp_path: Path, mosquitto: Callable[..., Mosquitto]) -> None:
    broker = mosquitto(persistence=False)
    agent = shadow_agent(tmp_path, url=broker.url)
    primary = Primary(agent)
    try:
        primary.exchange()
        # the shadow's PUBACKs may come after the primary's confirmations: wait for them
        before = shadow_settled(agent, 5)
        assert before["shadow_confirmed"] == 5 and before["divergences"] == 0
        # The loss is recorded on the MQTT backend's thread, never on the agent's dispatcher
        # (the agent hears nothing of it): observe the monitor itself.
        problem = signal_on(monitor_for(agent.settings, agent.settings.agent_id),
                            "shadow_problem")
        broker.stop()
        assert problem.wait(TIMEOUT), "the shadow's loss was not reported"
        report = report_for(agent.settings.agent_id)
        assert report is not None and "mqtt" in report["connection_problems"][0]
        after = primary.exchange()  # the same connection and session, new links
        # ... and a link opened before the loss
        confirmed: list[int] = []
        first_sender = primary.links[1]
        for i in range(3):
            first_sender.createtransfer(agent.amqp.createmessage(f"late{i}")).sendasync(
                lambda: confirmed.append(1))
        assert agent.run_until(lambda: len(confirmed) == 3, TIMEOUT)
        after = route_stats(agent)
    finally:
        primary.close()
    assert primary.events.errors() == [], primary.events.names
    # what was sent after the loss could not be copied: skipped, counted as divergences
    assert after["sent"] == 13 and after["shadow_confirmed"] == 5
    assert after["shadow_skipped"] == 8, after
    assert after["divergences"] >= 8


def test_a_path_only_the_shadow_refuses_never_fails_the_primary(tmp_path: Path) -> None:
    path = unique_queue("shadow-plus") + "+x"  # a fine queue name; MQTT refuses the wildcard
    primary = Primary(shadow_agent(tmp_path))
    primary.paths.append(path)
    try:
        confirmed: list[int] = []
        sender = primary.session.opensender(path, primary.events)
        primary.links.append(sender)
        assert primary.agent.run_until(sender.isopen, TIMEOUT), primary.events.names
        for i in range(2):
            sender.createtransfer(primary.agent.amqp.createmessage(f"m{i}")).sendasync(
                lambda: confirmed.append(1))
        assert primary.agent.run_until(lambda: len(confirmed) == 2, TIMEOUT)
        stats = route_stats(primary.agent)
    finally:
        primary.close()
    assert primary.events.errors() == [], primary.events.names
    assert stats["shadow_skipped"] == 2 and stats["sent"] == 2
    assert any("'+'" in problem for problem in stats["problems"]), stats["problems"]
