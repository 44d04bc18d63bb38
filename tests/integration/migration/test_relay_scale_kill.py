"""Two ``bridge relay`` processes on one rule, one SIGKILLed mid-stream: nothing is lost.

- AMQP source (competing consumers on one queue): RabbitMQ hands what the killed relay had not
  settled to the survivor, which forwards everything; the killed one is not restarted.
- MQTT source (the shared subscription ``$share/<group>/<topic>``): what Mosquitto had handed to
  the killed relay's persistent session waits there, so the killed relay is restarted (same
  agent id, as a restarted pod) and forwards it; the survivor forwards the rest.

Messages are counted at the target by their unique bodies (so by stable id); duplicates are
allowed (no ledger here) and printed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.amqp.rabbit import QUEUE_PREFIX, rabbitmqctl
from tests.integration.migration.conftest import MqttCounter, unique_queue
from tests.integration.migration.test_relay_kill import (
    AmqpCounter,
    N,
    WatchedRelay,
    paced_amqp_publisher,
    paced_mqtt_publisher,
)
from tests.integration.migration.test_relay_sigterm import precreate_session
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability, pytest.mark.slow]


def instance_profile(directory: Path, agent_id: str, source: str, target: str,
                     mqtt_url: str, group: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "relay.toml"
    path.write_text(f"""
agent_id = "{agent_id}"
log_level = "INFO"

[relay]
window = 20
drain_timeout = 20
status_interval = 0

[[relay.rules]]
source = "{source}"
target = "{target}"

[mqtt]
url = "{mqtt_url}"
reconnect = "auto"
clean_start = false
session_expiry = 600
shared_group = "{group}"
""")
    return path


def test_two_relays_on_an_amqp_queue_one_killed(
        tmp_path: Path, mosquitto: Callable[..., Mosquitto],
        mqtt_counter: Callable[..., MqttCounter]) -> None:
    broker = mosquitto()
    source, topic = unique_queue("scale-kill-a2m"), f"scale-kill/{uuid.uuid4().hex[:10]}"
    counter = mqtt_counter(broker.port, topic)
    group = f"g{uuid.uuid4().hex[:6]}"
    relays = [WatchedRelay(instance_profile(tmp_path / f"r{i}", f"sk-{uuid.uuid4().hex[:8]}",
                                            f"amqp:{source}", f"mqtt:/{topic}", broker.url,
                                            group), tmp_path) for i in range(2)]
    try:
        for relay in relays:
            relay.wait_connected()
        publisher = paced_amqp_publisher(source, N)
        assert counter.wait_unique(N // 2, 60)
        relays[0].kill()  # SIGKILL mid-stream; not restarted
        assert relays[0].process.returncode == -9
        assert counter.wait_unique(N, 60), f"{N - counter.unique} message(s) lost"
        publisher.join(60)
        assert relays[1].terminate() == 0
    finally:
        for relay in relays:
            relay.kill()
    assert set(counter.counts) == {f"m{i}" for i in range(N)}
    print(f"\ntwo relays, AMQP source, one killed: duplicates {counter.received - N}")
    rabbitmqctl("delete_queue", source.removeprefix("/queue/"))


def test_two_relays_on_a_shared_subscription_one_killed_and_restarted(
        tmp_path: Path, mosquitto: Callable[..., Mosquitto],
        record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto()
    topic = f"scale-kill/{uuid.uuid4().hex[:10]}"
    target = f"/queue/{QUEUE_PREFIX}scale-kill-m2a-{uuid.uuid4().hex[:10]}"
    unique_queue("policy")  # the expiry policy for test queues exists
    group = f"g{uuid.uuid4().hex[:6]}"
    ids = [f"sk-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    profiles = [instance_profile(tmp_path / f"r{i}", ids[i], f"mqtt:/{topic}",
                                 f"amqp:{target}", broker.url, group) for i in range(2)]
    for agent_id in ids:  # both sessions are members of the group before the first message
        precreate_session(broker.port, f"{agent_id}-mqtt-source", f"$share/{group}/{topic}")
    counter = AmqpCounter(target)
    relays = [WatchedRelay(path, tmp_path) for path in profiles]
    try:
        for relay in relays:
            relay.wait_connected()
        publisher = paced_mqtt_publisher(broker.port, topic, N)
        assert counter.wait_unique(N // 2, 60)
        relays[0].kill()  # SIGKILL mid-stream
        assert relays[0].process.returncode == -9
        publisher.join(60)
        relays[0] = WatchedRelay(profiles[0], tmp_path)  # the pod restarted: same agent id
        assert counter.wait_unique(N, 60), f"{N - len(counter.counts)} message(s) lost"
        for relay in relays:
            assert relay.terminate() == 0
    finally:
        for relay in relays:
            relay.kill()
        counter.close()
    assert set(counter.counts) == {f"m{i}" for i in range(N)}
    duplicates = sum(counter.counts.values()) - N
    record_property("duplicates", duplicates)
    print(f"\ntwo relays, shared subscription, one killed: duplicates {duplicates}")
    rabbitmqctl("delete_queue", target.removeprefix("/queue/"))
