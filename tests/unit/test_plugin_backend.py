"""A third-party backend published through the entry point (tests/support/plugin_backend: the
``echo_backend`` package with its dist-info) gets its own settings section: configured by the
environment and a TOML profile, shown (secrets masked) by ``bridge config``, listed by
``bridge backends``, and run by ``bridge run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "support" / "plugin_backend"
REPO = Path(__file__).resolve().parents[2]
SECRET = "echo-token-never-shown"


def bridge(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIDGE_")}
    clean["PYTHONPATH"] = os.pathsep.join([str(PLUGIN), str(REPO)])
    return subprocess.run([sys.executable, "-m", "bridge", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=60, env={**clean, **env})


def test_the_plugin_is_listed_with_its_description(tmp_path: Path) -> None:
    result = bridge("backends", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.split()[0] == "echo")
    assert "test plugin: what a sender sends comes back" in line


def test_its_section_comes_from_env_and_toml_and_bridge_config_shows_it(tmp_path: Path) -> None:
    profile = tmp_path / "echo.toml"
    profile.write_text(f'backend = "echo"\n[echo]\ntoken = "{SECRET}"\n')
    result = bridge("config", "--json", cwd=tmp_path, BRIDGE_CONFIG=str(profile),
                    BRIDGE_ECHO__GREETING="bonjour")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["backend"]["value"] == "echo"
    assert shown["echo.greeting"]["value"] == "bonjour"
    assert shown["echo.greeting"]["source"] == "env BRIDGE_ECHO__GREETING"
    assert shown["echo.token"]["secret"] is True and shown["echo.token"]["value"] != SECRET
    assert shown["echo.token"]["source"].startswith("toml")
    text = bridge("config", cwd=tmp_path, BRIDGE_CONFIG=str(profile))
    assert "echo.greeting" in text.stdout and SECRET not in text.stdout + text.stderr


def test_a_bad_value_in_its_section_is_a_readable_config_error(tmp_path: Path) -> None:
    result = bridge("config", cwd=tmp_path, BRIDGE_ECHO__GREETING="")
    assert result.returncode == 2
    assert "echo.greeting" in result.stderr and "BRIDGE_ECHO__GREETING" in result.stderr


def test_an_agent_runs_on_it_with_its_settings(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(
        "def on_messages(deliveries):\n"
        "    for d in deliveries:\n"
        "        print('got', d.message().body(), d.message().properties()['greeting'],"
        " flush=True)\n"
        "    agent.stop()\n"
        "conn = amqp.openconnection('amqps://echo.example', lambda e, d: None)\n"
        "session = conn.opensession()\n"
        "receiver = session.openreceiver('/echo', None, on_messages)\n"
        "sender = session.opensender('/echo')\n"
        "sender.createtransfer(amqp.createmessage('ping')).sendasync()\n")
    result = bridge("--backend", "echo", "run", "--timeout", "10", str(script), cwd=tmp_path,
                    BRIDGE_ECHO__GREETING="salut")
    assert result.returncode == 0, result.stderr
    assert "got ping salut" in result.stdout
