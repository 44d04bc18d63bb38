"""The shipped examples, Python and Squirrel, through ``bridge run`` on the memory backend:
the same outcome lines (the broker tests check the other backends)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.examples import example_args, variants

REPO = Path(__file__).resolve().parents[3]


def run(example: str, env_extra: dict[str, str], names: list[str]) -> str:
    env = {**os.environ, "BRIDGE_BACKEND": "memory", "BRIDGE_CONFIG": "", **env_extra}
    result = subprocess.run([sys.executable, "-m", "bridge", "run", "--timeout", "30",
                             *example_args(example, env, names)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.mark.parametrize("example", variants("telemetry_agent"))
def test_telemetry_agent_on_memory(example: str) -> None:
    output = run(example, {"TELEMETRY_INTERVAL": "0.02"}, ["TELEMETRY_INTERVAL"])
    assert "done: 5 telemetry confirmed, 1 command(s) accepted" in output
    assert "properties={'command-id': 1}" in output
    assert "device CONNECTION_CLOSED" in output and "_ERROR" not in output


@pytest.mark.parametrize("example", variants("azure_iothub_agent"))
def test_azure_iothub_agent_on_memory(example: str) -> None:
    # the memory backend's $cbs node says 200 to every put-token
    output = run(example, {"IOTHUB_CONNECTION_STRING":
                           "HostName=h.example;DeviceId=d1;SharedAccessKey=a2V5a2V5",
                           "EVENT_INTERVAL": "0.02", "IOTHUB_DEBUG": "1"},
                 ["IOTHUB_CONNECTION_STRING", "EVENT_INTERVAL", "IOTHUB_DEBUG"])
    assert "done: 5 events confirmed, 0 failed, 0 cloud-to-device messages handled" in output
    assert "Auth Sender event: SENDER_OPEN" in output and "connected to Azure IoT Hub" in output
    assert "a2V5a2V5" not in output and "ERROR" not in output
