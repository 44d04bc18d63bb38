"""Random Squirrel programs from a small grammar (valid and invalid mixed), for checking the
parser's verdict against the real VM's compiler (tests/squirrel/test_parser_fuzz.py)."""

from __future__ import annotations

import random
from collections.abc import Callable

BINARY = ["+", "-", "*", "/", "%", "<<", ">>", ">>>", "<", "<=", ">", ">=", "==", "!=", "<=>",
          "&", "|", "^", "&&", "||", "in", "instanceof"]
ASSIGN = ["=", "<-", "+=", "-=", "*=", "/=", "%="]
UNARY = ["-", "!", "~", "typeof ", "clone ", "resume ", "++", "--", "delete "]
NAMES = ["a", "b", "c", "x", "this", "base", "null", "true", "false", "K", "E"]
NUMBERS = ["1", "0x1F", "017", "1.5", "1e3", "'a'", "2147483648"]
STRINGS = ['"s"', '@"v""q"', '"\\n"']
PARAMS = ["", "p", "p, q", "p = 1", "..."]

Gen = Callable[[random.Random, int], str]


def blank(r: random.Random) -> str:
    return r.choice([" ", " ", " ", "", "\n", " /* c */ "])


def separator(r: random.Random) -> str:
    return r.choice(["; ", "\n", " ", ";\n"])


def _list(r: random.Random, d: int, item: Gen) -> str:
    return ", ".join(item(r, d + 1) for _ in range(r.randrange(3)))


ATOMS: list[Gen] = [
    lambda r, d: r.choice(NAMES),
    lambda r, d: r.choice(NUMBERS),
    lambda r, d: r.choice(STRINGS),
    lambda r, d: "::" + r.choice(["a", "g"]),
    lambda r, d: r.choice(["a.b", "a[1]", "f()", "a.b.c", "E.A", "E.B"]),
    lambda r, d: "(" + expr(r, d + 1) + ")",
    lambda r, d: "[" + _list(r, d, expr) + "]",
    lambda r, d: "{" + _list(r, d, lambda r2, d2: r2.choice("kj") + " = " + expr(r2, d2)) + "}",
    lambda r, d: "function(" + r.choice(PARAMS) + ") { return " + expr(r, d + 1) + " }",
    lambda r, d: "@(" + r.choice(["", "p", "p, q"]) + ") " + expr(r, d + 1),
    lambda r, d: r.choice(UNARY) + atom(r, d + 1),
    lambda r, d: atom(r, d + 1) + r.choice(["++", "--", ".m", "[0]", "(1)",
                                            "(" + expr(r, d + 1) + ")"]),
    lambda r, d: "class { x = " + expr(r, d + 1) + " }",
    lambda r, d: expr(r, d + 1) + " ? " + expr(r, d + 1) + " : " + expr(r, d + 1),
]


def atom(r: random.Random, d: int) -> str:
    return ATOMS[r.randrange(len(ATOMS) if d < 3 else 5)](r, d)


def expr(r: random.Random, d: int = 0) -> str:
    text = atom(r, d)
    for _ in range(r.randrange(3 if d < 3 else 1)):
        op = r.choice([*BINARY, *ASSIGN, ","]) if d < 2 else r.choice(BINARY)
        text += blank(r) + op + blank(r) + atom(r, d + 1)
    return text


def _if(r: random.Random, d: int) -> str:
    tail = r.choice(["", " else ", "; else ", "\nelse "])
    return ("if (" + expr(r) + ")" + blank(r) + stmt(r, d + 1)
            + (tail + stmt(r, d + 1) if tail else ""))


def _switch(r: random.Random, d: int) -> str:
    cases = " ".join(r.choice(["case 1: ", 'case "x": ', "default: "]) + stmt(r, d + 1)
                     + separator(r) for _ in range(r.randrange(3)))
    return "switch (" + expr(r) + ") { " + cases + "}"


def _for(r: random.Random, d: int) -> str:
    init = r.choice(["", "local i = 0", "i = 0"])
    return ("for (" + init + ";" + r.choice(["", "i < 2"]) + ";" + r.choice(["", "i++"]) + ") "
            + stmt(r, d + 1))


STATEMENTS: list[Gen] = [
    lambda r, d: expr(r),
    lambda r, d: "local " + r.choice(["a", "z"]) + " = " + expr(r),
    lambda r, d: r.choice(["return", "return " + expr(r), "break", "continue",
                           "throw " + expr(r), ";"]),
    _if,
    lambda r, d: "while (" + expr(r) + ") " + stmt(r, d + 1),
    _for,
    lambda r, d: "foreach (" + r.choice(["v", "k, v"]) + " in " + expr(r) + ") " + stmt(r, d + 1),
    lambda r, d: ("{" + blank(r) + separator(r).join(stmt(r, d + 1) for _ in range(r.randrange(3)))
                  + blank(r) + "}"),
    _switch,
    lambda r, d: "try " + stmt(r, d + 1) + blank(r) + "catch (e) " + stmt(r, d + 1),
    lambda r, d: "do " + stmt(r, d + 1) + blank(r) + "while (" + expr(r) + ")",
    lambda r, d: r.choice(["function f(a) { " + stmt(r, d + 1) + " }",
                           "class C extends B { m = 1; function n() {} }",
                           "enum E { A, B = 2 }", "const K = 5",
                           "local function g() " + stmt(r, d + 1)]),
]


def stmt(r: random.Random, d: int = 0) -> str:
    return STATEMENTS[r.randrange(len(STATEMENTS) if d < 2 else 3)](r, d)


def program(r: random.Random) -> str:
    return separator(r).join(stmt(r) for _ in range(r.randrange(1, 4)))


# --- declarations: class bodies, tables, enums, parameter lists --------------------------------

def _member(r: random.Random, d: int) -> str:
    head = r.choice(["", "", "static ", "</ a = 1 /> ", "</ a = 1, b = \"x\" /> static "])
    body = r.choice([
        "x = " + expr(r, 2), "[" + expr(r, 2) + "] = 1", "function m(" + r.choice(PARAMS)
        + ") { return 1 }", "constructor(" + r.choice(PARAMS) + ") {}", "Inner = class { v = 1 }",
        '"j": 1', "x", "function () {}", "static", "1 = 2",
    ])
    return head + body + r.choice([";", "", " ", ",", "\n", ";;"])


def _class(r: random.Random, d: int) -> str:
    name = r.choice(["C", "C.D", "::C", "C::D"])
    base = r.choice(["", " extends B", " extends B.C", " extends (B)", " extends"])
    attrs = r.choice(["", " </ doc = \"x\" />"])
    return "class " + name + base + attrs + " { " + "".join(
        _member(r, d) for _ in range(r.randrange(4))) + "}"


def _table(r: random.Random, d: int) -> str:
    slots = [r.choice(["k = 1", "[2] = 3", '"j": 4', '"j" = 4', "function f() {}", "k", "1 = 2",
                       "k = function() {}", "constructor = 1"]) for _ in range(r.randrange(4))]
    return "local t = {" + "".join(s + r.choice([",", "", " ", "\n", ";"]) for s in slots) + "}"


def _enum(r: random.Random, d: int) -> str:
    members = [r.choice(["A", "B = 2", "C = -3", 'D = "s"', "E = 1.5", "F = true", "G = x",
                         "H = -1.5", "I = null", "J = 'c'"]) for _ in range(r.randrange(4))]
    return "enum E { " + "".join(m + r.choice([",", " ", "\n", ";"]) for m in members) + "}"


def _function(r: random.Random, d: int) -> str:
    params = ", ".join(r.choice(["p", "q = 1", "r = a.b", "...", "s"])
                       for _ in range(r.randrange(4))) + r.choice(["", ","])
    head = r.choice(["function f", "function A::f", "local function f", "local f = function",
                     "function ::f", "f <- function"])
    return head + "(" + params + ") " + r.choice(["{}", "{ return vargv }", "return 1"])


STATEMENTS += [_class, _table, _enum, _function]
