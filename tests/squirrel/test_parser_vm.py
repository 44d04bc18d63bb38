"""The parser against the real Squirrel 3.0.5 VM (package squirrel-lang-sq305): every program
the VM compiles must parse, and the programs it rejects here must be rejected too; plus the
corpus smoke test (every .nut under tests/squirrel/corpus parses) and the VM's verdict on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.squirrel.errors import SquirrelSyntaxError
from bridge.squirrel.parser import parse

squirrel = pytest.importorskip("squirrel")

CORPUS = Path(__file__).parent / "corpus"
# Programs meant to fail (syntax-error cases) go under a directory named `errors/` or end in
# `.bad.nut`; every other .nut under corpus/ must parse and compile on the VM.
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*.nut")
                      if "errors" not in p.relative_to(CORPUS).parts[:-1]
                      and not p.name.endswith(".bad.nut"))


def vm_compiles(source: str) -> bool:
    try:
        squirrel.compile(source, "t.nut")
    except ValueError:
        return False
    return True


def we_parse(source: str) -> bool:
    try:
        parse(source, "t.nut")
    except SquirrelSyntaxError:
        return False
    return True


# Each compiles on the VM (checked below): the parser must accept it.
ACCEPTED = [
    "if (1) {} else {} out(1)",
    "if (0) out(1); else out(2); out(3)",
    "if (1) out(6) else out(7)",
    "if (1) if (0) out(1); else out(2)",
    "while (0) {} out(1)",
    "local f = function() {} out(1)",
    "try {} catch(e) {} out(1)",
    "foo <- 1; delete foo",
    "class A { static function f() {return 1} } out(A.f())",
    "for (local i = 0, j = 0; i < 2; i++, j++) {}",
    "local t = { a = 1, }; local a = [1,]",
    "local f = function(a,) {}",
    "class A {} class B extends A </ x = 1 /> {}",
    "class A { static x = 1 </ y = 2 /> z = 3 }",
    "local c = class { constructor() {} }",
    "local a = 1\n-2",
    "switch (1) { case 1: { out(1) } case 2: out(2) }",
    "local a = {}\n;",
    "local t = {\"x\": 1}",
    "out(1 2)",
    "local a=[1 2 3]; local t={a=1 b=2}",
    "enum E {A=true}",
    "local a=1\nlocal b=a\n++b",
    "class A { x=1; y=2 function f() {return 3} }",
    "function f(a, b=2) { return b }",
    "function f(a, ...) { return vargv.len() }",
    "class B extends A { constructor() { base.constructor(5) } }",
    "class T {} T.U <- class { v = 3 }; class T.V { v = 4 }",
    "class T { function m() {return 1} } function T::n() { return 2 }",
    "local a = 1; a++\nout(a)",
    "function g() { yield 1; return 2 } local c = g(); out(resume c)",
    "local i = 0; do { i++ } while (i < 3)\nout(i)",
    "local t = {function f() { return 1 }}",
    "return",
    "this = 1",
    "f()\n(g)",
    "function f(a, b) return a + b",
    "local x = a+++b",
    "a ? b : c = 1",
    "class A extends (B) {}",
    "local t = { a = 1 \"b\": 2 }",
    "enum E { A B C }",
    "local x = ~~1 + !-b",
    "foo(function() {}, @(x) x, class {})",
    "x = {a = function() {}}.a()",
    "class A { static function f() {} static [1] = 2 }",
    "local s = @\"multi\nline\"",
    "if (a) b(); else c(); d()",
    "if (a) b(); else { c() } d()",
    "if (a) x() else {} f()",
    "if (a) b() else while (c) d(); e()",
    "do local x = 1 while (c)",
    "try {} catch (e) x(); f()",
    "function f() return 1; g()",
    "local c = class { x = base.m }",
    "function f() { return base.m }",
    "local x = --a.m",
    "local x = 1.5",
    "const K = 1; const J = 2",
    "local function g() { g <- 1 }",  # g is not yet a local inside its own body
    "const K = 1; local K = 2",
    "enum E { A } local x = E.A.tostring()",
    "enum E { A } function f(E) { return E }",
    "enum E { A } local t = {E = 1}; t.E",
    "const K = 1; function f(K) { return K = 2 }",  # the parameter shadows the constant
]

# Each is rejected by the VM (checked below): the parser must reject it too.
REJECTED = [
    "if (1) {} out(5)",
    "if (0) out(1) else out(2) out(3)",
    "switch (1) { default: out(1); case 1: out(2) }",
    "switch(1) { case 1: out(1) case 2: out(2) }",
    "local t = {\"x\" = 1}",
    "local f = function foo() {}",
    "out(1,)",
    "out(1)out(2)",
    "local x = 1; function g() { x <- 2 }",
    "local t = {}; t.a <- 1 t.b <- 2",
    "local a=1; a = 3 a = 4",
    "function f(a=1, b) { return b }",
    "function f(a, b=2, ...) {}",
    "local x=1; x <- 2",
    "throw",
    "local i = 0; do i++; while (i < 3) out(i)",
    "local x = 1 out(x)",
    "local a = {}; delete a",
    "local a=[1]\nlocal b=a\n[0]",
    "function a.b() {}",
    "delete (a)",
    "(a)++",
    "break",
    "switch (1) { case 1: continue }",
    "1 = 2",
    "foreach (k, v, w in {}) {}",
    "class A { \"x\": 1 }",
    "local x = 018",
    "local s = \"a\nb\"",
    "local x = .5",
    "if (a) b() else if (c) d() else e(); f()",
    "if (a) if (b) c(); else d(); e()",
    "if (a) {} else if (b) {} f()",
    "do if (a) b() else c() while (d)",
    "try const K = 5 catch (e) {}",
    "while (a) x() f()",
    "local f = function() return 1 g()",
    "local a = 1.5.m",
    "a++.m",
    "a--[0]",
    "function f() { base.m = 1 }",
    "function f() { --base.m }",
    "function f() { delete base.m }",
    "const K = 1; K <- 2",
    "const K = 1; K = 2",
    "const K = 1; K++",
    "enum E { A } E.A = 2",
    "enum E { A } E <- 1",
    "const K = 1; delete K",
    "enum E { A } local x = E",
    "enum E { A } local x = E.B",
    "enum E { A } local x = E[\"A\"]",
    "enum E { A } local x = typeof E",
]


@pytest.mark.parametrize("source", ACCEPTED)
def test_accepted_by_both(source: str) -> None:
    assert vm_compiles(source), "the VM rejects it: fix the table"
    assert we_parse(source)


@pytest.mark.parametrize("source", REJECTED)
def test_rejected_by_both(source: str) -> None:
    assert not vm_compiles(source), "the VM accepts it: fix the table"
    assert not we_parse(source)


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS_FILES) >= 5


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_parses(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    program = parse(source, str(path))
    assert program.body
    assert vm_compiles(source)
