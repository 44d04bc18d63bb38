"""The shipped Squirrel examples translated by ``bridge port`` behave as the Python examples do
(the same assertions as tests/unit/squirrel_vm/test_examples_memory.py), on the memory backend:
written to a .py file and run by ``bridge run FILE.py``, and translated in memory by
``bridge run --engine translate FILE.nut``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.squirrel.port import translate_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.nut"))
TELEMETRY = REPO / "examples" / "telemetry_agent.nut"


def bridge(*args: str, env_extra: dict[str, str] | None = None) -> str:
    env = {**os.environ, "BRIDGE_BACKEND": "memory", "BRIDGE_CONFIG": "",
           "PYTHONPATH": str(REPO), **(env_extra or {})}
    result = subprocess.run([sys.executable, "-m", "bridge", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def assert_telemetry_outcome(output: str) -> None:
    assert "done: 5 telemetry confirmed, 1 command(s) accepted" in output, output
    assert "properties={'command-id': 1}" in output, output
    assert "device CONNECTION_CLOSED" in output and "_ERROR" not in output, output


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_squirrel_example_translates_to_valid_python(example: Path) -> None:
    translation = translate_file(example)
    compile(translation.python, f"{example}.py", "exec")
    assert translation.sources == [str(example)]


@pytest.mark.skipif(not TELEMETRY.is_file(), reason="examples/telemetry_agent.nut not shipped")
def test_ported_telemetry_agent_runs_as_a_python_script(tmp_path: Path) -> None:
    target = tmp_path / "telemetry_agent.py"
    bridge("port", str(TELEMETRY), "-o", str(target))
    text = target.read_text()
    assert "def sendTelemetry():" in text and "# -- the device agent" in text  # names, comments
    # the .py takes its settings from imp.configparams' defaults; a shorter interval is all we
    # change, in the generated file, as a user maintaining it would
    target.write_text(text.replace('param("TELEMETRY_INTERVAL", "0.2")',
                                   'param("TELEMETRY_INTERVAL", "0.02")'))
    assert_telemetry_outcome(bridge("run", "--timeout", "30", str(target)))


@pytest.mark.skipif(not TELEMETRY.is_file(), reason="examples/telemetry_agent.nut not shipped")
def test_telemetry_agent_translated_in_memory_by_bridge_run() -> None:
    output = bridge("run", "--timeout", "30", "--engine", "translate",
                    "--param", "TELEMETRY_INTERVAL=0.02", str(TELEMETRY))
    assert_telemetry_outcome(output)
