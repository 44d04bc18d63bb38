"""Squirrel syntax trees to one readable Python module (``bridge port``).

`translate_programs` takes the parsed libraries (in dependency order) and the agent, binds every
name first (`translate_names`), then writes Python: statements (`translate_stmt`), expressions
(`translate_expr`) and classes (`translate_class`) through one `Emitter`. The result, a
`Translation`, keeps a line map so a traceback through the generated code can name the ``.nut``
file and line it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bridge.squirrel import ast
from bridge.squirrel.translate_base import Line
from bridge.squirrel.translate_class import ClassMixin
from bridge.squirrel.translate_expr import ExprMixin
from bridge.squirrel.translate_names import Resolver
from bridge.squirrel.translate_stmt import StmtMixin, ValueAssignMixin

# What the generated module needs of the imp globals `bridge run agent.py` does not predefine.
_IMPENV_PRELUDE = [
    "# `bridge run agent.py` predefines amqp, imp, server and agent; imp's other globals:",
    'if "http" not in globals() and "agent" in globals():',
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
    """The whole emitter: the core (`EmitterBase`) with expressions, statements and classes."""


MAX_LINE = 100


def wrap_line(line: str, limit: int = MAX_LINE) -> list[str]:
    """``line`` cut after commas inside brackets so no piece is longer than ``limit`` (where
    possible); continuation lines are indented four more than the line's own indentation."""
    if len(line) <= limit or line.lstrip().startswith("#"):
        return [line]
    # a continuation of a block header (if/while/def …:) is indented twice, so it does not
    # line up with the block's body
    indent = " " * (len(line) - len(line.lstrip()) + (8 if line.endswith(":") else 4))
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
        f'"""Translated from {main} by `bridge port`.',
        "",
        "Squirrel's semantics are kept through the `sq` runtime (32-bit integers and floats,",
        "string concatenation, Squirrel truth, missing slots). Run it with `bridge run` like any",
        "ported agent script.",
        '"""',
        "",
        "from bridge.squirrel import runtime as sq",
    ]
    if res.uses_globals & {"http", "crypto", "device"}:
        header += ["", *_IMPENV_PRELUDE]
    if "agent" in res.uses_globals:
        header += ["", "# agent.exit(n) ends the run with status n, as on the embedded VM",
                   'agent = sq.ScriptAgent(globals()["agent"])']
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
            elif indent > 0 and text.startswith(("def ", "class ", "@")) and i \
                    and not body[i - 1][1].endswith(":") and not body[i - 1][1].startswith(
                        ("#", "@")) and lines[-1] != "":
                lines.append("")  # between methods, and before a nested def
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
