"""`bridge demo`, `bridge relay` and `bridge shadow-report` on the in-process broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from click.testing import CliRunner

from bridge.cli import cli

BRIDGE = [sys.executable, "-m", "bridge"]


def test_demo_succeeds_on_memory_and_prints_a_summary() -> None:
    result = CliRunner().invoke(cli, ["demo", "--messages", "120", "--rate", "0",
                                      "--command-every", "30"])
    assert result.exit_code == 0, result.output
    assert "SUCCESS" in result.output
    assert "telemetry received 120" in result.output
    assert "commands sent 4, confirmed 4, received 4, accepted 4" in result.output
    assert "latency ms: p50" in result.output


def test_demo_fails_with_exit_1_when_messages_do_not_arrive() -> None:
    # a device on its own never hears the cloud's start command: it times out
    result = CliRunner().invoke(cli, ["demo", "--role", "device", "--messages", "5",
                                      "--timeout", "0.5"])
    assert result.exit_code == 1
    assert "FAILED" in result.output


def test_demo_rejects_bad_options() -> None:
    result = CliRunner().invoke(cli, ["demo", "--messages", "0"])
    assert result.exit_code == 2 and "--messages" in result.output


def test_relay_needs_rules() -> None:
    result = CliRunner().invoke(cli, ["relay", "--duration", "0.1"])
    assert result.exit_code == 2
    assert "relay.rules is empty" in result.output


def test_relay_drains_on_sigterm(tmp_path: Path) -> None:
    profile = tmp_path / "relay.toml"
    broker = uuid.uuid4().hex
    profile.write_text(f"""
[memory]
broker = "{broker}"

[relay]
status_interval = 0.2

[[relay.rules]]
source = "memory:/in"
target = "memory:/out"
""")
    env = {**os.environ, "BRIDGE_CONFIG": str(profile)}
    process = subprocess.Popen([*BRIDGE, "relay"], stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    for line in process.stderr:
        if "relay:" in line and "memory-source open" in line:
            break  # connected and reporting
    process.send_signal(signal.SIGTERM)
    try:
        _, rest = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, rest = process.communicate()
        raise AssertionError(f"relay did not stop on SIGTERM; it printed:\n{rest}") from None
    assert process.returncode == 0, rest
    assert "stopped" in rest


def test_shadow_report_prints_and_signals_divergence(tmp_path: Path) -> None:
    clean = {"agent_id": "a", "connection_problems": [], "routes": {"/x": {
        "divergences": 0, "sent": 3, "primary_confirmed": 3, "shadow_sent": 3,
        "shadow_confirmed": 3, "shadow_failed": 0, "shadow_skipped": 0, "shadow_slower": 1,
        "shadow_faster": 2, "primary_received": 0, "shadow_received": 0, "matched": 0,
        "mismatched": 0, "primary_latency_ms_total": 3.0, "shadow_latency_ms_total": 6.0,
        "problems": [], "mismatch_examples": []}}}
    report = tmp_path / "report.json"
    report.write_text(json.dumps(clean))
    result = CliRunner().invoke(cli, ["shadow-report", str(report)])
    assert result.exit_code == 0, result.output
    assert "route /x: 0 divergence(s)" in result.output
    clean["routes"]["/x"].update(divergences=1, mismatched=1)  # type: ignore[union-attr]
    report.write_text(json.dumps(clean))
    result = CliRunner().invoke(cli, ["shadow-report", str(report)])
    assert result.exit_code == 1 and "mismatched 1" in result.output
    missing = CliRunner().invoke(cli, ["shadow-report", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
