"""``bridge run --engine translate``: the translated Python runs as an agent script with imp's
globals, and its tracebacks name the .nut lines (a stand-in translation: the translator itself
is tested with bridge.squirrel.port)."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import nut
from bridge.settings import Settings


class FakeTranslation:
    python = ("server.log('from python ' + http.jsonencode({'a': 1}) + ' ' "
              "+ imp.configparams['N'])\n"
              "def fail():\n"
              "    raise ValueError('boom')\n"
              "fail()\n")

    def __init__(self, script: Path) -> None:
        self.script = script

    def nut_location(self, py_line: int) -> tuple[str, int]:
        return str(self.script), py_line * 10  # a recognisable mapping


def test_the_translate_engine_names_nut_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "agent.nut"
    script.write_text("// translated by the stand-in\n")
    port = types.ModuleType("bridge.squirrel.port")
    seen: list[Any] = []

    def translate_file(path: Path, require_paths: list[Path]) -> FakeTranslation:
        seen.append((path, require_paths))
        return FakeTranslation(path)

    port.translate_file = translate_file  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bridge.squirrel.port", port)
    runner = nut.make_run(Settings(backend="memory", agent_id="translated"), script, 2,
                          engine="translate", require_paths=[tmp_path], params=["N=5"],
                          storage=None, agent_url="")
    assert seen == [(script, [tmp_path])]
    assert runner.execute() == 1
    err = capsys.readouterr().err
    assert f"{script}:40 in <module>" in err and f"{script}:30 in fail" in err
    assert "ValueError: boom" in err and ".nut.py" not in err


def test_the_translate_engine_says_when_the_translator_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bridge.squirrel.port", None)  # import fails
    with pytest.raises(nut.EngineUnavailable, match=r"bridge\.squirrel\.port"):
        nut.translate(tmp_path / "agent.nut", [])


@pytest.mark.parametrize(("pairs", "env", "expected"), [
    (["A=1", "B=x=y", "C="], {}, {"A": "1", "B": "x=y", "C": ""}),
    (["SECRET"], {"SECRET": "s3"}, {"SECRET": "s3"}),
    ([" N =2"], {}, {"N": "2"}),
])
def test_params(pairs: list[str], env: dict[str, str], expected: dict[str, str]) -> None:
    assert nut.parse_params(pairs, env) == expected


@pytest.mark.parametrize(("pairs", "message"), [
    (["=1"], "expected NAME=VALUE or NAME"),
    (["MISSING"], "no environment variable MISSING"),
])
def test_bad_params_are_named(pairs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        nut.parse_params(pairs, {})
