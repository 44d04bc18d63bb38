"""The lead's example agent (and its Squirrel twin), unchanged, through the CLI on the amqp backend
and RabbitMQ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.examples import example_args, variants

from .rabbit import queue_address

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq")]

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("example", variants("telemetry_agent"))
def test_bridge_run_telemetry_agent_on_rabbitmq(example: str) -> None:
    bridge = Path(sys.executable).with_name("bridge")
    env = {**os.environ, "BRIDGE_BACKEND": "amqp", "BRIDGE_CONFIG": "config/amqp.toml",
           "TELEMETRY_PATH": queue_address("telemetry"), "COMMAND_PATH": queue_address("command"),
           "TELEMETRY_COUNT": "3", "TELEMETRY_INTERVAL": "0.05"}
    args = example_args(example, env, ["TELEMETRY_PATH", "COMMAND_PATH", "TELEMETRY_COUNT",
                                       "TELEMETRY_INTERVAL"])
    done = subprocess.run([str(bridge), "run", "--timeout", "30", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "done: 3 telemetry confirmed, 1 command(s) accepted" in output
    assert "command received: " in output and "properties={'command-id': 1}" in output
    assert "device CONNECTION_CLOSED" in output and "_ERROR" not in output
