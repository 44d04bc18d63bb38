"""The Squirrel 3 parser: tokens to the tree of :mod:`bridge.squirrel.ast`, a pure function.

Recursive descent for statements, precedence climbing for binary operators. Where the grammar
is loose the parser follows the reference compiler (sqcompiler.cpp, Squirrel 3.0.5), checked
against the real VM in the tests:

- a statement ends at ``;``, a line break, ``}`` or the end of the file; after a statement that
  ends with ``}`` or ``;`` nothing more is needed (``if (x) {} y()`` on one line is still an
  error, as in the VM: the then-branch must end before anything but ``else``);
- after an ``else`` branch that does not end with ``}`` the statement must end there too, and
  ``const`` ends its own statement (both as the 3.0.5 compiler does);
- commas are optional between call arguments, array items, table slots and enum members;
- ``x\\n[1]`` is an error and ``x\\n++`` is not a postfix increment;
- ``in`` and ``instanceof`` bind like ``<``; ``&&`` binds tighter than ``||``; ``typeof``, ``!``,
  ``~``, ``-``, ``clone``, ``resume`` apply to a postfix expression;
- implicit enum members count 0, 1, … regardless of explicit values;
- default parameters and ``...`` cannot be combined (3.0.5 rejects it).
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.squirrel import ast
from bridge.squirrel.lexer import lex, wrap32
from bridge.squirrel.parse_expr import PRECEDENCE, ExpressionParser
from bridge.squirrel.tokens import EOF, FLOAT, INT, STRING


class _Parser(ExpressionParser):
    """Statements; expressions and the token plumbing come from ExpressionParser."""

    # --- statements -------------------------------------------------------------------------

    def program(self) -> ast.Program:
        body = self.statements((EOF,))
        return ast.Program(body, self.file, line=1, column=1)

    def statements(self, terminators: tuple[str, ...]) -> list[ast.Node]:
        body: list[ast.Node] = []
        while self.tok.kind not in terminators:
            if self.tok.kind == EOF:
                raise self.error(f"expected {' or '.join(map(repr, terminators))}, "
                                 f"found end of file")
            body.append(self.statement())
            if self.prev_kind not in ("}", ";"):
                self.optional_semicolon()
        return body

    def statement(self) -> ast.Node:
        tok = self.tok
        kind = tok.kind
        where = self.pos_of(tok)
        if kind == ";":
            self.next()
            return ast.Empty(**where)
        method = _STATEMENTS.get(kind)
        if method is not None:
            return method(self)
        return ast.ExprStatement(self.comma_expr(), **where)

    def block(self) -> ast.Block:
        where = self.pos_of(self.next())
        self.push_block()
        body = self.statements(("}",))
        self.pop_block()
        self.expect("}")
        return ast.Block(body, **where)

    def scoped_statement(self) -> ast.Node:
        """A statement in its own scope (a loop body, a branch)."""
        self.push_block()
        node = self.statement()
        self.pop_block()
        return node

    def if_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("if statement")
        self.expect("(")
        test = self.comma_expr()
        self.expect(")")
        then = self.scoped_statement()
        if self.tok.kind not in ("}", "else"):
            self.optional_semicolon()
        otherwise = None
        if self.tok.kind == "else":
            self.next()
            otherwise = self.scoped_statement()
            if self.prev_kind != "}":  # 3.0.5: `if (a) b() else if (c) d() else e(); f()` fails
                self.optional_semicolon()
        self.context.pop()
        return ast.If(test, then, otherwise, **where)

    def loop_body(self) -> ast.Node:
        self.jumps[-1][0] += 1
        body = self.scoped_statement()
        self.jumps[-1][0] -= 1
        return body

    def while_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("while statement")
        self.expect("(")
        test = self.comma_expr()
        self.expect(")")
        body = self.loop_body()
        self.context.pop()
        return ast.While(test, body, **where)

    def do_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("do-while statement")
        body = self.loop_body()
        self.expect("while", "'while' after the body of 'do'")
        self.expect("(")
        test = self.comma_expr()
        self.expect(")")
        self.context.pop()
        return ast.DoWhile(body, test, **where)

    def for_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("for statement")
        self.expect("(")
        self.push_block()
        init: ast.Node | None = None
        if self.tok.kind == "local":
            init = self.local_statement()
        elif self.tok.kind != ";":
            init = self.comma_expr()
        self.expect(";")
        test = self.comma_expr() if self.tok.kind != ";" else None
        self.expect(";")
        update = self.comma_expr() if self.tok.kind != ")" else None
        self.expect(")")
        body = self.loop_body()
        self.pop_block()
        self.context.pop()
        return ast.For(init, test, update, body, **where)

    def foreach_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("foreach statement")
        self.expect("(")
        first = self.name()
        key, value = None, first
        if self.tok.kind == ",":
            self.next()
            key, value = first, self.name()
        self.expect("in")
        iterable = self.expression()
        self.expect(")")
        self.push_block()
        if key is not None:
            self.declare(key)
        self.declare(value)
        body = self.loop_body()
        self.pop_block()
        self.context.pop()
        return ast.Foreach(key, value, iterable, body, **where)

    def switch_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("switch statement")
        self.expect("(")
        subject = self.comma_expr()
        self.expect(")")
        self.expect("{")
        cases: list[ast.SwitchCase] = []
        self.jumps[-1][1] += 1
        while self.tok.kind == "case":
            at = self.pos_of(self.next())
            test = self.expression()
            self.expect(":")
            self.push_block()
            cases.append(ast.SwitchCase(test, self.statements(("case", "default", "}")), **at))
            self.pop_block()
        if self.tok.kind == "default":
            at = self.pos_of(self.next())
            self.expect(":")
            self.push_block()
            cases.append(ast.SwitchCase(None, self.statements(("}", "case", "default")), **at))
            self.pop_block()
        self.jumps[-1][1] -= 1
        self.expect("}", "'case', 'default' (the last) or '}'")
        self.context.pop()
        return ast.Switch(subject, cases, **where)

    def local_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        if self.tok.kind == "function":
            self.next()
            name = self.name("the function's name")
            function = self.function_rest(name, where)
            # declared after its body, as 3.0.5 does: inside, `name` is not this local
            self.declare(name)
            return ast.LocalFunction(name, function, **where)
        self.context.append("local declaration")
        names: list[ast.LocalVar] = []
        while True:
            at = self.pos_of(self.tok)
            name = self.name()
            value = None
            if self.tok.kind == "=":
                self.next()
                value = self.expression()
            self.declare(name)
            names.append(ast.LocalVar(name, value, **at))
            if self.tok.kind != ",":
                break
            self.next()
        self.context.pop()
        return ast.LocalDecl(names, **where)

    def return_statement(self) -> ast.Node:
        tok = self.next()
        value = None if self.at_end_of_statement() else self.comma_expr()
        node_type = ast.Return if tok.kind == "return" else ast.Yield
        return node_type(value, **self.pos_of(tok))

    def jump_statement(self) -> ast.Node:
        tok = self.next()
        loops, switches = self.jumps[-1]
        if tok.kind == "break" and loops + switches == 0:
            raise self.error("'break' has to be in a loop block", tok)
        if tok.kind == "continue" and loops == 0:
            raise self.error("'continue' has to be in a loop block", tok)
        return (ast.Break if tok.kind == "break" else ast.Continue)(**self.pos_of(tok))

    def function_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        path = [self.name("the function's name")]
        while self.tok.kind == "::":
            self.next()
            path.append(self.name("a name after '::'"))
        return ast.FunctionDecl(path, self.function_rest(path[-1], where), **where)

    def class_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        target: ast.Node
        if self.tok.kind == "::":
            at = self.pos_of(self.next())
            target = ast.RootAccess(self.name("the class name"), **at)
        else:
            at = self.pos_of(self.tok)
            name = self.name("the class name")
            target = ast.Identifier(name, self.scope_of(name), **at)
        while self.tok.kind == ".":
            at = self.pos_of(self.next())
            target = ast.Member(target, self.name("a name after '.'"), **at)
        name = target.name if isinstance(target, (ast.Identifier, ast.RootAccess, ast.Member)) \
            else None
        return ast.ClassDecl(target, self.class_rest(name, where), **where)

    def enum_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        name = self.name("the enum's name")
        self.context.append(f"enum {name}")
        self.expect("{")
        members: list[ast.EnumMember] = []
        counter = 0
        while self.tok.kind != "}":
            at = self.pos_of(self.tok)
            member = self.name("an enum member name")
            if self.tok.kind == "=":
                self.next()
                value = self.scalar()
            else:
                value = ast.Integer(counter, **at)
                counter += 1
            members.append(ast.EnumMember(member, value, **at))
            if self.tok.kind == ",":
                self.next()
        self.next()
        self.context.pop()
        self.constants.add(name)
        self.enums[name] = {m.name for m in members}
        return ast.EnumDecl(name, members, **where)

    def const_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        name = self.name("the constant's name")
        self.context.append(f"const {name}")
        self.expect("=")
        value = self.scalar()
        self.optional_semicolon()  # its own, as in 3.0.5: `try const K = 1 catch …` fails
        self.context.pop()
        self.constants.add(name)
        return ast.ConstDecl(name, value, **where)

    def scalar(self) -> ast.Node:
        tok = self.tok
        where = self.pos_of(tok)
        negative = tok.kind == "-"
        if negative:
            tok = self.next() and self.tok
        if tok.kind == INT:
            self.next()
            return ast.Integer(wrap32(-int(tok.value)) if negative else int(tok.value),  # type: ignore[call-overload]
                               **where)
        if tok.kind == FLOAT:
            self.next()
            return ast.Float(-float(tok.value) if negative else float(tok.value),  # type: ignore[arg-type]
                             **where)
        if not negative and tok.kind == STRING:
            self.next()
            return ast.String(str(tok.value), **where)
        if not negative and tok.kind in ("true", "false"):
            self.next()
            return ast.Bool(tok.kind == "true", **where)
        raise self.error(f"scalar expected (a number, string or bool), found {tok.describe()}")

    def try_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        self.context.append("try statement")
        body = self.scoped_statement()
        self.expect("catch", "'catch' after the body of 'try'")
        self.expect("(")
        name = self.name("the caught value's name")
        self.expect(")")
        self.push_block()
        self.declare(name)
        handler = self.statement()
        self.pop_block()
        self.context.pop()
        return ast.Try(body, name, handler, **where)

    def throw_statement(self) -> ast.Node:
        where = self.pos_of(self.next())
        return ast.Throw(self.comma_expr(), **where)


_STATEMENTS = {
    "if": _Parser.if_statement, "while": _Parser.while_statement, "do": _Parser.do_statement,
    "for": _Parser.for_statement, "foreach": _Parser.foreach_statement,
    "switch": _Parser.switch_statement, "local": _Parser.local_statement,
    "return": _Parser.return_statement, "yield": _Parser.return_statement,
    "break": _Parser.jump_statement, "continue": _Parser.jump_statement,
    "function": _Parser.function_statement, "class": _Parser.class_statement,
    "enum": _Parser.enum_statement, "const": _Parser.const_statement,
    "{": _Parser.block, "try": _Parser.try_statement, "throw": _Parser.throw_statement,
}


def parse(source: str, file: str = "<string>", *,
          constants: Iterable[str] = ()) -> ast.Program:
    """The tree of ``source``; SquirrelSyntaxError naming file:line:column and the construct.

    ``constants``: ``const``/``enum`` names declared by files compiled before this one (the
    libraries it ``#require``s, see `declared_constants`): the VM keeps one constant table, so
    their names resolve as constants here too (``Identifier.scope == "const"``).
    """
    lexed = lex(source, file)
    parser = _Parser(lexed.tokens, file)
    parser.constants.update(constants)
    try:
        program = parser.program()
    except RecursionError:
        raise parser.error("expressions or blocks nested too deeply") from None
    program.comments = lexed.comments
    return program


def declared_constants(program: ast.Program) -> set[str]:
    """The ``const`` and ``enum`` names a file declares at any depth (they are global)."""
    return {node.name for node in ast.walk(program)
            if isinstance(node, (ast.ConstDecl, ast.EnumDecl))}


def parse_expression(source: str, file: str = "<string>") -> ast.Node:
    """One expression (the whole of ``source``), e.g. for tests and the REPL-like tools."""
    parser = _Parser(lex(source, file).tokens, file)
    node = parser.comma_expr()
    if parser.tok.kind != EOF:
        raise parser.error(f"unexpected {parser.tok.describe()} after the expression")
    return node


__all__ = ["PRECEDENCE", "declared_constants", "parse", "parse_expression"]
