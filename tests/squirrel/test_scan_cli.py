"""`bridge scan` through click's CliRunner: formats, --strict, --require-path, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli

CORPUS = Path(__file__).parent / "corpus" / "parse"
AGENT = CORPUS / "agent_uses_library.agent.nut"
LIBRARY = CORPUS / "AzureIoTHubLite.agent.lib.nut"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["scan", *args])
    return result.exit_code, result.stdout, result.stderr


def test_table_lists_sites_deviations_and_apis() -> None:
    code, out, _ = run(str(LIBRARY), "--backend", "iothub")
    assert code == 0
    assert "backend iothub" in out
    assert "AzureIoTHubLite.agent.lib.nut:242  opensender" in out
    assert "D2C publishes on 'devices/{_config.DeviceId}/messages/events/'" in out
    assert "no reject: reject() does not reach the far end" in out
    assert "Unsupported: none" in out


def test_json_output() -> None:
    code, out, _ = run(str(AGENT), "--require-path", str(CORPUS), "--backend", "mqtt", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["backend"] == "mqtt" and len(data["files"]) == 2
    senders = [s for s in data["amqp"] if s["call"] == "opensender"]
    assert {s["becomes"] for s in senders} == {
        "publishes to topic 'bridge/$cbs'",
        "publishes to topic 'devices/{_config.DeviceId}/messages/events'"}
    assert all(s["line"] > 0 and s["file"].endswith(".nut") for s in data["amqp"])
    assert len(data["unsupported"]) == 3


def test_markdown_output() -> None:
    code, out, _ = run(str(AGENT), "--markdown", "--backend", "amqp")
    assert code == 0
    assert out.startswith("# bridge scan: backend `amqp`")
    assert "| `device.on` | unsupported | 1 | `" in out
    assert "agent_uses_library.agent.nut:19` | no device side" in out
    assert "## Unsupported (3)" in out


def test_strict_fails_on_unsupported() -> None:
    code, out, err = run(str(AGENT), "--strict", "--backend", "memory")
    assert code == 1
    assert "device.on is unsupported" in out
    assert "3 unsupported use(s) on memory" in err
    assert run(str(LIBRARY), "--strict", "--backend", "memory")[0] == 0


def test_strict_fails_on_an_address_the_backend_refuses(tmp_path: Path) -> None:
    agent = tmp_path / "a.nut"
    agent.write_text('local s = null\ns.opensender("/queue/orders")\n')
    code, out, _ = run(str(agent), "--strict", "--backend", "iothub")
    assert code == 1 and "UNSUPPORTED: IoT Hub path '/queue/orders'" in out
    assert run(str(agent), "--strict", "--backend", "amqp")[0] == 0


def test_global_backend_option_is_the_default() -> None:
    result = CliRunner().invoke(cli, ["--backend", "mqtt", "scan", str(LIBRARY)])
    assert result.exit_code == 0 and "backend mqtt" in result.stdout


def test_syntax_error_exits_2_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nut"
    bad.write_text("function f( {\n")
    code, _, err = run(str(bad))
    assert code == 2 and f"{bad}:1:13: " in err


def test_unresolved_require_exits_2(tmp_path: Path) -> None:
    code, _, err = run(str(AGENT), "--require-path", str(tmp_path))
    assert code == 2
    assert "cannot resolve #require 'AzureIoTHubLite.agent.lib.nut:2.2.0'" in err
    assert str(tmp_path) in err


def test_json_and_markdown_are_exclusive() -> None:
    code, _, err = run(str(AGENT), "--json", "--markdown")
    assert code == 2 and "choose one" in err


def test_porting_doc_example_is_what_scan_prints(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "porting.md").read_text("utf-8")
    section = doc.split("## Before porting: `bridge scan`", 1)[1]
    agent = section.split("```squirrel\n", 1)[1].split("```", 1)[0]
    printed = section.split("```text\n", 1)[1].split("```", 1)[0]
    (tmp_path / "agent.nut").write_text(agent)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("agent.nut", "--backend", "iothub")
    assert code == 0
    actual = out.splitlines()
    for line in printed.splitlines():
        if line.endswith(" …"):  # shortened in the doc
            assert any(a.startswith(line[:-2]) for a in actual), line
        else:
            assert line in actual, line
