"""Squirrel syntax trees to one readable Python module (``bridge port``).

`translate_programs` takes the parsed libraries (in dependency order) and the agent, binds every
name first (`translate_names`), then writes Python: statements (`translate_stmt`), expressions
(`translate_expr`) and classes (`translate_class`) through one `Emitter`. The result, a
`Translation`, keeps a line map so a traceback through the generated code can name the ``.nut``
file and line it came from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from bridge.squirrel import ast
from bridge.squirrel.errors import UnsupportedConstructError
from bridge.squirrel.tokens import Comment
from bridge.squirrel.translate_class import ClassMixin
from bridge.squirrel.translate_expr import ExprMixin
from bridge.squirrel.translate_names import FuncInfo, Resolution, Resolver
from bridge.squirrel.translate_stmt import StmtMixin, ValueAssignMixin

Line = tuple[int, str, int]  # (indent, text, .nut line)

# What the generated module needs of the imp globals `bridge run agent.py` does not predefine.
_IMPENV_PRELUDE = [
    'if "http" not in globals():  # `bridge run agent.py` predefines amqp, imp, server, agent',
    "    from bridge.impenv import make_env as _make_env",
    "    _env = _make_env(agent)",
    "    http, crypto, device = _env.http, _env.crypto, _env.device",
    "    server = _env.server",
]


@dataclass
class Translation:
    """The generated Python, the ``.nut`` files it came from (in order) and its line map."""

    python: str
    sources: list[str]
    line_map: list[tuple[str, int] | None] = field(default_factory=list)

    def nut_location(self, py_line: int) -> tuple[str, int] | None:
        """The ``(nut_file, nut_line)`` a line of ``python`` (1-based) was written for, or None
        for the lines the translator added (header, imports)."""
        if 1 <= py_line <= len(self.line_map):
            return self.line_map[py_line - 1]
        return None


class Emitter(ExprMixin, StmtMixin, ValueAssignMixin, ClassMixin):
    """Writes the Python lines; state: where we are (function, indentation, loops)."""

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
        while self.comments and self.comments[0].line < before_line:
            comment = self.comments.pop(0)
            prefix = "# " if comment.style != "#require" else "# #require "
            for text in comment.text.strip("\n").splitlines() or [""]:
                text = text.strip()
                if comment.style == "/*":
                    text = text.lstrip("*").strip()
                self.line((prefix + text).rstrip(), comment.line)

    # -- a whole file -----------------------------------------------------------------------------
    def program(self, program: ast.Program) -> None:
        self.file = program.file
        self.func = self.res.funcs[id(program)]
        self.comments = sorted(program.comments, key=lambda c: (c.line, c.column))
        self.stmts(program.body) if program.body else None
        self.flush_comments(1 << 30)


MAX_LINE = 100


def wrap_line(line: str, limit: int = MAX_LINE) -> list[str]:
    """``line`` cut after commas inside brackets so no piece is longer than ``limit`` (where
    possible); continuation lines are indented four more than the line's own indentation."""
    if len(line) <= limit or line.lstrip().startswith("#"):
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    cuts: list[int] = []
    depth = 0
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth > 0 and line[i + 1:i + 2] == " ":
            cuts.append(i + 1)
        elif ch == "#" and not quote:
            break  # a trailing comment: never cut inside it
        i += 1
    pieces: list[str] = []
    start = 0
    last = 0
    width = limit
    for cut in cuts:
        if cut - start > width and last > start:
            pieces.append(line[start:last].rstrip())
            start = last + 1
            width = limit - len(indent)
        last = cut
    if len(line) - start > width and last > start:
        pieces.append(line[start:last].rstrip())
        start = last + 1
    pieces.append(line[start:])
    return [pieces[0]] + [indent + p.lstrip() for p in pieces[1:]]


def _starts_block(body: list[Line], i: int) -> bool:
    """Line ``i`` starts a top-level def/class, or the comments just before one."""
    for _indent, text, _n in body[i:]:
        if text.startswith("#") or text.startswith("@"):
            continue
        return text.startswith(("def ", "class "))
    return False


def _names_in(programs: Sequence[ast.Program]) -> set[str]:
    names: set[str] = set()
    for program in programs:
        for node in ast.walk(program):
            for attr in ("name", "catch_name", "key", "value"):
                value = getattr(node, attr, None)
                if isinstance(value, str):
                    names.add(value)
    return names


def translate_programs(programs: Sequence[ast.Program]) -> Translation:
    """One Python module for ``programs`` (libraries first, the agent last)."""
    resolver = Resolver()
    for program in programs:
        resolver.collect(program)
    for program in programs:
        resolver.program(program)
    res = resolver.finish()
    emitter = Emitter(res, _names_in(programs) | {"sq", "self"})
    files = [p.file for p in programs]
    main = files[-1] if files else "<string>"
    header = [
        f'"""Translated from {main} by `bridge port`: Squirrel semantics kept through the',
        "`sq` runtime (32-bit integers and floats, string concatenation, Squirrel truth).",
        "Run it with `bridge run` like any ported agent script.",
        '"""',
        "",
        "from bridge.squirrel import runtime as sq",
    ]
    if res.uses_globals & {"http", "crypto", "device"}:
        header += ["", *_IMPENV_PRELUDE]
    lines: list[str] = list(header)
    line_map: list[tuple[str, int] | None] = [None] * len(header)
    for program in programs:
        start = len(emitter.out)
        if len(programs) > 1:
            emitter.line("", 0)
            emitter.line(f"# --- {program.file} " + "-" * max(0, 60 - len(program.file)), 0)
        emitter.program(program)
        body = emitter.out[start:]
        for i, (indent, text, nut_line) in enumerate(body):
            if indent == 0 and _starts_block(body, i) and lines and lines[-1] != "" \
                    and not (i and body[i - 1][0] == 0 and body[i - 1][1].startswith("#")):
                lines.append("")
                line_map.append(None)
            elif indent == 0 and i and body[i - 1][0] > 0 and not text.startswith(
                    ("else", "elif", "except", "finally")) and lines[-1] != "":
                lines.append("")  # after a top-level def or class
                line_map.append(None)
            for piece in wrap_line("    " * indent + text) if text else [""]:
                lines.append(piece)
                line_map.append((program.file, nut_line) if nut_line else None)
    return Translation("\n".join(lines) + "\n", files, line_map)


__all__ = ["Emitter", "Translation", "translate_programs"]
