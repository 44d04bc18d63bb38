"""Hypothesis-generated Squirrel programs (locals, assignments, if/else, bounded loops, switch,
functions and closures that assign outer locals, tables and arrays) printed on the real VM and
translated: the outputs must be equal."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.squirrel.conftest import requires_vm
from tests.squirrel.harness import run_translated
from tests.squirrel.oracle import run_vm

NAMES = ["a", "b", "c"]
VALUE = st.one_of(st.integers(-5, 40).map(str), st.sampled_from(['"s"', "1.5", "null", "true"]))
TERM = st.one_of(VALUE, st.sampled_from(NAMES), st.sampled_from(["t.x", "arr.len()",
                                                                  "arr[0]", "f(a)"]))
EXPR = st.one_of(
    TERM,
    st.tuples(TERM, st.sampled_from(["+", "-", "*", "<", "==", "&&", "||", "<=>"]), TERM).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"),
)


def _statements(depth: int) -> st.SearchStrategy[str]:
    simple = st.one_of(
        st.tuples(st.sampled_from(NAMES), EXPR).map(lambda t: f"{t[0]} = {t[1]};"),
        st.tuples(st.sampled_from(NAMES), st.sampled_from(["+=", "-="]), VALUE).map(
            lambda t: f"{t[0]} {t[1]} {t[2]};"),
        st.sampled_from(NAMES).map(lambda n: f"{n}++;"),
        EXPR.map(lambda e: f"print({e});"),
        EXPR.map(lambda e: f"t.x = {e};"),
        EXPR.map(lambda e: f"arr.push({e});"),
        st.just("bump();"),
        EXPR.map(lambda e: f"print(box.add({e}));"),
        EXPR.map(lambda e: f"box.v = {e};"),
        st.just("print(big.add(1) + big.get()); print(big instanceof Box);"),
        st.just("local copy = clone box; copy.v = 99; print(box.v + copy.get());"),
    )
    if depth == 0:
        return simple
    inner = st.lists(_statements(depth - 1), min_size=1, max_size=3).map(" ".join)
    return st.one_of(
        simple,
        st.tuples(EXPR, inner, inner).map(lambda t: f"if ({t[0]}) {{ {t[1]} }} else {{ {t[2]} }}"),
        st.tuples(st.integers(0, 3), inner).map(
            lambda t: f"for (local i = 0; i < {t[0]}; i++) {{ {t[1]} }}"),
        st.tuples(inner, EXPR).map(
            lambda t: f"foreach (k, v in [1, 2]) {{ {t[0]} if ({t[1]}) continue; }}"),
        st.tuples(EXPR, inner, inner).map(
            lambda t: f"switch ({t[0]}) {{ case 1: {t[1]} case true: {t[2]} break; "
                      f"default: print(\"d\"); }}"),
        inner.map(lambda body: f"local g = function() {{ {body} }}; g();"),
        st.tuples(st.integers(0, 4), inner).map(
            lambda t: f"local w = 0; while (w < {t[0]}) {{ w++; {t[1]} if (w == 2) break; }}"),
        inner.map(lambda body: f"do {{ {body} }} while (false);"),
        EXPR.map(lambda e: f'try {{ throw {e}; }} catch (err) {{ print("caught " + err); }}'),
        EXPR.map(lambda e: "local fs = []; for (local i = 0; i < 3; i++) { local j = i; "
                           f"fs.push(function() {{ j += 1; return j + {e}; }}); }} "
                           "print(fs[0]() + fs[2]() + fs[0]());"),
        EXPR.map(lambda e: f"t.y <- {e}; print(t.y); delete t.y; print(\"y\" in t);"),
        EXPR.map(lambda e: f'local s = "" + {e}; print(s.len() + s.slice(0, 1));'),
        EXPR.map(lambda e: f"print([{e}, 1].find(1) + typeof {e});"),
    )


PRELUDE = """local a = 1, b = 2, c = 3;
local t = {x = 0};
local arr = [5];
local counter = 0;
function f(v) { return v; }
local bump = function() { counter++; };
class Box {
    v = 0;
    static K = 7;
    constructor(x) { v = x; }
    function add(n) { v += n; return v; }
    function get() { return v + K; }
}
class Big extends Box {
    function add(n) { return base.add(n * 2); }
}
local box = Box(1), big = Big(2);
"""
EPILOGUE = ("print(a); print(b); print(c); print(t.x); print(arr.len()); print(counter); "
            "print(box.v); print(big.v);")


def _program(body: str) -> str:
    return PRELUDE + "try {\n" + body + '\n} catch (e) { print("ERR " + e); }\n' + EPILOGUE


@requires_vm
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_statements(2), min_size=1, max_size=6).map("\n".join),
                min_size=25, max_size=25))
def test_generated_programs_print_what_the_vm_prints(bodies: list[str]) -> None:
    programs = [_program(body) for body in bodies]
    expected = run_vm(programs)
    for program, want in zip(programs, expected, strict=True):
        got, _translation = run_translated(program)
        assert got == want, program
