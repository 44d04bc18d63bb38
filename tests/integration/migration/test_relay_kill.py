"""``bridge relay`` with a ledger, SIGKILLed mid-stream and restarted: nothing lost, and the only
duplicates are messages that were in flight at the kill (at most the window), counted.

Both directions, each run a few hundred messages published at a steady pace while the relay
runs (so the kill lands mid-stream), ``BRIDGE_TEST_RELAY_KILL_RUNS`` runs each (default 10) of
``BRIDGE_TEST_RELAY_KILL_MESSAGES`` messages (default 300):

- AMQP -> MQTT: a queue on the shared RabbitMQ into a topic of a private Mosquitto, counted by a
  raw paho subscriber;
- MQTT -> AMQP: the relay's persistent session on a private Mosquitto into a queue on the
  shared RabbitMQ, counted when drained.

Every message is counted by its body, which is unique per message, so by its stable id.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bridge import Agent, Settings
from tests.integration.amqp.rabbit import QUEUE_PREFIX, rabbitmqctl
from tests.integration.migration.conftest import (
    SHARED_AMQP_URL,
    MqttCounter,
    unique_queue,
)
from tests.integration.migration.test_relay_sigterm import RelayProcess, precreate_session
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]

RUNS = int(os.environ.get("BRIDGE_TEST_RELAY_KILL_RUNS", "10"))
N = int(os.environ.get("BRIDGE_TEST_RELAY_KILL_MESSAGES", "300"))
WINDOW = 20
BURST, EVERY = 5, 0.01  # the publishers' pace: 500 messages/s
_STATUS = re.compile(r"forwarded (?P<forwarded>\d+) .*skipped (?P<skipped>\d+), resent after "
                     r"restart (?P<resent>\d+)")


def profile(tmp_path: Path, source: str, target: str, mqtt_url: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(f"""
agent_id = "kill-{uuid.uuid4().hex[:8]}"
log_level = "INFO"

[relay]
window = {WINDOW}
drain_timeout = 20
status_interval = 0
ledger = "{tmp_path / 'relay.ledger'}"

[[relay.rules]]
source = "{source}"
target = "{target}"

[mqtt]
url = "{mqtt_url}"
reconnect = "auto"
clean_start = false
session_expiry = 600
""")
    return path


def agent_id_of(profile_path: Path) -> str:
    found = re.search(r'agent_id = "([^"]+)"', profile_path.read_text())
    assert found
    return found.group(1)


def paced_amqp_publisher(address: str, count: int) -> threading.Thread:
    """Send ``m<n>`` for n < count to *address*, BURST every EVERY seconds (timers of the
    publishing agent pace it); the thread ends when the broker accepted every one."""
    def run() -> None:
        with Agent(Settings(backend="amqp", agent_id=f"pub-{uuid.uuid4().hex[:6]}",
                            amqp={"url": SHARED_AMQP_URL})) as agent:
            sender = agent.amqp.openconnection(SHARED_AMQP_URL, lambda e, d: None) \
                .opensession().opensender(address)
            sent, confirmed = [0], [0]

            def done() -> None:
                confirmed[0] += 1

            def burst() -> None:
                for _ in range(min(BURST, count - sent[0])):
                    message = agent.amqp.createbinarymessage(f"m{sent[0]}", {"seq": sent[0]})
                    sender.createtransfer(message).sendasync(done)
                    sent[0] += 1
                if sent[0] < count:
                    agent.imp.wakeup(EVERY, burst)

            burst()
            assert agent.run_until(lambda: confirmed[0] == count, 120), confirmed

    thread = threading.Thread(target=run, name="amqp-publisher", daemon=True)
    thread.start()
    return thread


def paced_mqtt_publisher(port: int, topic: str, count: int) -> threading.Thread:
    def run() -> None:
        acked = [0]
        all_acked = threading.Event()

        def on_publish(*args: Any) -> None:
            acked[0] += 1
            if acked[0] == count:
                all_acked.set()

        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
                             protocol=paho.MQTTv5)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_publish = on_publish
        client.connect("127.0.0.1", port)
        client.loop_start()
        pace = threading.Event()  # never set: its timed wait paces the load generator
        for n in range(count):
            client.publish(topic, f"m{n}".encode(), qos=1)
            if n % BURST == BURST - 1:
                pace.wait(EVERY)
        ok = all_acked.wait(60)
        client.disconnect()
        client.loop_stop()
        assert ok, f"publisher: {acked[0]} of {count} PUBACKs"

    thread = threading.Thread(target=run, name="mqtt-publisher", daemon=True)
    thread.start()
    return thread


class WatchedRelay(RelayProcess):
    """`RelayProcess` whose output lines can be waited for."""

    def __init__(self, profile: Path, cwd: Path) -> None:
        self.changed = threading.Condition()
        super().__init__(profile, cwd)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.rstrip())
                self.changed.notify_all()

    def wait_connected(self, sides: int = 2, timeout: float = 60) -> None:
        with self.changed:
            assert self.changed.wait_for(
                lambda: sum("connected" in line for line in self.lines) >= sides, timeout), \
                "\n".join(self.lines[-30:])


class AmqpCounter:
    """A consumer on the shared RabbitMQ counting bodies as they arrive (its own thread)."""

    def __init__(self, address: str) -> None:
        self.counts: Counter[str] = Counter()
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.agent = Agent(Settings(backend="amqp", agent_id=f"count-{uuid.uuid4().hex[:6]}",
                                    amqp={"url": SHARED_AMQP_URL, "prefetch": 500}))
        self.receiver = self.agent.amqp.openconnection(SHARED_AMQP_URL, lambda e, d: None) \
            .opensession().openreceiver(address, None, self._messages)
        assert self.agent.run_until(self.receiver.isopen, 15)
        self.thread = threading.Thread(target=self.agent.run_until, args=(self.stop.is_set, 300),
                                       daemon=True)
        self.thread.start()

    def _messages(self, deliveries: list[Any]) -> None:
        with self.changed:
            for delivery in deliveries:
                self.counts[delivery.message().body().decode()] += 1
                delivery.accept()
            self.changed.notify_all()

    def wait_unique(self, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.counts) >= count, timeout)

    def close(self) -> None:
        self.stop.set()
        self.agent.call_soon(lambda: None)
        self.thread.join(10)
        self.receiver.close()
        self.agent.close()


def second_run_counts(process: RelayProcess) -> dict[str, int]:
    stopped = [line for line in process.lines if "bridge relay: stopped;" in line]
    assert stopped, "no final status line:\n" + "\n".join(process.lines[-30:])
    found = _STATUS.search(stopped[-1])
    assert found, stopped[-1]
    return {key: int(value) for key, value in found.groupdict().items()}


def kill_and_restart(profile_path: Path, tmp_path: Path, publish: Callable[[], Any],
                     reached: Callable[[int], bool], done: Callable[[], bool]
                     ) -> dict[str, int]:
    """Start the relay, then the publisher; SIGKILL the relay once *reached(N // 2)*; run it
    again until *done()*; the second run's counts."""
    first = WatchedRelay(profile_path, tmp_path)
    try:
        first.wait_connected()
        publish()
        assert reached(N // 2), "\n".join(first.lines[-30:])
    finally:
        first.kill()  # SIGKILL
    assert first.process.returncode == -9
    second = WatchedRelay(profile_path, tmp_path)
    try:
        assert done(), "\n".join(second.lines[-30:])
        assert second.terminate() == 0, "\n".join(second.lines[-30:])
    finally:
        second.kill()
    return second_run_counts(second)


@pytest.mark.parametrize("run", range(RUNS))
def test_kill_amqp_to_mqtt(run: int, tmp_path: Path, mosquitto: Callable[..., Mosquitto],
                           mqtt_counter: Callable[..., MqttCounter],
                           record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto()
    source, topic = unique_queue("kill-a2m"), f"kill/{uuid.uuid4().hex[:10]}"
    counter = mqtt_counter(broker.port, topic)
    path = profile(tmp_path, f"amqp:{source}", f"mqtt:/{topic}", broker.url)
    publishers: list[threading.Thread] = []
    counts = kill_and_restart(path, tmp_path,
                              lambda: publishers.append(paced_amqp_publisher(source, N)),
                              lambda k: counter.wait_unique(k, 60),
                              lambda: counter.wait_unique(N, 60))
    publishers[0].join(60)
    assert set(counter.counts) == {f"m{i}" for i in range(N)}, "lost"
    duplicates = counter.received - N
    assert duplicates <= counts["resent"] <= WINDOW, (duplicates, counts)
    record_property("duplicates", duplicates)
    record_property("skipped_by_ledger", counts["skipped"])
    print(f"\nrelay SIGKILL + restart: duplicates {duplicates}, {counts}")
    rabbitmqctl("delete_queue", source.removeprefix("/queue/"))


@pytest.mark.parametrize("run", range(RUNS))
def test_kill_mqtt_to_amqp(run: int, tmp_path: Path, mosquitto: Callable[..., Mosquitto],
                           record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto()
    topic = f"kill/{uuid.uuid4().hex[:10]}"
    target = f"/queue/{QUEUE_PREFIX}kill-m2a-{uuid.uuid4().hex[:10]}"
    unique_queue("policy")  # the expiry policy for test queues exists
    path = profile(tmp_path, f"mqtt:/{topic}", f"amqp:{target}", broker.url)
    precreate_session(broker.port, f"{agent_id_of(path)}-mqtt-source", topic)
    publishers: list[threading.Thread] = []
    counter = AmqpCounter(target)
    try:
        counts = kill_and_restart(
            path, tmp_path,
            lambda: publishers.append(paced_mqtt_publisher(broker.port, topic, N)),
            lambda k: counter.wait_unique(k, 60), lambda: counter.wait_unique(N, 60))
        publishers[0].join(60)
    finally:
        counter.close()
    assert set(counter.counts) == {f"m{i}" for i in range(N)}, "lost"
    duplicates = sum(counter.counts.values()) - N + _queue_depth(target)
    assert duplicates <= counts["resent"] <= WINDOW, (duplicates, counts)
    record_property("duplicates", duplicates)
    record_property("skipped_by_ledger", counts["skipped"])
    print(f"\nrelay SIGKILL + restart: duplicates {duplicates}, {counts}")
    rabbitmqctl("delete_queue", target.removeprefix("/queue/"))


def _queue_depth(address: str) -> int:
    name = address.removeprefix("/queue/")
    for line in rabbitmqctl("list_queues", "name", "messages").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return 0
