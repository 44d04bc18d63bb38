"""The corpus: one Squirrel program per construct and semantic (tests/squirrel/corpus/*.nut),
each translated and run; its output must equal the expected output (``.out``, recorded from the
real VM) and, where the oracle is installed, what the real VM prints now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.squirrel.conftest import requires_vm
from tests.squirrel.harness import run_translated
from tests.squirrel.oracle import run_vm

CORPUS = Path(__file__).parent / "corpus"
PROGRAMS = sorted(CORPUS.glob("*.nut"))


def _expected(program: Path) -> str:
    return program.with_suffix(".out").read_text(encoding="utf-8").removesuffix("\n")


def test_the_corpus_covers_the_constructs() -> None:
    assert len(PROGRAMS) >= 18
    assert all(p.with_suffix(".out").is_file() for p in PROGRAMS)


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.stem)
def test_translated_program_prints_the_expected_output(program: Path) -> None:
    got, translation = run_translated(program.read_text(encoding="utf-8"), str(program))
    assert got == _expected(program), translation.python


@requires_vm
def test_the_expected_outputs_are_what_the_real_vm_prints() -> None:
    outputs = run_vm([p.read_text(encoding="utf-8") for p in PROGRAMS])
    for program, output in zip(PROGRAMS, outputs, strict=True):
        assert output == _expected(program), program.name


def test_every_generated_line_of_a_statement_maps_back_to_its_nut_line() -> None:
    program = CORPUS / "classes.nut"
    _got, translation = run_translated(program.read_text(encoding="utf-8"), str(program))
    py_lines = translation.python.splitlines()
    for number, text in enumerate(py_lines, start=1):
        if text.strip().startswith("def speak"):
            assert translation.nut_location(number) == (str(program), 9)
    assert translation.nut_location(1) is None  # the header the translator adds


PARSE_CORPUS = [p for p in sorted((CORPUS / "parse").glob("*.nut"))
                if "#require" not in p.read_text(encoding="utf-8")
                and "yield" not in p.read_text(encoding="utf-8")]


@requires_vm
def test_the_parser_corpus_runs_as_on_the_real_vm() -> None:
    """The parser's corpus (classes, functions, operators, literals) executed both ways: the
    same output, or the same error (e.g. the VM's "trying to set 'class'")."""
    assert PARSE_CORPUS
    outputs = run_vm([p.read_text(encoding="utf-8") for p in PARSE_CORPUS])
    for program, expected in zip(PARSE_CORPUS, outputs, strict=True):
        got, _translation = run_translated(program.read_text(encoding="utf-8"), str(program))
        assert got == expected, program.name
