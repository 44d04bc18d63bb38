"""The ported telemetry agent (Python, and its Squirrel twin on the embedded VM) runs unchanged
on the MQTT backend (`bridge run`, config profile)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.examples import example_args, variants

from .conftest import unique

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("example", variants("telemetry_agent"))
def test_telemetry_agent_runs_on_mosquitto_with_the_mqtt_profile(example: str) -> None:
    env = {**os.environ, "BRIDGE_BACKEND": "mqtt", "BRIDGE_CONFIG": "config/mqtt.toml",
           # unique ids: other runs use the same Mosquitto at the same time
           "BRIDGE_AGENT_ID": unique("example"), "DEVICE_ID": unique("device")}
    bridge = Path(sys.executable).with_name("bridge")
    args = example_args(example, env, ["DEVICE_ID"])
    result = subprocess.run([str(bridge), "run", "--timeout", "30", *args],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "done: 5 telemetry confirmed, 1 command(s) accepted" in output, output
    assert "ERROR" not in output, output
