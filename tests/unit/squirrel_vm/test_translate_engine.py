"""``bridge run --engine translate``: the translated Python runs as an agent script with imp's
globals, and its tracebacks name the .nut lines (the translator itself is tested in
tests/squirrel)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bridge.cli import nut
from bridge.settings import Settings


def test_the_translate_engine_names_nut_lines(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "agent.nut"
    script.write_text('server.log("from squirrel " + http.jsonencode({a = 1}) + " "\n'
                      '           + imp.configparams.N);\n'
                      "function fail() {\n"
                      '    throw "boom";\n'
                      "}\n"
                      "fail();\n")
    runner = nut.make_run(Settings(backend="memory", agent_id="translated"), script, 2,
                          engine="translate", require_paths=[tmp_path], params=["N=5"],
                          storage=None, agent_url="")
    assert runner.execute() == 1
    err = capsys.readouterr().err
    assert f'File "{script}", line 6' in err and f'File "{script}", line 4' in err, err
    assert 'throw "boom";' in err and "boom" in err.splitlines()[-1]
    assert ".nut.py" not in err


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
