"""The migration guide's stage commands, run as printed against the local RabbitMQ and Mosquitto.

docs/migration-guide.md tells readers to check stage 1 with ``bridge --config
config/shadow.toml shadow-report`` after running on the shadow profile, and stage 2 with the
demo on config/staged.toml. These tests run exactly that (device ids made unique per run, with
the prefix the shared RabbitMQ expires idle test queues by).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.amqp.rabbit import (
    QUEUE_PREFIX,
    delete_queue,
    ensure_expiry_policy,
    rabbitmqctl,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def bridge(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("bridge")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "bridge"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    return subprocess.run([*command, *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def device_id() -> Iterator[str]:
    ensure_expiry_policy()
    name = f"{QUEUE_PREFIX}stage-{uuid.uuid4().hex[:10]}"
    yield name
    for suffix in ("telemetry", "commands"):
        delete_queue(f"/queue/{name}.{suffix}")


def test_stage_2_staged_profile_runs_the_demo(tmp_path: Path, device_id: str) -> None:
    done = bridge("--config", str(ROOT / "config/staged.toml"), "demo", "--device-id",
                  device_id, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    # Commands went over AMQP (RabbitMQ declared their queue); telemetry, routed to MQTT, never
    # reached RabbitMQ.
    queues = set(rabbitmqctl("list_queues", "name").split())
    assert f"{device_id}.commands" in queues
    assert f"{device_id}.telemetry" not in queues


def test_stage_1_shadow_profile_then_shadow_report(tmp_path: Path, device_id: str) -> None:
    profile = str(ROOT / "config/shadow.toml")
    done = bridge("--config", profile, "demo", "--device-id", device_id, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report_file = tmp_path / "shadow-report.json"  # shadow.report_file, relative to the cwd
    assert report_file.is_file()
    report = bridge("--config", profile, "shadow-report", cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "0 divergence(s)" in report.stdout
    routes = json.loads(report_file.read_text(encoding="utf-8"))["routes"]
    stats = routes["/*"]
    assert stats["sent"] > 100 and stats["shadow_sent"] == stats["sent"]
    assert stats["shadow_confirmed"] > 0
    assert stats["matched"] > 0 and stats["mismatched"] == 0
