"""Random programs (tests/squirrel/gen_programs.py): the parser accepts exactly what the real
Squirrel 3.0.5 compiler accepts. Each compile runs in a forked child, because the 3.0.5
compiler crashes (SIGSEGV) on some invalid input such as ``a++ = 1``.

Known, deliberate differences (meaningless code the 3.0.5 compiler lets through): assigning to
or deleting a non-slot expression (``-a = 1``, ``a + b = 1``, ``delete !a``). The parser
rejects those with "can't assign expression" / "can't delete an expression".
"""

from __future__ import annotations

import faulthandler
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.squirrel.errors import SquirrelSyntaxError
from bridge.squirrel.parser import parse
from tests.squirrel.gen_programs import program

squirrel = pytest.importorskip("squirrel")

QUIRKS = ("can't assign expression", "can't delete an expression")


def vm_verdict(source: str) -> bool | None:
    """True/False: the VM compiles it or not; None: the compiler crashed."""
    pid = os.fork()
    if pid == 0:  # child: no output (pytest's faulthandler would report the crash), no return
        faulthandler.disable()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            squirrel.compile(source, "t.nut")
        except ValueError:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None
    return os.WEXITSTATUS(status) == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_parser_agrees_with_the_vm(rng: random.Random) -> None:
    source = program(rng)
    verdict = vm_verdict(source)
    try:
        parse(source, "t.nut")
        ours, message = True, ""
    except SquirrelSyntaxError as exc:
        ours, message = False, str(exc)
    if verdict is None:
        return  # the VM crashed: nothing to compare with
    if verdict and not ours and any(q in message for q in QUIRKS):
        return
    assert ours == verdict, f"VM {'accepts' if verdict else 'rejects'}: {source!r} {message}"


def test_the_vm_crashes_where_the_parser_reports() -> None:
    assert vm_verdict("a++ = 1") is None  # documented for `bridge run`: parse before compiling
    with pytest.raises(SquirrelSyntaxError, match="can't assign expression"):
        parse("a++ = 1", "t.nut")
