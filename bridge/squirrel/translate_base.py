"""The translator's emitter core: the Python lines written so far (each with the ``.nut`` line
it is for), indentation, the function being written, and the helpers every part uses."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NoReturn

from bridge.squirrel import ast
from bridge.squirrel.errors import UnsupportedConstructError
from bridge.squirrel.tokens import Comment
from bridge.squirrel.translate_names import Binding, FuncInfo, Resolution

Line = tuple[int, str, int]  # (indent, text, .nut line)


class EmitterBase:
    """The emitter's state (where we are: function, indentation, loops) and output; the
    per-concern mixins add the translation methods (declared here for each other)."""

    def __init__(self, res: Resolution, taken: set[str]) -> None:
        self.res = res
        self.out: list[Line] = []
        self.indent = 0
        self.file = "<string>"
        self.func: FuncInfo = FuncInfo(None, None, top=True)
        self.decls: dict[str, str] = {}
        self.loops: list[tuple[str, list[Line]]] = []
        self.taken = taken
        self.comments: list[Comment] = []
        self.table_names: dict[int, str] = {}  # table literal with `this` functions -> its name
        self.current_line = 0

    # -- output -----------------------------------------------------------------------------------
    def line(self, text: str, nut_line: int) -> None:
        self.out.append((self.indent, text, nut_line))

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[Line]]:
        """Lines emitted inside go to the yielded list (with their indentation), not the output."""
        saved = self.out
        captured: list[Line] = []
        self.out = captured
        base = self.indent
        try:
            yield captured
        finally:
            self.out = saved
            captured[:] = [(indent - base, text, n) for indent, text, n in captured]

    def splice(self, lines: list[Line]) -> None:
        """Emit captured lines (indentation relative to where they were captured) here."""
        for indent, text, nut_line in lines:
            self.out.append((self.indent + indent, text, nut_line))

    @contextlib.contextmanager
    def function_scope(self, info: FuncInfo) -> Iterator[dict[str, str]]:
        saved = (self.func, self.decls, self.loops)
        self.func, self.decls, self.loops = info, {}, []
        try:
            yield self.decls
        finally:
            self.func, self.decls, self.loops = saved

    def fresh(self, base: str) -> str:
        name, n = base, 2
        while name in self.taken:
            name = f"{base}_{n}"
            n += 1
        self.taken.add(name)
        return name

    def temp(self, kind: str = "t") -> str:
        return self.fresh(f"_{kind}")

    def unsupported(self, node: ast.Node, construct: str, detail: str = "") -> NoReturn:
        raise UnsupportedConstructError(self.file, node.line, node.column, construct, detail)

    # -- comments ---------------------------------------------------------------------------------
    def flush_comments(self, before_line: int) -> None:
        """Write the comments before ``before_line`` (and one opening that line). A comment
        that ended a line of code (``if (x) { // why``) ends the Python line written for it."""
        while self.comments:
            comment = self.comments[0]
            if not (comment.line < before_line
                    or (comment.own_line and comment.line == before_line)):
                break
            self.comments.pop(0)
            text = comment.text.strip("\n")
            if not comment.own_line and "\n" not in text and self.out \
                    and self.out[-1][2] == comment.line and comment.style != "#require" \
                    and not self.out[-1][1].lstrip().startswith("#"):
                indent, code, line = self.out[-1]
                self.out[-1] = (indent, f"{code}  # {text.strip()}", line)
                continue
            prefix = "# " if comment.style != "#require" else "# #require "
            for piece in text.splitlines() or [""]:
                piece = piece.strip()
                if comment.style == "/*":
                    piece = piece.lstrip("*").strip()
                self.line((prefix + piece).rstrip(), comment.line)

    # -- a whole file -----------------------------------------------------------------------------
    def program(self, program: ast.Program) -> None:
        self.file = program.file
        self.func = self.res.funcs[id(program)]
        self.comments = sorted(program.comments, key=lambda c: (c.line, c.column))
        self.stmts(program.body) if program.body else None
        self.flush_comments(1 << 30)

    def trailing_comments(self, nut_line: int, first: int) -> None:
        """A comment after a statement on its line (``x = 1; // why``) ends that statement's
        Python line (its first line at the statement's indentation that is not a def)."""
        while self.comments and self.comments[0].line == nut_line \
                and not self.comments[0].own_line and self.comments[0].style in ("//", "#", "/*") \
                and "\n" not in self.comments[0].text.strip("\n"):
            comment = self.comments.pop(0)
            for i in range(first, len(self.out)):
                indent, text, line = self.out[i]
                if indent == self.indent and line == nut_line \
                        and not text.startswith(("def ", "class ", "@", "#")):
                    self.out[i] = (indent, f"{text}  # {comment.text.strip()}", line)
                    break
            else:
                self.line(f"# {comment.text.strip()}", comment.line)

    # -- implemented by the mixins (translate_expr, translate_stmt, translate_class) ---------------
    def expr(self, node: ast.Node) -> str:
        raise NotImplementedError

    def cond(self, node: ast.Node) -> str:
        raise NotImplementedError

    def self_name(self, node: ast.Node) -> str:
        raise NotImplementedError

    def super_ref(self) -> str:
        raise NotImplementedError

    def function_value(self, node: ast.FunctionExpr, hint: str | None) -> str:
        raise NotImplementedError

    def class_value(self, node: ast.ClassExpr, hint: str | None) -> str:
        raise NotImplementedError

    def assign_value(self, node: ast.Assign) -> str:
        raise NotImplementedError

    def incdec_value(self, node: ast.IncDec) -> str:
        raise NotImplementedError

    def class_decl(self, node: ast.ClassDecl) -> None:
        raise NotImplementedError

    def emit_function(self, node: ast.FunctionExpr, pyname: str, method: bool = False) -> None:
        raise NotImplementedError

    def declare_outer(self, binding: Binding) -> None:
        raise NotImplementedError

    def attr_safe(self, node: ast.Node) -> bool:
        raise NotImplementedError

    def table_only(self, node: ast.Node) -> bool:
        raise NotImplementedError

    def stmts(self, body: list[ast.Node]) -> None:
        raise NotImplementedError


__all__ = ["EmitterBase", "Line"]
