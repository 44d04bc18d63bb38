"""What the translator refuses, and how: an error naming file:line:column and the construct."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.squirrel.errors import RequireError, UnsupportedConstructError
from bridge.squirrel.port import nut_traceback, translate_file, translate_source
from tests.squirrel.harness import run_translated

UNSUPPORTED = [
    ("function gen() { yield 1; }", "yield", (1, 18)),
    ("local g = gen(); resume g;", "resume", (1, 18)),
    ("function f() { return this.x; }", "this outside a class method", (1, 23)),
    ("local co = newthread(function() {});", "threads (coroutines)", (1, 12)),
    ("print(1);\nreturn;", "return at the top level", (2, 1)),
    ("class C { x = 1; function f(o) { return function() { return x; }.bindenv(o); } }",
     "bindenv of a function that uses its environment", (1, 73)),
    ('local f = compilestring("return 1");', "compiling code at run time", (1, 11)),
]


@pytest.mark.parametrize(("source", "construct", "where"), UNSUPPORTED,
                         ids=[c for _s, c, _w in UNSUPPORTED])
def test_an_unsupported_construct_is_an_error_naming_file_line_column(
        source: str, construct: str, where: tuple[int, int]) -> None:
    with pytest.raises(UnsupportedConstructError) as info:
        translate_source(source, "agent.nut")
    message = str(info.value)
    assert message.startswith(f"agent.nut:{where[0]}:{where[1]}:"), message
    assert construct in message


def test_an_unresolved_require_names_the_directive_and_where_it_looked(tmp_path: Path) -> None:
    agent = tmp_path / "agent.nut"
    agent.write_text('// header\n#require "Missing.lib.nut:1.0.0"\nprint(1);\n')
    with pytest.raises(RequireError) as info:
        translate_file(agent, [tmp_path / "libs"])
    message = str(info.value)
    assert message.startswith(f"{agent}:2:"), message
    assert "Missing.lib.nut" in message and "libs" in message


def test_required_libraries_are_translated_first_into_the_one_module(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "Greeter.lib.nut@1.0.0").write_text(textwrap.dedent("""\
        class Greeter {
            static VERSION = "1.0.0";
            _name = null;
            constructor(name) { _name = name; }
            function greet() { return "hello " + _name; }
        }
    """))
    agent = tmp_path / "agent.nut"
    agent.write_text('#require "Greeter.lib.nut:1.0.0"\nprint(Greeter("imp").greet());\n')
    translation = translate_file(agent, [libs])
    assert translation.sources == [str(libs / "Greeter.lib.nut@1.0.0"), str(agent)]
    assert translation.python.index("class Greeter") < translation.python.index("Greeter(\"imp\")")
    namespace: dict[str, object] = {}
    lines: list[str] = []
    from bridge.squirrel import runtime as sq
    original = sq.print
    sq.print = lambda value=None: lines.append(sq.print_text(value))  # type: ignore[assignment]
    try:
        exec(compile(translation.python, "agent.py", "exec"), namespace)
    finally:
        sq.print = original  # type: ignore[assignment]
    assert lines == ["hello imp"]


def test_a_runtime_error_traceback_names_the_nut_file_and_line() -> None:
    source = "function f(t) {\n    return t.missing;\n}\nf({});\n"
    translation = translate_source(source, "agent.nut")
    code = compile(translation.python, "agent.nut.py", "exec")
    with pytest.raises(Exception) as info:
        exec(code, {})
    text = nut_traceback(info.value, translation, "agent.nut.py")
    assert 'File "agent.nut", line 2, in f' in text
    assert 'File "agent.nut", line 4' in text
    assert "the index 'missing' does not exist" in text


def test_uncaught_throw_ends_the_program_with_the_value() -> None:
    out, _translation = run_translated('print("before"); throw "stop"; print("after");')
    assert out.split("\n") == ["before", "ERROR: stop"]
