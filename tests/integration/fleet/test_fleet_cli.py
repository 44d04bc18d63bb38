"""`bridge fleet` as a user runs it: the shipped example on the memory backend, metrics,
SIGTERM, a failing device restarted alone, and a thousand MQTT agents on one process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.examples import variants
from tests.support.mosquitto import Mosquitto

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"

pytestmark = pytest.mark.integration


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIDGE_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _fleet(*args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bridge", "fleet", *args], cwd=REPO,
                            env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _lines_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> list[str]:
    """stderr lines up to the first one matching *pattern* (the process keeps running)."""
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    os.set_blocking(process.stderr.fileno(), True)
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line.rstrip())
        if re.search(pattern, line):
            return seen
    raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(seen[-30:]))


@pytest.mark.parametrize("example", variants("fleet_agent", translated=False))
def test_the_shipped_example_runs_every_device_and_exits_0(example: str) -> None:
    result = subprocess.run([sys.executable, "-m", "bridge", "fleet",
                             str(REPO / example), "--devices",
                             str(EXAMPLES / "devices.csv"), "--timeout", "4"],
                            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    for device in ("thermo-001", "thermo-002", "thermo-003", "thermo-004", "thermo-005"):
        assert f"[{device}] bridge.agent: all 3 readings confirmed" in result.stderr
    assert "5 agents: 5 running, 5 connected" in result.stderr


def test_metrics_and_a_clean_sigterm() -> None:
    process = _fleet(str(EXAMPLES / "fleet_agent.py"), "--devices",
                     str(EXAMPLES / "devices.csv"), BRIDGE_FLEET__METRICS_PORT="0")
    try:
        lines = _lines_until(process, r"metrics on http://127\.0\.0\.1:\d+", 30)
        url = re.search(r"(http://127\.0\.0\.1:\d+/metrics)", lines[-1])
        assert url is not None
        deadline = time.monotonic() + 20
        while True:  # until the five devices have sent their three readings
            text = urllib.request.urlopen(url.group(1), timeout=5).read().decode()
            if "bridge_fleet_sent_total 15" in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert 'bridge_fleet_agents{state="running"} 5' in text
        assert "bridge_fleet_sent_total 15" in text
        assert 'bridge_fleet_device_errors_total{device="thermo-003"} 0' in text
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err[-2000:]
        assert "stopped (5 agents closed)" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_device_whose_script_raises_is_restarted_alone(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(
        "if imp.configparams.get('broken') == 'yes':\n"
        "    raise RuntimeError('this device is broken')\n"
        "state = {'n': 0}\n"
        "def tick():\n"
        "    state['n'] += 1\n"
        "    if state['n'] == 3:\n"
        "        server.log('ticked 3 times')\n"
        "    imp.wakeup(0.1, tick)\n"
        "imp.wakeup(0, tick)\n")
    devices = tmp_path / "devices.csv"
    devices.write_text("device_id,broken\ngood-1,no\nbad-1,yes\ngood-2,no\n")
    result = subprocess.run([sys.executable, "-m", "bridge", "fleet", str(script), "--devices",
                             str(devices), "--timeout", "3"], cwd=tmp_path,
                            env=_env(BRIDGE_FLEET__RECONNECT_MIN_DELAY="0.2",
                                     BRIDGE_FLEET__RECONNECT_MAX_DELAY="0.4"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    err = result.stderr
    assert "[good-1] bridge.agent: ticked 3 times" in err
    assert "[good-2] bridge.agent: ticked 3 times" in err
    assert "RuntimeError: this device is broken" in err
    assert err.count("fleet: device bad-1") >= 3  # failed, restarted, failed again ...
    assert "restarting in 0.2 s" in err and "restarting in 0.4 s" in err


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "fleet-broker", persistence=False,
                   extra=["max_connections -1"]) as started:
        yield started


def test_a_thousand_mqtt_agents_share_a_few_threads(tmp_path: Path, broker: Mosquitto) -> None:
    count = 1000
    devices = tmp_path / "devices.csv"
    devices.write_text("device_id\n" + "".join(f"dev-{n:04d}\n" for n in range(count)))
    process = _fleet(str(EXAMPLES / "fleet_agent.py"), "--devices", str(devices),
                     "--connect-rate", "0", BRIDGE_BACKEND="mqtt", BRIDGE_MQTT__URL=broker.url,
                     BRIDGE_FLEET__STATUS_INTERVAL="1")
    try:
        deadline = time.monotonic() + 60
        connected = 0
        assert process.stderr is not None
        while connected < count and time.monotonic() < deadline:
            line = process.stderr.readline()
            found = re.search(r"(\d+) connected", line)
            if found:
                connected = int(found.group(1))
        assert connected == count
        threads = int(re.search(r"Threads:\s+(\d+)",
                                Path(f"/proc/{process.pid}/status").read_text()).group(1))
        cores = len(os.sched_getaffinity(0))
        assert threads <= 2 * cores + 8, threads
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
