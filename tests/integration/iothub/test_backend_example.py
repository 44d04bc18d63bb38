"""The ported AzureIoTHub client (examples/azure_iothub_agent.py, and its Squirrel twin
examples/azure_iothub_agent.nut on the embedded VM) runs unchanged on ``iothub``:
its own CBS put-token authenticates, telemetry goes out, C2D comes in (abandon, then complete),
short-lived tokens are renewed through the library's SENDER_ERROR / RECEIVER_ERROR paths, and a
wrong key ends the connect with "Not authorised with Azure IOT Hub"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from bridge.testing.hub import C2DState
from tests.integration.iothub.targets import StandinTarget, TestDevice, TlsHub
from tests.support.examples import example_args, variants

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = variants("azure_iothub_agent")
PARAMS = ["IOTHUB_CONNECTION_STRING", "IOTHUB_DEBUG", "IOTHUB_SAS_TTL", "EVENT_COUNT",
          "EVENT_INTERVAL", "C2D_COUNT"]


def run_example(example: str, config: str, overrides: dict[str, str], connection_string: str,
                timeout: float = 40, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "BRIDGE_CONFIG": config,
                   "BRIDGE_AGENT_ID": f"example-{uuid.uuid4().hex[:8]}",
                   "IOTHUB_CONNECTION_STRING": connection_string, "IOTHUB_DEBUG": "1",
                   **overrides, **env}
    bridge = Path(sys.executable).with_name("bridge")
    args = example_args(example, environment, PARAMS)
    return subprocess.run([str(bridge), "run", "--timeout", str(timeout), *args], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=timeout + 30)


def env_for(settings: dict[str, object]) -> dict[str, str]:
    return {f"BRIDGE_IOTHUB__{key.upper()}": str(value) for key, value in settings.items()}


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_renews_its_token_and_handles_c2d_on_the_standin(
        example: str, standin: StandinTarget) -> None:
    device = standin.device()
    hub = standin.hub
    # queued at the hub until the device subscribes; the first one is abandoned once
    hub.send_c2d(device.device_id, b"first", {"action": "abandon"})
    hub.send_c2d(device.device_id, b"second", {"action": "complete"})
    started = time.monotonic()
    result = run_example(example, "config/iothub-local.toml", env_for(standin.iothub_settings()),
                         device.connection_string, IOTHUB_SAS_TTL="3", EVENT_COUNT="8",
                         EVENT_INTERVAL="0.6", C2D_COUNT="2")
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "done: 8 events confirmed, 0 failed, 2 cloud-to-device messages handled" in output
    # the library's renewal paths ran: SENDER_ERROR unauthorized-access, RECEIVER_ERROR
    # Token Invalid, a put-token each, the links reopened on the 200/OK reply
    assert "Msg Sender event: SENDER_ERROR" in output and "renewing token" in output, output
    assert "Msg Receiver event: RECEIVER_ERROR" in output
    assert "ERROR   bridge" not in output  # no server.error, no callback raised
    assert device.key not in output
    logins = [a for a in hub.auth_attempts() if a.device_id == device.device_id]
    assert len(logins) >= 2 and all(a.ok for a in logins)  # one per token
    bodies = [m.text() for m in hub.d2c(device.device_id)]
    assert [json.loads(b)["seq"] for b in bodies] == list(range(1, 9))
    assert all(m.state is C2DState.COMPLETED for m in hub.c2d(device.device_id))
    assert elapsed < 30


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_with_a_wrong_key_is_not_authorised(example: str, standin: StandinTarget) -> None:
    device = standin.device()
    wrong = TestDevice(device.device_id, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkh",
                       device.host_name)
    started = time.monotonic()
    result = run_example(example, "config/iothub-local.toml", env_for(standin.iothub_settings()),
                         wrong.connection_string, timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "connect failed: Not authorised with Azure IOT Hub" in output
    assert "CBS put-token refused: 401" in output
    assert time.monotonic() - started < 15  # the refusal ends the connect; no hang
    assert standin.hub.d2c(device.device_id) == []


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_unchanged_against_the_tls_broker(example: str, tls_hub: TlsHub) -> None:
    device = tls_hub.device()

    def cloud_side() -> None:
        # C2D once the device is subscribed (its first telemetry is after the subscribe)
        tls_hub.wait_d2c(device, 2, timeout=30)
        tls_hub.send_c2d(device, b"command", {"action": "complete", "kind": "cmd"})

    thread = threading.Thread(target=cloud_side, daemon=True)
    thread.start()
    result = run_example(example, "config/iothub.toml", env_for(tls_hub.iothub_settings()),
                         device.connection_string, EVENT_COUNT="4", EVENT_INTERVAL="0.3",
                         C2D_COUNT="1")
    thread.join(5)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "done: 4 events confirmed, 0 failed, 1 cloud-to-device messages handled" in output
    assert "cloud-to-device message: command {'action': 'complete', 'kind': 'cmd'}" in output
    d2c = tls_hub.d2c(device)
    assert len(d2c) == 4 and all(m.properties["kind"] == "reading" for m in d2c)
    assert d2c[0].topic.startswith(f"devices/{device.device_id}/messages/events/")
