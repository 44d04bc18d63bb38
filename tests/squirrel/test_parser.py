"""The parser: precedence and expression shapes, statements, positions, errors (table-driven)."""

from __future__ import annotations

import pytest

from bridge.squirrel import ast
from bridge.squirrel.errors import SquirrelSyntaxError
from bridge.squirrel.parser import declared_constants, parse, parse_expression
from tests.squirrel.sexp import sx

EXPRESSIONS = [
    ("1 + 2 * 3", "(+ 1 (* 2 3))"),
    ("1 - 2 - 3", "(- (- 1 2) 3)"),
    ("a / b % c", "(% (/ a b) c)"),
    ("a << 1 + 2", "(<< a (+ 1 2))"),
    ("a >>> b >> c << d", "(<< (>> (>>> a b) c) d)"),
    ("a < b == c > d", "(== (< a b) (> c d))"),
    ("a <=> b != c", "(!= (<=> a b) c)"),
    ("a & b == c", "(& a (== b c))"),
    ("a | b ^ c & d", "(| a (^ b (& c d)))"),
    ("a || b && c", "(|| a (&& b c))"),
    ("a && b || c && d", "(|| (&& a b) (&& c d))"),
    ('"k" in t == false', "(== (in 'k' t) false)"),
    ("1 | k in t", "(| 1 (in k t))"),
    ("a && b in c", "(&& a (in b c))"),
    ("x instanceof C == true", "(== (instanceof x C) true)"),
    ("a < b in c", "(in (< a b) c)"),
    ("typeof a + b", "(+ (typeof a) b)"),
    ("typeof typeof a", "(typeof (typeof a))"),
    ("-a.b", "(- (. a b))"),
    ("-1", "-1"),
    ("-2147483648", "-2147483648"),
    ("- -a", "(- (- a))"),
    ("-1.5", "-1.5"),
    ("!a && ~b", "(&& (! a) (~ b))"),
    ("clone a.b", "(clone (. a b))"),
    ("resume g", "(resume g)"),
    ("a = b = c", "(= a (= b c))"),
    ("a += b * 2", "(+= a (* b 2))"),
    ("t.x <- 1", "(<- (. t x) 1)"),
    ("::g <- f()", "(<- ::g (call f))"),
    ("a ? b : c ? d : e", "(? a b (? c d e))"),
    ("a = b ? c : d", "(= a (? b c d))"),
    ("a || b ? c : d", "(? (|| a b) c d)"),
    ("a, b = 1, c", "(, a (= b 1) c)"),
    ("(a, b)", "(, a b)"),
    ("a++ + ++b", "(+ (post++ a) (++pre b))"),
    ("a+++b", "(+ (post++ a) b)"),
    ("--a.b[c]", "(--pre ([] (. a b) c))"),
    ("a.b(1)(2)[3].c", "(. ([] (call (call (. a b) 1) 2) 3) c)"),
    ("f(1 2)", "(call f 1 2)"),
    ("f()", "(call f)"),
    ("[1, 2 3,]", "[1 2 3]"),
    ("{a = 1, [k] = 2, \"j\": 3}", "{'a'=1 [k]=2 'j'=3}"),
    ("delete t.x", "(delete (. t x))"),
    ("delete ::g", "(delete ::g)"),
    ("@(x) x * 2", "(lambda (x) (* x 2))"),
    ("function(a, b = 2) { return a }", "(function (a b=2) {(return a)})"),
    ("function(...) {}", "(function (...) {})"),
    ("base.constructor(1)", "(call (. base constructor) 1)"),
    ("this.x", "(. this x)"),
    ("f.bindenv(this)", "(call (. f bindenv) this)"),
    ("class extends B {}", "(class B 0)"),
    ("0xFFFFFFFF", "-1"),
    ("'a'", "97"),
    ("@\"a\"\"b\"", "'a\"b'"),
    ("null", "null"),
    ("a\n-b", "(- a b)"),
]


@pytest.mark.parametrize(("source", "expected"), EXPRESSIONS)
def test_expressions(source: str, expected: str) -> None:
    assert sx(parse_expression(source)) == expected


def only(source: str) -> ast.Node:
    program = parse(source, "s.nut")
    assert len(program.body) == 1, program.body
    return program.body[0]


def test_statement_shapes() -> None:
    node = only("if (a) b(); else if (c) d(); else { e() }")
    assert isinstance(node, ast.If) and isinstance(node.otherwise, ast.If)
    assert isinstance(node.otherwise.otherwise, ast.Block)

    loop = only("for (local i = 0, j = 1; i < j; i++, j--) x += i;")
    assert isinstance(loop, ast.For) and isinstance(loop.init, ast.LocalDecl)
    assert [v.name for v in loop.init.names] == ["i", "j"]
    assert sx(loop.update) == "(, (post++ i) (post-- j))"

    empty_for = only("for (;;) break")
    assert isinstance(empty_for, ast.For)
    assert (empty_for.init, empty_for.test, empty_for.update) == (None, None, None)

    each = only("foreach (k, v in t) {}")
    assert isinstance(each, ast.Foreach) and (each.key, each.value) == ("k", "v")
    single = only("foreach (v in t) {}")
    assert isinstance(single, ast.Foreach) and (single.key, single.value) == (None, "v")

    sw = only("switch (x) { case 1: case 2: a(); break; default: b() }")
    assert isinstance(sw, ast.Switch)
    assert [sx(c.test) for c in sw.cases] == ["1", "2", "_"]
    assert [len(c.body) for c in sw.cases] == [0, 2, 1]

    tr = only("try { throw {code = 1} } catch (e) { x = e }")
    assert isinstance(tr, ast.Try) and tr.catch_name == "e"

    do = only("do { i++ } while (i < 3)")
    assert isinstance(do, ast.DoWhile) and sx(do.test) == "(< i 3)"


def test_declarations() -> None:
    fn = only("function A::b::c(x, ...) {}")
    assert isinstance(fn, ast.FunctionDecl) and fn.path == ["A", "b", "c"]
    assert fn.function.varargs and fn.function.name == "c"

    local_fn = only("local function f(n) { return n ? f(n - 1) : 0 }")
    assert isinstance(local_fn, ast.LocalFunction) and local_fn.name == "f"

    enum = only('enum E { A, B = 5, C, D = "s", F = -2 }')
    assert isinstance(enum, ast.EnumDecl)
    # The VM counts implicit members on their own: C is 1, not 6.
    assert [(m.name, sx(m.value)) for m in enum.members] == [
        ("A", "0"), ("B", "5"), ("C", "1"), ("D", "'s'"), ("F", "-2")]

    const = only("const K = -2.5")
    assert isinstance(const, ast.ConstDecl) and sx(const.value) == "-2.5"

    nested = only("class Outer.Inner extends Base { x = 1 }")
    assert isinstance(nested, ast.ClassDecl) and sx(nested.target) == "(. Outer Inner)"
    assert nested.cls.name == "Inner" and sx(nested.cls.base) == "Base"


def test_class_members() -> None:
    decl = only("""
class A </ doc = "x" /> {
    x = 1;
    static s = [];
    [k] = 2
    Inner = class { v = 3 }
    </ hidden = true />
    static function f() {}
    constructor(a, b = 1) { base.constructor(a) }
    function _tostring() { return "A" }
}""")
    assert isinstance(decl, ast.ClassDecl)
    cls = decl.cls
    assert cls.attributes is not None and sx(cls.attributes) == "{'doc'='x'}"
    table = [(m.kind, sx(m.key), m.static, m.computed, m.attributes is not None)
             for m in cls.members]
    assert table == [
        ("field", "'x'", False, False, False),
        ("field", "'s'", True, False, False),
        ("field", "k", False, True, False),
        ("field", "'Inner'", False, False, False),
        ("method", "'f'", True, False, True),
        ("constructor", "'constructor'", False, False, False),
        ("method", "'_tostring'", False, False, False),
    ]
    assert isinstance(cls.members[3].value, ast.ClassExpr)


def test_positions() -> None:
    program = parse("local a = 1\n\n  foo(a,\n    b + c)\n", "p.nut")
    local, call_stmt = program.body
    assert (local.line, local.column) == (1, 1)
    assert (call_stmt.line, call_stmt.column) == (3, 3)
    assert isinstance(call_stmt, ast.ExprStatement) and isinstance(call_stmt.expr, ast.Call)
    plus = call_stmt.expr.args[1]
    assert isinstance(plus, ast.Binary) and (plus.line, plus.column) == (4, 7)


def test_comments_are_kept() -> None:
    program = parse("// head\nlocal a = 1 // tail\n", "c.nut")
    assert [(c.text, c.line, c.own_line) for c in program.comments] == [
        (" head", 1, True), (" tail", 2, False)]


def test_walk_visits_every_node() -> None:
    program = parse("local t = { f = function(a) { return a + 1 } }", "w.nut")
    kinds = [type(n).__name__ for n in ast.walk(program)]
    assert kinds == ["Program", "LocalDecl", "LocalVar", "TableLiteral", "TableSlot", "String",
                     "FunctionExpr", "Param", "Block", "Return", "Binary", "Identifier",
                     "Integer"]


ERRORS = [
    ("local = 1", 1, 7, "expected a name", "local declaration"),
    ("x = (1 + ", 1, 10, "expression expected, found end of file", None),
    ("if (a) {} b()", 1, 11, "end of statement expected", "if statement"),
    ("a = 1 b = 2", 1, 7, "end of statement expected", None),
    ("local a = [1]\nlocal b = a\n[0]", 3, 1, "cannot break deref", "local declaration"),
    ("function f(a = 1, b) {}", 1, 19, "follows one with a default", "function 'f'"),
    ("function f(a = 1, ...) {}", 1, 19, "cannot also take '...'", "function 'f'"),
    ("break", 1, 1, "'break' has to be in a loop block", None),
    ("switch (x) { case 1: continue }", 1, 22, "'continue' has to be in a loop", None),
    ("local x = 1; x <- 2", 1, 16, "can't 'create' a local slot", None),
    ("1 = 2", 1, 3, "can't assign expression", None),
    ("(a)++", 1, 4, "can't assign expression", None),
    ("local a = 1; delete a", 1, 14, "can't delete an expression", None),
    ("switch (x) { default: a(); case 1: b() }", 1, 28, "'case', 'default' (the last)",
     "switch statement"),
    ("class A { 1 }", 1, 11, "expected a class member", "class A"),
    ("class A { x = 1", 1, 16, "expected '}' closing the class body", "class A"),
    ("local t = { x }", 1, 15, "'=' after slot name 'x'", "table literal"),
    ("enum E { A = b }", 1, 14, "scalar expected", "enum E"),
    ("do x++; while (x)", 1, 7, "'while' after the body of 'do'", "do-while statement"),
    ("try { } x()", 1, 9, "'catch' after the body of 'try'", "try statement"),
    ("f(1,)", 1, 5, "expression expected, found ')'", None),
    ("a ? b", 1, 6, "':' of the conditional operator", None),
    ("x.", 1, 3, "a slot name after '.'", None),
    ("local s = \"open", 1, 11, "unfinished string", None),
    ("{", 1, 2, "found end of file", None),
]


@pytest.mark.parametrize(("source", "line", "column", "needle", "construct"), ERRORS)
def test_syntax_errors(source: str, line: int, column: int, needle: str,
                       construct: str | None) -> None:
    with pytest.raises(SquirrelSyntaxError) as info:
        parse(source, "bad.nut")
    text = str(info.value)
    assert text.startswith(f"bad.nut:{line}:{column}: "), text
    assert needle in text
    if construct is not None:
        assert info.value.construct == construct and f"(in {construct})" in text


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(SquirrelSyntaxError, match="nested too deeply"):
        parse("local x = " + "(" * 2000 + "1" + ")" * 2000, "deep.nut")
    long_chain = "local s = " + " + ".join(['"a"'] * 5000)
    assert isinstance(parse(long_chain, "long.nut").body[0], ast.LocalDecl)


def test_identifier_scopes_follow_the_compiler() -> None:
    program = parse("""
const LIMIT = 3
enum Colour { Red }
local top = 1
function f(param, ...) {
    local inner = param + top + LIMIT + Colour.Red + vargv.len() + member + ::root
    local g = function() { inner = 2; return top }
    foreach (k, v in inner) { v; k }
    try {} catch (err) { err }
    local function h() { h }
    return unknown
}
local after = LIMIT
""", "scopes.nut")
    seen = [(n.name, n.scope) for n in ast.walk(program) if isinstance(n, ast.Identifier)]
    assert seen == [
        ("param", "local"), ("top", "outer"), ("LIMIT", "const"), ("Colour", "const"),
        ("vargv", "local"), ("member", ""),
        ("inner", "outer"), ("top", "outer"),
        ("inner", "local"), ("v", "local"), ("k", "local"),
        ("err", "local"),
        ("h", ""),  # a local function is not visible in its own body (3.0.5)
        ("unknown", ""),
        ("LIMIT", "const"),
    ]


def test_constants_of_required_libraries() -> None:
    library = parse("const API = 1\nenum State { On }\nfunction f() { const INNER = 2 }", "l.nut")
    assert declared_constants(library) == {"API", "State", "INNER"}
    agent = parse("local x = API + State.On + other", "a.nut",
                  constants=declared_constants(library))
    scopes = {n.name: n.scope for n in ast.walk(agent) if isinstance(n, ast.Identifier)}
    assert scopes == {"API": "const", "State": "const", "other": ""}
