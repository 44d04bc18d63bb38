"""Expressions of Squirrel 3 (precedence climbing) and the parser's token plumbing.

Split from :mod:`bridge.squirrel.parser` (statements) to keep each file readable; the table of
binary precedences is Squirrel 3.0.5's compiler's, checked against the VM in the tests.
"""

from __future__ import annotations

from typing import TypedDict

from bridge.squirrel import ast
from bridge.squirrel.errors import SquirrelSyntaxError
from bridge.squirrel.lexer import wrap32
from bridge.squirrel.tokens import EOF, FLOAT, IDENT, INT, STRING, Token


class Pos(TypedDict):
    """Where a node starts: spread into its constructor as ``**pos``."""

    line: int
    column: int

# Binary operators by precedence (higher binds tighter); all left-associative.
PRECEDENCE: dict[str, int] = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5,
    "==": 6, "!=": 6, "<=>": 6,
    "<": 7, "<=": 7, ">": 7, ">=": 7, "in": 7, "instanceof": 7,
    "<<": 8, ">>": 8, ">>>": 8,
    "+": 9, "-": 9,
    "*": 10, "/": 10, "%": 10,
}
ASSIGNMENT_OPERATORS = frozenset({"=", "<-", "+=", "-=", "*=", "/=", "%="})
UNARY_OPERATORS = frozenset({"!", "~", "typeof", "clone", "resume"})
_ASSIGNABLE = (ast.Identifier, ast.Member, ast.Index, ast.RootAccess)
_SETTABLE = (*_ASSIGNABLE, ast.This)  # `this = x` compiles in 3.0.5 (and fails when run)



def _constant(target: ast.Node) -> bool:
    """A const, or a member of an enum (``E.A``): the compiler folds both into values."""
    if isinstance(target, (ast.Member, ast.Index)):
        target = target.obj
    return isinstance(target, ast.Identifier) and target.scope == "const"


class ExpressionParser:
    """Token plumbing, scopes and every expression; :mod:`bridge.squirrel.parser` adds the
    statements (function bodies need them, hence the abstract :meth:`statement`)."""

    def __init__(self, tokens: list[Token], file: str) -> None:
        self.tokens = tokens
        self.file = file
        self.pos = 0
        self.tok = tokens[0]
        self.prev_kind = ""  # kind of the last consumed token
        self.context: list[str] = []  # the constructs being read, for error messages
        self.scopes: list[list[set[str]]] = [[{"vargv"}]]  # per function: its block scopes
        self.jumps: list[list[int]] = [[0, 0]]  # per function: [loops, switches] enclosing
        self.parenthesized: ast.Node | None = None  # the last expression read inside ( )
        self.constants: set[str] = set()  # const and enum names declared so far
        self.enums: dict[str, set[str]] = {}  # enums of this file -> their member names

    # --- token plumbing ---------------------------------------------------------------------

    def next(self) -> Token:
        tok = self.tok
        self.prev_kind = tok.kind
        if tok.kind != EOF:
            self.pos += 1
            self.tok = self.tokens[self.pos]
        return tok

    def error(self, message: str, tok: Token | None = None) -> SquirrelSyntaxError:
        at = tok or self.tok
        construct = self.context[-1] if self.context else None
        return SquirrelSyntaxError(self.file, at.line, at.column, message, construct)

    def expect(self, kind: str, what: str | None = None) -> Token:
        if self.tok.kind != kind:
            wanted = what or (f"'{kind}'" if kind != IDENT else "a name")
            raise self.error(f"expected {wanted}, found {self.tok.describe()}")
        return self.next()

    def name(self, what: str = "a name") -> str:
        return str(self.expect(IDENT, what).value)

    def at_end_of_statement(self) -> bool:
        tok = self.tok
        return tok.newline_before or tok.kind in (EOF, "}", ";")

    def optional_semicolon(self) -> None:
        if self.tok.kind == ";":
            self.next()
        elif not self.at_end_of_statement():
            raise self.error(f"end of statement expected (; or new line), found "
                             f"{self.tok.describe()}")

    @staticmethod
    def pos_of(tok: Token) -> Pos:
        return {"line": tok.line, "column": tok.column}

    # --- scopes -----------------------------------------------------------------------------

    def declare(self, name: str) -> None:
        self.scopes[-1][-1].add(name)

    def is_local(self, name: str) -> bool:
        return any(name in block for function in self.scopes for block in function)

    def scope_of(self, name: str) -> str:
        """``local``, ``outer``, ``const`` or "" (this, then root): see ast.Identifier."""
        if any(name in block for block in self.scopes[-1]):
            return "local"
        if any(name in block for function in self.scopes[:-1] for block in function):
            return "outer"
        return "const" if name in self.constants else ""

    def push_block(self) -> None:
        self.scopes[-1].append(set())

    def pop_block(self) -> None:
        self.scopes[-1].pop()

    def statement(self) -> ast.Node:
        raise NotImplementedError

    def block(self) -> ast.Block:
        raise NotImplementedError

    # --- expressions ------------------------------------------------------------------------

    def comma_expr(self) -> ast.Node:
        first = self.expression()
        if self.tok.kind != ",":
            return first
        items = [first]
        while self.tok.kind == ",":
            self.next()
            items.append(self.expression())
        return ast.Comma(items, line=first.line, column=first.column)

    def expression(self) -> ast.Node:
        left = self.binary(1)
        kind = self.tok.kind
        if kind in ASSIGNMENT_OPERATORS:
            op = self.next()
            self.check_assignable(left, op)
            value = self.expression()
            return ast.Assign(kind, left, value, **self.pos_of(op))
        if kind == "?":
            op = self.next()
            then = self.expression()
            self.expect(":", "':' of the conditional operator")
            otherwise = self.expression()
            return ast.Conditional(left, then, otherwise, **self.pos_of(op))
        return left

    def check_assignable(self, target: ast.Node, op: Token) -> None:
        if target is self.parenthesized or not isinstance(
                target, _SETTABLE if op.kind == "=" else _ASSIGNABLE):
            raise self.error(f"can't assign expression (left of {op.kind!r})", op)
        if isinstance(target, (ast.Member, ast.Index)) and isinstance(target.obj, ast.Base):
            raise self.error(f"can't modify a slot of 'base' (left of {op.kind!r})", op)
        if _constant(target):
            raise self.error(f"can't assign to a constant (left of {op.kind!r})", op)
        if op.kind == "<-" and isinstance(target, ast.Identifier) and self.is_local(target.name):
            raise self.error(f"can't 'create' a local slot ({target.name!r} is a local; "
                             f"use '=')", op)

    def binary(self, min_precedence: int) -> ast.Node:
        left = self.postfix()
        precedence = PRECEDENCE
        while True:
            kind = self.tok.kind
            level = precedence.get(kind)
            if level is None or level < min_precedence:
                return left
            op = self.next()
            right = self.binary(level + 1)
            left = ast.Binary(kind, left, right, line=op.line, column=op.column)

    def postfix(self) -> ast.Node:
        node = self.factor()
        while True:
            tok = self.tok
            kind = tok.kind
            if kind == ".":
                self.next()
                if self.tok.kind == "constructor":  # base.constructor(...): the VM allows it
                    self.next()
                    node = ast.Member(node, "constructor", **self.pos_of(tok))
                else:
                    node = ast.Member(node, self.name("a slot name after '.'"),
                                      **self.pos_of(tok))
            elif kind == "[":
                if tok.newline_before:
                    raise self.error("cannot break deref/or comma needed after [exp]=exp slot "
                                     "declaration ('[' starts a new line)")
                self.next()
                key = self.expression()
                self.expect("]")
                node = ast.Index(node, key, **self.pos_of(tok))
            elif kind == "(":
                self.next()
                node = ast.Call(node, self.arguments(), **self.pos_of(tok))
            elif kind in ("++", "--") and not tok.newline_before:
                self.check_assignable(node, tok)
                self.next()
                # nothing may follow a postfix ++/-- (3.0.5: `a++.b`, `a--[0]` do not compile)
                return ast.IncDec(kind, False, node, **self.pos_of(tok))
            else:
                return node

    def arguments(self) -> list[ast.Node]:
        args: list[ast.Node] = []
        while self.tok.kind != ")":
            args.append(self.expression())
            if self.tok.kind == ",":
                self.next()
                if self.tok.kind == ")":
                    raise self.error("expression expected, found ')'")
            elif self.tok.kind == EOF:
                raise self.error("expected ')' closing the call, found end of file")
        self.next()
        return args

    def factor(self) -> ast.Node:
        tok = self.tok
        kind = tok.kind
        where = self.pos_of(tok)
        if kind == IDENT:
            self.next()
            name = str(tok.value)
            scope = self.scope_of(name)
            if scope == "const" and name in self.enums:
                return self.enum_member(name, where)
            return ast.Identifier(name, scope, **where)
        if kind == INT:
            self.next()
            return ast.Integer(tok.value, **where)  # type: ignore[arg-type]
        if kind == STRING:
            self.next()
            return ast.String(str(tok.value), tok.text.startswith("@"), **where)
        if kind == FLOAT:
            self.next()
            return ast.Float(tok.value, **where)  # type: ignore[arg-type]
        if kind in ("true", "false"):
            self.next()
            return ast.Bool(kind == "true", **where)
        if kind == "null":
            self.next()
            return ast.Null(**where)
        if kind == "this":
            self.next()
            return ast.This(**where)
        if kind == "base":
            self.next()
            return ast.Base(**where)
        if kind == "::":
            self.next()
            return ast.RootAccess(self.name("a name after '::'"), **where)
        if kind == "(":
            self.next()
            inner = self.comma_expr()
            self.expect(")")
            self.parenthesized = inner  # `(a) = 1`, `(a)++`, `delete (a)`: not a slot any more
            return inner
        if kind == "[":
            return self.array_literal()
        if kind == "{":
            return self.table_literal()
        if kind == "function":
            self.next()
            return self.function_rest(None, where)
        if kind == "@":
            self.next()
            return self.function_rest(None, where, is_lambda=True)
        if kind == "class":
            self.next()
            return self.class_rest(None, where)
        if kind == "-":
            self.next()
            operand = self.tok
            if operand.kind == INT:
                self.next()
                return ast.Integer(wrap32(-int(operand.value)), **where)  # type: ignore[call-overload]
            if operand.kind == FLOAT:
                self.next()
                return ast.Float(-float(operand.value), **where)  # type: ignore[arg-type]
            return ast.Unary("-", self.postfix(), **where)
        if kind in UNARY_OPERATORS:
            self.next()
            return ast.Unary(kind, self.postfix(), **where)
        if kind in ("++", "--"):
            self.next()
            target = self.postfix()
            self.check_assignable(target, tok)
            return ast.IncDec(kind, True, target, **where)
        if kind == "delete":
            self.next()
            target = self.postfix()
            if isinstance(target, (ast.Member, ast.Index)) and isinstance(target.obj, ast.Base):
                raise self.error("can't delete a slot of 'base'", tok)
            if _constant(target):
                raise self.error("can't delete a constant", tok)
            if target is self.parenthesized or not isinstance(target, _ASSIGNABLE) or (
                    isinstance(target, ast.Identifier) and self.is_local(target.name)):
                raise self.error("can't delete an expression (only a slot: a.b, a[k], ::name)",
                                 tok)
            return ast.Delete(target, **where)
        raise self.error(f"expression expected, found {tok.describe()}")

    def enum_member(self, name: str, where: Pos) -> ast.Node:
        """``E.A``: an enum is only ever read as one of its members (a compile-time value)."""
        dot = self.expect(".", f"'.' after enum {name} (an enum is used as {name}.MEMBER)")
        member = self.name(f"a member of enum {name}")
        if member not in self.enums[name]:
            raise self.error(f"invalid constant [{name}.{member}]: enum {name} has no member "
                             f"{member!r}", self.tokens[self.pos - 1])
        return ast.Member(ast.Identifier(name, "const", **where), member, **self.pos_of(dot))

    def array_literal(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("array literal")
        items: list[ast.Node] = []
        while self.tok.kind != "]":
            items.append(self.expression())
            if self.tok.kind == ",":
                self.next()
        self.next()
        self.context.pop()
        return ast.ArrayLiteral(items, **where)

    def table_literal(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("table literal")
        slots: list[ast.TableSlot] = []
        while self.tok.kind != "}":
            slots.append(self.table_slot(json=True))
            if self.tok.kind == ",":
                self.next()
        self.next()
        self.context.pop()
        return ast.TableLiteral(slots, **where)

    def table_slot(self, json: bool) -> ast.TableSlot:
        """``name = v``, ``[k] = v``, ``function name(…) {…}`` or (tables) ``"key": v``."""
        tok = self.tok
        where = self.pos_of(tok)
        if tok.kind == "function":
            self.next()
            name = self.name("the function's name")
            function = self.function_rest(name, where)
            return ast.TableSlot(ast.String(name, **where), function, **where)
        if tok.kind == "[":
            self.next()
            key = self.comma_expr()
            self.expect("]")
            self.expect("=")
            return ast.TableSlot(key, self.expression(), True, **where)
        if tok.kind == STRING and json:
            self.next()
            self.expect(":", "':' after a quoted key")
            return ast.TableSlot(ast.String(str(tok.value), **where), self.expression(), **where)
        if tok.kind == IDENT:
            self.next()
            self.expect("=", f"'=' after slot name {tok.text!r}")
            return ast.TableSlot(ast.String(str(tok.value), **where), self.expression(), **where)
        raise self.error(f"expected a slot (name = value, [key] = value, function name()), "
                         f"found {tok.describe()}")

    def attributes(self) -> ast.TableLiteral:
        """``</ name = value, … />``: parsed (so they are checked) and otherwise ignored."""
        where = self.pos_of(self.next())
        self.context.append("attributes")
        slots: list[ast.TableSlot] = []
        while self.tok.kind != "/>":
            if self.tok.kind == EOF:
                raise self.error("expected '/>' closing the attributes, found end of file")
            slots.append(self.table_slot(json=False))
            if self.tok.kind == ",":
                self.next()
        self.next()
        self.context.pop()
        return ast.TableLiteral(slots, **where)

    def parameters(self) -> tuple[list[ast.Param], bool]:
        params: list[ast.Param] = []
        varargs = False
        defaults = False
        dots: Token | None = None
        while self.tok.kind != ")":
            tok = self.tok
            if tok.kind == "...":
                dots = self.next()
                varargs = True
                if self.tok.kind != ")":
                    raise self.error("expected ')' after '...'")
                break
            name = self.name("a parameter name")
            default = None
            if self.tok.kind == "=":
                self.next()
                default = self.expression()
                defaults = True
            elif defaults:
                raise self.error(f"expected '=': parameter {name!r} follows one with a default",
                                 tok)
            params.append(ast.Param(name, default, **self.pos_of(tok)))
            if self.tok.kind == ",":
                self.next()
            elif self.tok.kind != ")":
                raise self.error(f"expected ')' or ',', found {self.tok.describe()}")
        self.next()
        if varargs and defaults:
            raise self.error("a function with default parameters cannot also take '...' "
                             "(Squirrel 3.0)", dots)
        return params, varargs

    def function_rest(self, name: str | None, where: Pos,
                      is_lambda: bool = False) -> ast.FunctionExpr:
        """From ``(`` of the parameters to the end of the body."""
        self.context.append(f"function {name!r}" if name else
                            "lambda" if is_lambda else "anonymous function")
        self.expect("(")
        params, varargs = self.parameters()
        # 3.0.5 gives every function a `vargv` local (an empty array without `...`)
        self.scopes.append([{p.name for p in params} | {"vargv"}])
        self.jumps.append([0, 0])
        body = self.expression() if is_lambda else self.statement()
        self.jumps.pop()
        self.scopes.pop()
        self.context.pop()
        return ast.FunctionExpr(name, params, varargs, body, is_lambda, **where)

    def class_rest(self, name: str | None, where: Pos) -> ast.ClassExpr:
        """From ``extends`` (or the attributes, or ``{``) to the closing ``}``."""
        self.context.append(f"class {name}" if name else "class expression")
        base = None
        if self.tok.kind == "extends":
            self.next()
            base = self.expression()
        attributes = self.attributes() if self.tok.kind == "</" else None
        self.expect("{", "'{' opening the class body")
        members: list[ast.ClassMember] = []
        while self.tok.kind != "}":
            members.append(self.class_member())
            if self.tok.kind == ";":
                self.next()
        self.next()
        self.context.pop()
        return ast.ClassExpr(name, base, members, attributes, **where)

    def class_member(self) -> ast.ClassMember:
        attributes = self.attributes() if self.tok.kind == "</" else None
        static = False
        if self.tok.kind == "static":
            self.next()
            static = True
        tok = self.tok
        where = self.pos_of(tok)
        if tok.kind == "constructor":
            self.next()
            function = self.function_rest("constructor", where)
            return ast.ClassMember("constructor", ast.String("constructor", **where), function,
                                   static, False, attributes, **where)
        if tok.kind in ("function", "[", IDENT):
            slot = self.table_slot(json=False)
            kind = "method" if tok.kind == "function" else "field"
            return ast.ClassMember(kind, slot.key, slot.value, static, slot.computed, attributes,
                                   **where)
        if tok.kind == EOF:
            raise self.error("expected '}' closing the class body, found end of file")
        raise self.error(f"expected a class member (name = value, function name(), "
                         f"constructor(), static …), found {tok.describe()}")
