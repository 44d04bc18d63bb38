"""``bridge port`` on the command line, and the in-memory translation cache."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bridge.cli import cli
from bridge.squirrel.port import TranslationCache


def port(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["port", *args], prog_name="bridge")
    return result.exit_code, result.output


def test_port_writes_the_python_next_to_the_source_or_to_o(tmp_path: Path) -> None:
    source = tmp_path / "agent.nut"
    source.write_text("// greets\nfunction hello(name) { return \"hi \" + name; }\n")
    status, output = port(str(source))
    assert status == 0, output
    text = (tmp_path / "agent.py").read_text()
    assert "# greets" in text and "def hello(name):" in text
    target = tmp_path / "out" / "x.py"
    target.parent.mkdir()
    status, output = port(str(source), "-o", str(target))
    assert status == 0 and target.read_text() == text
    assert "agent.nut" in output and str(target) in output


def test_port_reports_an_unsupported_construct_with_its_position(tmp_path: Path) -> None:
    source = tmp_path / "agent.nut"
    source.write_text("local x = 1;\nfunction gen() {\n    yield x;\n}\n")
    status, output = port(str(source), "-o", str(tmp_path / "agent.py"))
    assert status == 1
    assert f"{source}:3:5: yield (generators) is not supported" in output
    assert not (tmp_path / "agent.py").exists()


def test_port_resolves_requires_from_the_require_paths(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "Util.lib.nut@2.0.0").write_text("function twice(x) { return 2 * x; }\n")
    source = tmp_path / "agent.nut"
    source.write_text('#require "Util.lib.nut:2.0.0"\nlocal y = twice(21);\n')
    status, output = port(str(source), "--require-path", str(libs))
    assert status == 0, output
    text = (tmp_path / "agent.py").read_text()
    assert text.index("def twice(x):") < text.index("y = twice(21)")
    status, output = port(str(source))
    assert status == 1 and "Util.lib.nut" in output and f"{source}:1" in output


def test_the_cache_translates_each_content_once(tmp_path: Path) -> None:
    source = tmp_path / "agent.nut"
    source.write_text("local a = 1;\n")
    cache = TranslationCache(size=2)
    first = cache.translate_file(source)
    assert cache.translate_file(source) is first
    source.write_text("local a = 2;\n")
    second = cache.translate_file(source)
    assert second is not first and "a = 2" in second.python
    assert (cache.hits, cache.misses) == (1, 2)


def test_comments_stay_where_they_were(tmp_path: Path) -> None:
    source = tmp_path / "agent.nut"
    source.write_text("// file header\nlocal x = 5; // the count\nif (x > 3) { // big\n"
                      "    /* block */ print(x);\n}\n")
    status, output = port(str(source))
    assert status == 0, output
    lines = (tmp_path / "agent.py").read_text().splitlines()
    assert "# file header" in lines
    assert "x = 5  # the count" in lines
    assert "if sq.gt(x, 3):  # big" in lines
    assert lines[lines.index("    # block") + 1] == "    sq.print(x)"
