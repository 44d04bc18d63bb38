"""`bridge scan`: an inventory of Squirrel agent code for planning a migration, from the AST.

For every AMQP call site (file:line): what it is (the URL, path, properties, the event string a
callback compares), what it becomes on the target backend (`scan_backends`, from the backends'
own address codecs), and which of the backend's declared deviations apply (its registry entry,
joined by `deviations`). For every other imp API: whether the bridge provides it (`imp_api`).
Nothing is executed; paths built at run time are shown with ``{expression}`` placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bridge.events import ALL_EVENTS
from bridge.squirrel import ast
from bridge.squirrel.deviations import FLAG_EFFECTS, STATEMENT_CALLS, applies
from bridge.squirrel.imp_api import IMP_ROOTS, PROVIDED, support_of
from bridge.squirrel.parser import parse
from bridge.squirrel.requires import find_requires, resolve_all, resolve_require
from bridge.squirrel.scan_backends import address, becomes, connection

BACKENDS = ("memory", "mqtt", "amqp", "iothub")
_METHOD_CALLS = ("opensession", "opensender", "openreceiver", "createtransfer", "sendasync",
                 "cancel", "accept", "reject", "release")
_SETTLEMENTS = ("accept", "reject", "release")
_SUB_OBJECTS = ("hash",)  # http.hash.*: reported as one name with the member
_HTTP_REQUESTS = ("request", "get", "post", "put", "httpdelete", "patch")
_FORMAT = re.compile(r"%[-+ 0#]*\d*(?:\.\d+)?[sdixXfeEgGc]")
_MARKER = "zqvar{}zq"  # stands for a run-time part while a path is mapped (letters only)
# parameter -> (the argument expression, the environment it is read in)
_Env = dict[str, tuple[ast.Node, "dict[str, Any]"]]


@dataclass(frozen=True, slots=True)
class Deviation:
    source: str  # "statement 37" (the conformance statement) or "no credit" (a capability)
    text: str


@dataclass(frozen=True, slots=True)
class AmqpSite:
    file: str
    line: int
    column: int
    call: str  # openconnection, opensender, …, or "event" (a compared event string)
    detail: str  # the URL / path / properties / event, as far as it is known statically
    becomes: str
    deviations: tuple[Deviation, ...] = ()
    supported: bool = True
    problem: str = ""
    # False: the address starts with a part known only at run time, so it could not be checked
    checked: bool = True


@dataclass(frozen=True, slots=True)
class ApiSite:
    file: str
    line: int
    column: int
    api: str  # "http.get"
    status: str  # provided / unsupported / unknown
    note: str = ""


@dataclass(frozen=True, slots=True)
class RequireSite:
    file: str
    line: int
    spec: str
    resolved: str | None  # the library file scanned, None when no --require-path was given


@dataclass
class ScanReport:
    backend: str
    files: list[str] = field(default_factory=list)
    amqp: list[AmqpSite] = field(default_factory=list)
    apis: list[ApiSite] = field(default_factory=list)
    requires: list[RequireSite] = field(default_factory=list)

    def unsupported(self) -> list[str]:
        """One ``file:line: what`` per thing that cannot run unchanged on the backend."""
        found = [f"{s.file}:{s.line}: amqp {s.call} {s.detail}: {s.problem}"
                 for s in self.amqp if not s.supported]
        found += [f"{s.file}:{s.line}: {s.api} is {s.status}" + (f" ({s.note})" if s.note else "")
                  for s in self.apis if s.status != PROVIDED]
        return found

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["unsupported"] = self.unsupported()
        return data

    def merge(self, other: ScanReport) -> None:
        self.files += other.files
        self.amqp += other.amqp
        self.apis += other.apis
        self.requires += other.requires


def expr_text(node: ast.Node, depth: int = 0) -> str:
    """A short source-like rendering of an expression, for placeholders and details."""
    if depth > 12:
        return "…"
    depth += 1
    match node:
        case ast.Identifier(name=name):
            return name
        case ast.RootAccess(name=name):
            return "::" + name
        case ast.This():
            return "this"
        case ast.Member(obj=obj, name=name):
            return f"{expr_text(obj, depth)}.{name}"
        case ast.Index(obj=obj, key=key):
            return f"{expr_text(obj, depth)}[{expr_text(key, depth)}]"
        case ast.Call(callee=callee, args=args):
            return f"{expr_text(callee, depth)}({', '.join(expr_text(a, depth) for a in args)})"
        case ast.String(value=value):
            return '"' + value.replace('"', '\\"') + '"'
        case ast.Integer(value=value) | ast.Float(value=value):
            return str(value)
        case ast.Bool(value=value):
            return "true" if value else "false"
        case ast.Null():
            return "null"
        case ast.Binary(op=op, left=left, right=right):
            return f"{expr_text(left, depth)} {op} {expr_text(right, depth)}"
        case ast.FunctionExpr(name=name):
            return f"function {name}" if name else "function"
        case ast.TableLiteral(slots=slots):
            return "{" + ", ".join(f"{_key(s)}: {expr_text(s.value, depth)}" for s in slots) + "}"
    return type(node).__name__.lower()


def _key(slot: ast.TableSlot) -> str:
    if isinstance(slot.key, ast.String) and not slot.computed:
        return slot.key.value
    return f"[{expr_text(slot.key)}]"


class _FileScan:
    def __init__(self, program: ast.Program, backend: str, mqtt_rules: tuple[object, ...],
                 reserved_prefix: str) -> None:
        from bridge.backends.registry import backend_entry

        self.program = program
        self.file = program.file
        self.backend = backend
        self.capabilities = backend_entry(backend).capabilities
        self.mqtt_rules = mqtt_rules
        self.reserved_prefix = reserved_prefix
        self.defs: dict[str, list[ast.Node]] = {}
        self.constants: dict[str, ast.Node] = {}
        self.functions: dict[str, list[ast.FunctionExpr]] = {}
        self.report = ScanReport(backend, [self.file])

    # --- static text of a run-time expression --------------------------------------------

    def parts(self, node: ast.Node, depth: int = 0, env: _Env | None = None
              ) -> list[str | ast.Node]:
        """The static pieces of a string expression: literals, locals assigned once, constants,
        ``format()`` and calls of small functions that just ``return`` an expression (with their
        arguments bound); anything else stays a node (shown as ``{expression}``)."""
        env = env or {}
        if depth > 24:
            return [node]
        if isinstance(node, ast.String):
            return [node.value]
        if isinstance(node, (ast.Integer, ast.Float)):
            return [str(node.value)]
        if isinstance(node, ast.Binary) and node.op == "+":
            operands = []  # a + b + c is left-deep: walk its spine without recursing
            while isinstance(node, ast.Binary) and node.op == "+":
                operands.append(node.right)
                node = node.left
            operands.append(node)
            return [part for operand in reversed(operands)
                    for part in self.parts(operand, depth + 1, env)]
        if isinstance(node, ast.Identifier):
            if node.name in env:
                argument, argument_env = env[node.name]
                return self.parts(argument, depth + 1, argument_env)
            if len(self.defs.get(node.name, ())) == 1:
                return self.parts(self.defs[node.name][0], depth + 1)
            if node.name in self.constants:
                return self.parts(self.constants[node.name], depth + 1)
            return [node]
        if isinstance(node, ast.Call):
            if (isinstance(node.callee, ast.Identifier) and node.callee.name == "format"
                    and node.args and isinstance(node.args[0], ast.String)):
                pieces = _FORMAT.split(node.args[0].value)
                out: list[str | ast.Node] = [pieces[0]]
                for index, piece in enumerate(pieces[1:], start=1):
                    arg = node.args[index] if index < len(node.args) else None
                    out += self.parts(arg, depth + 1, env) if arg is not None else ["?"]
                    out.append(piece)
                return out
            function = self.simple_function(node.callee)
            if function is not None:
                returned, params = function
                bound: _Env = {}
                for index, param in enumerate(params):
                    if index < len(node.args):
                        bound[param.name] = (node.args[index], env)
                    elif param.default is not None:
                        bound[param.name] = (param.default, {})
                return self.parts(returned, depth + 1, bound)
        return [node]

    def simple_function(self, callee: ast.Node) -> tuple[ast.Node, list[ast.Param]] | None:
        """(the returned expression, the parameters) of the one function of that name whose
        body is a single ``return``."""
        name = callee.name if isinstance(callee, (ast.Identifier, ast.Member)) else None
        candidates = self.functions.get(name or "", [])
        if len(candidates) != 1:
            return None
        function = candidates[0]
        body = function.body
        if isinstance(body, ast.Block) and len(body.body) == 1:
            body = body.body[0]
        if function.is_lambda:
            return body, function.params
        if isinstance(body, ast.Return) and body.value is not None:
            return body.value, function.params
        return None

    def text(self, node: ast.Node) -> tuple[str, str, list[str]]:
        """(shown text with {expr} placeholders, text with markers for mapping, the exprs)."""
        shown, marked, exprs = [], [], []
        for part in self.parts(node):
            if isinstance(part, str):
                shown.append(part)
                marked.append(part)
            else:
                exprs.append(expr_text(part))
                shown.append("{" + exprs[-1] + "}")
                marked.append(_MARKER.format(len(exprs) - 1))
        return "".join(shown), "".join(marked), exprs

    # --- the walk ---------------------------------------------------------------------------

    def run(self) -> ScanReport:
        nodes = list(ast.walk(self.program))
        for node in nodes:
            self.collect(node)
        for node in nodes:
            if isinstance(node, ast.Call):
                self.call(node)
            elif isinstance(node, ast.Member):
                self.member(node)
            elif isinstance(node, ast.Binary) and node.op in ("==", "!="):
                for side in (node.left, node.right):
                    self.event(side)
            elif isinstance(node, ast.SwitchCase) and node.test is not None:
                self.event(node.test)
            elif isinstance(node, ast.TableSlot):  # { SENDER_OPEN = handler }: a dispatch table
                self.event(node.key)
        self.report.amqp.sort(key=lambda s: (s.line, s.column))
        self.report.apis.sort(key=lambda s: (s.line, s.column))
        return self.report

    def collect(self, node: ast.Node) -> None:
        """Locals, constants and named functions, for following string expressions."""
        name, function = None, None
        if isinstance(node, ast.LocalVar) and node.value is not None:
            self.defs.setdefault(node.name, []).append(node.value)
            if isinstance(node.value, ast.FunctionExpr):
                name, function = node.name, node.value
        elif isinstance(node, ast.ConstDecl):
            self.constants[node.name] = node.value
        elif isinstance(node, (ast.FunctionDecl, ast.LocalFunction)):
            name, function = node.function.name, node.function
        elif isinstance(node, (ast.TableSlot, ast.ClassMember)) and isinstance(
                node.value, ast.FunctionExpr) and isinstance(node.key, ast.String):
            name, function = node.key.value, node.value
        if name is not None and function is not None:
            self.functions.setdefault(name, []).append(function)

    def member(self, node: ast.Member) -> None:
        obj = node.obj
        if isinstance(obj, ast.Member) and obj.name in _SUB_OBJECTS \
                and _root_name(obj.obj) == "http" and "http" not in self.defs:
            name = f"http.{obj.name}.{node.name}"  # http.hash.hmacsha256(…): imp's older API
            support = support_of(name)
            self.report.apis.append(ApiSite(self.file, obj.line, obj.column, name,
                                            support.status, support.note))
            return
        root = _root_name(obj)
        if root is None or root not in IMP_ROOTS or root in self.defs:
            return
        if root == "http" and node.name in _SUB_OBJECTS:
            return  # reported with its member, above
        name = f"{root}.{node.name}"
        if root == "amqp" and node.name in ("openconnection", "createmessage",
                                            "createbinarymessage"):
            return  # an AMQP site, reported by call()
        support = support_of(name)
        self.report.apis.append(ApiSite(self.file, node.line, node.column, name, support.status,
                                        support.note))

    def call(self, node: ast.Call) -> None:
        callee = node.callee
        if not isinstance(callee, ast.Member):
            return
        method = callee.name
        if _root_name(callee.obj) == "amqp":
            if method == "openconnection":
                self.openconnection(node)
            elif method in ("createmessage", "createbinarymessage"):
                props = expr_text(node.args[1]) if len(node.args) > 1 else "no properties"
                self.site(node, method, props, becomes(method, self.backend))
            return
        if method not in _METHOD_CALLS:
            return
        if method == "sendasync" and self.is_http_request(callee.obj):
            return  # an http request's sendasync: reported as http.* by member()
        if method in _SETTLEMENTS and node.args:
            return  # accept/reject/release with arguments: not a delivery (e.g. a promise)
        if method in ("opensender", "openreceiver"):
            self.link(node, method)
        else:
            self.site(node, method, expr_text(callee.obj), becomes(method, self.backend))

    def is_http_request(self, obj: ast.Node, depth: int = 0) -> bool:
        if isinstance(obj, ast.Identifier) and len(self.defs.get(obj.name, ())) == 1 \
                and depth < 4:
            return self.is_http_request(self.defs[obj.name][0], depth + 1)
        return (isinstance(obj, ast.Call) and isinstance(obj.callee, ast.Member)
                and _root_name(obj.callee.obj) == "http" and obj.callee.name in _HTTP_REQUESTS)

    def openconnection(self, node: ast.Call) -> None:
        url = self.text(node.args[0])[0] if node.args else "?"
        self.site(node, "openconnection", url, connection(self.backend, url))

    def link(self, node: ast.Call, method: str) -> None:
        role = "sender" if method == "opensender" else "receiver"
        if not node.args:
            self.site(node, method, "?", "cannot open", problem="no path given")
            return
        shown, marked, exprs = self.text(node.args[0])
        what, problem = address(self.backend, role, marked, self.mqtt_rules,
                                self.reserved_prefix)
        for index, expr in enumerate(exprs):
            what = what.replace(_MARKER.format(index), "{" + expr + "}")
            if problem:
                problem = problem.replace(_MARKER.format(index), "{" + expr + "}")
        if problem and marked.startswith(_MARKER.format(0)):
            # nothing of the address is known before run time: report, do not condemn
            self.site(node, method, shown, f"known only at run time (as written, {problem})",
                      path=shown, checked=False)
            return
        self.site(node, method, shown, what, path=shown, problem=problem or "")

    def event(self, node: ast.Node) -> None:
        if isinstance(node, ast.String) and node.value in ALL_EVENTS:
            self.site(node, "event", node.value, becomes("event", self.backend),
                      event=node.value)

    def site(self, node: ast.Node, call: str, detail: str, what: str, *,
             path: str | None = None, event: str | None = None, problem: str = "",
             checked: bool = True) -> None:
        line, column = node.line, node.column
        if isinstance(node, ast.Call) and isinstance(node.callee, ast.Member):
            # where the method's name starts (the Member node sits on its '.')
            line, column = node.callee.line, node.callee.column + 1
        self.report.amqp.append(AmqpSite(
            self.file, line, column, call, detail, what,
            tuple(self.deviations(call, path, event)), not problem, problem, checked))

    def deviations(self, call: str, path: str | None, event: str | None) -> Iterable[Deviation]:
        caps = self.capabilities
        for statement, text in sorted(caps.deviations.items()):
            if any(applies(key, call, path, event) for key in STATEMENT_CALLS.get(statement, ())):
                yield Deviation(f"statement {statement}", text)
        for flag, effect in FLAG_EFFECTS.items():
            if not getattr(caps, flag) and any(applies(k, call, path, event)
                                               for k in effect.calls):
                yield Deviation(f"no {flag}", effect.when_false)


def _root_name(node: ast.Node) -> str | None:
    if isinstance(node, (ast.Identifier, ast.RootAccess)):
        return node.name
    return None


def _compiled_rules(rules: Sequence[tuple[str, str]]) -> tuple[object, ...]:
    if not rules:
        return ()
    from bridge.backends.mqtt.mapping import compile_rules

    return tuple(compile_rules(rules))


def scan_program(program: ast.Program, backend: str = "memory", *,
                 mqtt_rules: Sequence[tuple[str, str]] = (),
                 reserved_prefix: str = "bridge") -> ScanReport:
    """The inventory of one parsed file (``mqtt_rules``: ``mqtt.topic_rules`` as pairs)."""
    return _FileScan(program, backend, _compiled_rules(mqtt_rules), reserved_prefix).run()


def scan_source(source: str, file: str = "<string>", backend: str = "memory", *,
                mqtt_rules: Sequence[tuple[str, str]] = (),
                reserved_prefix: str = "bridge") -> ScanReport:
    """Parse and scan one source text; its ``#require`` lines are listed, not followed."""
    report = scan_program(parse(source, file), backend, mqtt_rules=mqtt_rules,
                          reserved_prefix=reserved_prefix)
    report.requires = [RequireSite(r.file, r.line, r.spec, None)
                       for r in find_requires(source, file)]
    return report


def scan_files(paths: Sequence[Path], backend: str = "memory", *,
               require_paths: Sequence[Path] = (),
               mqtt_rules: Sequence[tuple[str, str]] = (),
               reserved_prefix: str = "bridge") -> ScanReport:
    """Scan files; with ``require_paths`` every library they ``#require`` (transitively) is
    resolved and scanned too, each once. Raises SquirrelSyntaxError / RequireError."""
    report = ScanReport(backend)
    seen: set[Path] = set()
    for path in paths:
        order = resolve_all(Path(path), require_paths) if require_paths else [Path(path)]
        for current in order:
            if current.resolve() in seen:
                continue
            seen.add(current.resolve())
            source = current.read_text(encoding="utf-8")
            part = scan_source(source, str(current), backend, mqtt_rules=mqtt_rules,
                               reserved_prefix=reserved_prefix)
            if require_paths:
                part.requires = [
                    RequireSite(r.file, r.line, r.spec, str(resolve_require(r, require_paths)))
                    for r in find_requires(source, str(current))]
            report.merge(part)
    return report


__all__ = ["BACKENDS", "AmqpSite", "ApiSite", "Deviation", "RequireSite", "ScanReport",
           "expr_text", "scan_files", "scan_program", "scan_source"]
