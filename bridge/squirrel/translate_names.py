"""Name resolution for the translator, as Squirrel does it: locals (block scoped), outer locals
of enclosing functions, constants and enums (inlined), then the ``this`` environment (inside a
class's methods: its members, inherited ones included), then the root table.

A first pass (`Resolver`) binds every identifier of every file before any Python is written, so
the emitter knows for each local whether a closure assigns it (``nonlocal``), whether a closure
created in a loop body captures it (each iteration has its own variable in Squirrel: the closure
gets it as a keyword default, boxed in a `Cell` when it is assigned after being captured), and
which Python name it gets (renamed when Python would see two different Squirrel variables).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass, field

from bridge.squirrel import ast
from bridge.squirrel.errors import UnsupportedConstructError

# Names the generated code itself uses; a Squirrel variable with one of them is renamed.
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | {
    "self", "sq", "super", "isinstance", "globals", "Exception", "type", "vargv_",
}
# The imp globals the script namespace provides: locals of these names are renamed, so a
# function can still reach the global.
IMP_GLOBALS = frozenset({"amqp", "imp", "server", "http", "crypto", "agent", "device"})


# Squirrel globals whose meaning Python code cannot keep (threads, compiling at run time, the VM's
# debug and error hooks): using one is a translation error.
UNSUPPORTED_GLOBALS = {
    "newthread": "threads (coroutines)", "suspend": "threads (coroutines)",
    "compilestring": "compiling code at run time", "dofile": "loading code at run time",
    "loadfile": "loading code at run time", "writeclosuretofile": "bytecode files",
    "setdebughook": "the VM's debug hook", "enabledebuginfo": "the VM's debug information",
    "getstackinfos": "the VM's stack information", "seterrorhandler": "the VM's error handler",
    "setroottable": "replacing the root table", "setconsttable": "replacing the const table",
}


def attribute_ok(name: str) -> bool:
    """``name`` can be written as a Python attribute (``obj.name``): not a keyword."""
    return not keyword.iskeyword(name)


def python_name(name: str) -> str:
    """A Squirrel identifier as a Python identifier (keywords and reserved names get ``_``)."""
    return name + "_" if name in RESERVED else name


@dataclass(eq=False)
class Binding:
    """One Squirrel local (parameter, ``local``, foreach variable, catch variable)."""

    name: str
    pyname: str
    func: FuncInfo
    in_loop: bool = False       # declared inside a loop body of its own function
    captured: bool = False      # read or written by a nested function
    assigned: bool = False      # assigned after its declaration
    loop_captured: bool = False  # captured by a closure created inside that loop body

    @property
    def boxed(self) -> bool:
        """Kept in a `Cell`: closures of different iterations must not share it, and someone
        assigns it after a closure captured it."""
        return self.loop_captured and self.assigned


@dataclass(eq=False)
class ClassInfo:
    """A class the program declares: its members (own and added later) and its base."""

    name: str
    members: set[str] = field(default_factory=set)
    base: ClassInfo | None = None

    def has_member(self, name: str) -> bool:
        info: ClassInfo | None = self
        while info is not None:
            if name in info.members:
                return True
            info = info.base
        return False


@dataclass(eq=False)
class FuncInfo:
    """A Squirrel function (the whole file is one, ``top``)."""

    node: ast.Node | None
    parent: FuncInfo | None
    cls: ClassInfo | None = None   # set for methods; nested functions see it through parents
    top: bool = False
    pynames: set[str] = field(default_factory=set)
    loop_defaults: list[Binding] = field(default_factory=list)  # captured per iteration
    # a function written as a slot of a table literal: called as `t.f()`, its `this` is the
    # table, so `this` and bare names of the literal's slots are that table's
    table: ast.TableLiteral | None = None

    def method_class(self) -> ClassInfo | None:
        """The class whose method this is (or is inside), unless a table function is nearer."""
        info: FuncInfo | None = self
        while info is not None:
            if info.cls is not None:
                return info.cls
            if info.table is not None:
                return None
            info = info.parent
        return None

    def this_table(self) -> ast.TableLiteral | None:
        """The table literal whose slot function this is (or is inside), unless a method is
        nearer."""
        info: FuncInfo | None = self
        while info is not None:
            if info.table is not None:
                return info.table
            if info.cls is not None:
                return None
            info = info.parent
        return None


@dataclass
class Ref:
    """What an identifier means: ``kind`` is local, const, member or root."""

    kind: str
    binding: Binding | None = None
    value: ast.Node | None = None


@dataclass
class Resolution:
    """The first pass's result, keyed by ``id(node)``."""

    refs: dict[int, Ref] = field(default_factory=dict)        # Identifier -> meaning
    decls: dict[int, Binding] = field(default_factory=dict)   # declaring node -> binding
    foreach: dict[int, tuple[Binding | None, Binding]] = field(default_factory=dict)
    catch: dict[int, Binding] = field(default_factory=dict)
    funcs: dict[int, FuncInfo] = field(default_factory=dict)  # FunctionExpr/Program -> info
    classes: dict[int, ClassInfo] = field(default_factory=dict)  # ClassExpr -> info
    class_names: dict[str, ClassInfo] = field(default_factory=dict)
    enums: dict[str, dict[str, ast.Node]] = field(default_factory=dict)
    root_names: set[str] = field(default_factory=set)
    uses_globals: set[str] = field(default_factory=set)
    # what kinds of value each variable / root slot / class member is ever given (table,
    # instance, class, null, other): a member read on one that only ever holds tables,
    # instances or classes can be Python's attribute access; elsewhere it is `sq.get`
    kinds: dict[object, set[str]] = field(default_factory=dict)

    def attr_safe(self, key: object) -> bool:
        kinds = self.kinds.get(key)
        return kinds is not None and kinds <= ATTR_SAFE_KINDS

    def table_only(self, key: object) -> bool:
        """Only ever a table (a table literal): its slots read as ``t["name"]``."""
        return self.kinds.get(key) == {"table"}


ATTR_SAFE_KINDS = frozenset({"table", "instance", "class", "null"})


def member_key(cls: ClassInfo, name: str) -> tuple[str, int, str]:
    """The `Resolution.kinds` key of a class member (looked up along the base chain)."""
    info: ClassInfo | None = cls
    while info is not None:
        if name in info.members:
            return ("member", id(info), name)
        info = info.base
    return ("member", id(cls), name)


def _path_of(node: ast.Node | None) -> str | None:
    """``A`` or ``A.B`` for an Identifier / Member chain, else None."""
    if isinstance(node, ast.Identifier):
        return node.name
    if isinstance(node, ast.RootAccess):
        return node.name
    if isinstance(node, ast.Member):
        head = _path_of(node.obj)
        return None if head is None else f"{head}.{node.name}"
    return None


class Resolver:
    """Binds the identifiers of several programs (libraries first, the agent last)."""

    def __init__(self) -> None:
        self.res = Resolution()
        self.consts: dict[str, ast.Node] = {}
        self.file = "<string>"

    # -- the pre-pass: classes and root names ---------------------------------------------------
    def collect(self, program: ast.Program) -> None:
        """Classes, their members, and the root table's names, before any body is bound."""
        for stmt in program.body:
            if isinstance(stmt, ast.FunctionDecl) and len(stmt.path) == 1:
                self.res.root_names.add(stmt.path[0])
                self.note(("root", stmt.path[0]), "other")
            elif isinstance(stmt, ast.ExprStatement) and isinstance(stmt.expr, ast.Assign) \
                    and stmt.expr.op == "<-" and isinstance(stmt.expr.target, ast.Identifier):
                self.res.root_names.add(stmt.expr.target.name)
        for node in ast.walk(program):
            if isinstance(node, ast.ClassDecl):
                path = _path_of(node.target)
                if isinstance(node.target, (ast.Identifier, ast.RootAccess)):
                    self.res.root_names.add(node.target.name)
                    self.note(("root", node.target.name), "class")
                self._class(node.cls, path)
            elif isinstance(node, ast.RootAccess):
                self.res.root_names.add(node.name)
            elif isinstance(node, ast.Assign) and node.op == "<-" \
                    and isinstance(node.target, ast.Member):
                owner = self.res.class_names.get(_path_of(node.target.obj) or "")
                if owner is not None:
                    owner.members.add(node.target.name)
            elif isinstance(node, ast.FunctionDecl) and len(node.path) > 1:
                owner = self.res.class_names.get(".".join(node.path[:-1]))
                if owner is not None:
                    owner.members.add(node.path[-1])

    def _class(self, cls: ast.ClassExpr, path: str | None) -> ClassInfo:
        info = self.res.classes.get(id(cls))
        if info is None:
            info = ClassInfo(path or "class")
            self.res.classes[id(cls)] = info
            if path:
                self.res.class_names[path] = info
        for member in cls.members:
            if isinstance(member.key, ast.String):
                info.members.add(member.key.value)
            if isinstance(member.value, ast.ClassExpr) and isinstance(member.key, ast.String):
                inner = f"{path}.{member.key.value}" if path else None
                self._class(member.value, inner)
        base = _path_of(cls.base)
        if base is not None:
            info.base = self.res.class_names.get(base)
        return info

    # -- binding --------------------------------------------------------------------------------
    def program(self, program: ast.Program) -> FuncInfo:
        self.file = program.file
        top = FuncInfo(program, None, top=True)
        self.res.funcs[id(program)] = top
        self.func = top
        self.blocks: list[dict[str, Binding]] = [{}]
        self.loop_depth = 0
        self.loop_marks: list[int] = []  # len(self.blocks) at each loop body entry
        for stmt in program.body:
            self.stmt(stmt)
        return top

    def finish(self) -> Resolution:
        """After every program is bound: a top-level local (a Python module global) that shares
        its name with a root-table slot some code reads is renamed, so the two stay apart."""
        clash = self.res.uses_globals | self.res.root_names
        for binding in self.res.decls.values():
            if binding.pyname in clash:
                # e.g. a `local function f` whose body calls f: Squirrel looks f up in the
                # root table (the local does not exist yet), so Python must not find the local
                binding.pyname += "_local" if binding.func.top else "_"
        return self.res

    def value_kind(self, node: ast.Node | None) -> str:
        if node is None or isinstance(node, ast.Null):
            return "null"
        if isinstance(node, ast.TableLiteral):
            return "table"
        if isinstance(node, ast.ClassExpr):
            return "class"
        if isinstance(node, ast.Call):
            path = _path_of(node.callee)
            if path is not None and path in self.res.class_names and not (
                    isinstance(node.callee, ast.Identifier)
                    and self.lookup(node.callee.name)[0] is not None):
                return "instance"
        return "other"

    def note(self, key: object, kind: str) -> None:
        self.res.kinds.setdefault(key, set()).add(kind)

    def note_target(self, target: ast.Node, value: ast.Node | None, op: str) -> None:
        """Record what kind of value an assignment gives its target."""
        kind = self.value_kind(value) if op in ("=", "<-") else "other"
        if isinstance(target, ast.Identifier):
            ref = self.res.refs.get(id(target))
            if ref is None:
                return
            if ref.kind == "local" and ref.binding is not None:
                self.note(ref.binding, kind)
            elif ref.kind == "member":
                cls = self.func.method_class()
                if cls is not None:
                    self.note(member_key(cls, target.name), kind)
            elif ref.kind == "root":
                self.note(("root", target.name), kind)
        elif isinstance(target, ast.RootAccess):
            self.note(("root", target.name), kind)
        elif isinstance(target, ast.Member) and isinstance(target.obj, ast.This):
            cls = self.func.method_class()
            if cls is not None:
                self.note(member_key(cls, target.name), kind)

    def unsupported(self, node: ast.Node, construct: str, detail: str = "") -> None:
        raise UnsupportedConstructError(self.file, node.line, node.column, construct, detail)

    def declare(self, name: str, node: ast.Node) -> Binding:
        pyname = python_name(name)
        taken = self.func.pynames
        if pyname in self.res.root_names or pyname in IMP_GLOBALS:
            pyname += "_local" if self.func.top else "_"

        base, n = pyname, 2
        while pyname in taken and any(b.pyname == pyname for scope in self.blocks
                                      for b in scope.values()):
            pyname = f"{base}_{n}"
            n += 1
        taken.add(pyname)
        binding = Binding(name, pyname, self.func, in_loop=bool(self.loop_marks))
        self.blocks[-1][name] = binding
        self.res.decls[id(node)] = binding
        return binding

    def lookup(self, name: str) -> tuple[Binding | None, bool]:
        """The binding for ``name`` and whether it belongs to an enclosing function."""
        for scope in reversed(self.blocks):
            binding = scope.get(name)
            if binding is not None:
                return binding, binding.func is not self.func
        return None, False

    def identifier(self, node: ast.Identifier, assigned: bool = False) -> None:
        binding, outer = self.lookup(node.name)
        if binding is not None:
            self.res.refs[id(node)] = Ref("local", binding)
            if assigned:
                binding.assigned = True
            if outer:
                binding.captured = True
                self._note_loop_capture(binding)
            return
        if node.name in self.consts:
            if assigned:
                self.unsupported(node, "assignment to a constant", node.name)
            self.res.refs[id(node)] = Ref("const", value=self.consts[node.name])
            return
        cls = self.func.method_class()
        if cls is not None and cls.has_member(node.name):
            self.res.refs[id(node)] = Ref("member")
            return
        table = self.func.this_table()
        if table is not None and any(isinstance(slot.key, ast.String) and not slot.computed
                                     and slot.key.value == node.name for slot in table.slots):
            self.res.refs[id(node)] = Ref("slot", value=table)
            return
        if node.name in UNSUPPORTED_GLOBALS and node.name not in self.res.root_names:
            self.unsupported(node, UNSUPPORTED_GLOBALS[node.name], node.name)
        self.res.refs[id(node)] = Ref("root")
        self.res.uses_globals.add(node.name)

    def _note_loop_capture(self, binding: Binding) -> None:
        """A closure captures a variable of a loop body: every closure between the use and the
        binding's function created inside that loop gets it as a keyword default."""
        if not binding.in_loop:
            return
        binding.loop_captured = True
        # the outermost nested function below binding.func is the one created in the loop
        func: FuncInfo | None = self.func
        while func is not None and func.parent is not binding.func:
            func = func.parent
        if func is not None and binding not in func.loop_defaults:
            func.loop_defaults.append(binding)

    # -- statements -----------------------------------------------------------------------------
    def block(self, stmts: list[ast.Node]) -> None:
        self.blocks.append({})
        for stmt in stmts:
            self.stmt(stmt)
        self.blocks.pop()

    def body(self, node: ast.Node, loop: bool = False) -> None:
        if loop:
            self.loop_marks.append(len(self.blocks))
        self.blocks.append({})
        if isinstance(node, ast.Block):
            for stmt in node.body:
                self.stmt(stmt)
        else:
            self.stmt(node)
        self.blocks.pop()
        if loop:
            self.loop_marks.pop()

    def stmt(self, node: ast.Node) -> None:
        if isinstance(node, ast.ExprStatement):
            self.expr(node.expr)
        elif isinstance(node, ast.Block):
            self.block(node.body)
        elif isinstance(node, ast.LocalDecl):
            for var in node.names:
                if var.value is not None:
                    self.expr(var.value)
                self.note(self.declare(var.name, var), self.value_kind(var.value))
        elif isinstance(node, ast.LocalFunction):
            # Squirrel 3.0.5 declares the local after compiling the function: its body does
            # not see it (a recursive call goes to the root table), as the VM does.
            self.function(node.function)
            self.note(self.declare(node.name, node), "other")
        elif isinstance(node, ast.FunctionDecl):
            owner = self.res.class_names.get(".".join(node.path[:-1])) \
                if len(node.path) > 1 else None
            if len(node.path) > 1:
                self.res.uses_globals.add(node.path[0])  # `function A::f` finds A in the root
            self.function(node.function, owner)
        elif isinstance(node, ast.ClassDecl):
            if isinstance(node.target, ast.Member):
                self.expr(node.target.obj)
            self.class_expr(node.cls)
        elif isinstance(node, ast.ConstDecl):
            self.consts[node.name] = node.value
        elif isinstance(node, ast.EnumDecl):
            members = {m.name: m.value for m in node.members}
            self.res.enums[node.name] = members
            self.consts.pop(node.name, None)
        elif isinstance(node, ast.If):
            self.expr(node.test)
            self.body(node.then)
            if node.otherwise is not None:
                self.body(node.otherwise)
        elif isinstance(node, ast.While):
            self.expr(node.test)
            self.body(node.body, loop=True)
        elif isinstance(node, ast.DoWhile):
            self.body(node.body, loop=True)
            self.expr(node.test)
        elif isinstance(node, ast.For):
            self.blocks.append({})
            if node.init is not None:
                self.stmt(node.init) if isinstance(node.init, ast.LocalDecl) \
                    else self.expr(node.init)
            if node.test is not None:
                self.expr(node.test)
            if node.update is not None:
                self.expr(node.update)
            self.body(node.body, loop=True)
            self.blocks.pop()
        elif isinstance(node, ast.Foreach):
            self.expr(node.iterable)
            self.blocks.append({})
            key = self.declare(node.key, node) if node.key is not None else None
            value = self.declare(node.value, node.iterable)
            self.note(value, "other")
            if key is not None:
                self.note(key, "other")
            self.res.foreach[id(node)] = (key, value)
            self.body(node.body, loop=True)
            self.blocks.pop()
        elif isinstance(node, ast.Switch):
            self.expr(node.subject)
            for case in node.cases:
                if case.test is not None:
                    self.expr(case.test)
                self.block(case.body)
        elif isinstance(node, (ast.Return, ast.Throw)):
            if node.value is not None:
                self.expr(node.value)
        elif isinstance(node, ast.Yield):
            self.unsupported(node, "yield (generators)")
        elif isinstance(node, ast.Try):
            self.body(node.body)
            self.blocks.append({})
            self.res.catch[id(node)] = self.declare(node.catch_name, node)
            self.note(self.res.catch[id(node)], "other")
            self.body(node.handler)
            self.blocks.pop()
        elif isinstance(node, (ast.Break, ast.Continue, ast.Empty)):
            pass
        else:
            self.expr(node)

    # -- expressions ----------------------------------------------------------------------------
    def expr(self, node: ast.Node) -> None:
        if isinstance(node, ast.Identifier):
            self.identifier(node)
        elif isinstance(node, ast.Assign):
            owner = None
            if node.op == "<-" and isinstance(node.target, ast.Member) \
                    and isinstance(node.value, ast.FunctionExpr):
                owner = self.res.class_names.get(_path_of(node.target.obj) or "")
            if owner is not None:  # `Class.method <- function () {...}`: a method
                assert isinstance(node.value, ast.FunctionExpr)
                self.function(node.value, owner)
            else:
                self.expr(node.value)
            self.target(node.target, node.op)
            self.note_target(node.target, node.value, node.op)
        elif isinstance(node, ast.IncDec):
            self.target(node.target, "=")
            self.note_target(node.target, None, "++")
        elif isinstance(node, ast.FunctionExpr):
            self.function(node)
        elif isinstance(node, ast.ClassExpr):
            self.class_expr(node)
        elif isinstance(node, ast.Unary) and node.op == "resume":
            self.unsupported(node, "resume (generators)")
        elif isinstance(node, ast.TableLiteral):
            for slot in node.slots:
                if slot.computed:
                    self.expr(slot.key)
                if isinstance(slot.value, ast.FunctionExpr):
                    self.function(slot.value, table=node)
                else:
                    self.expr(slot.value)
        elif isinstance(node, ast.Member) and isinstance(node.obj, ast.Identifier) \
                and node.obj.name in self.res.enums and self.lookup(node.obj.name)[0] is None:
            members = self.res.enums[node.obj.name]
            if node.name not in members:
                self.unsupported(node, "unknown enum member", f"{node.obj.name}.{node.name}")
            self.res.refs[id(node)] = Ref("const", value=members[node.name])
        elif isinstance(node, ast.Identifier) is False:
            for child in ast.children(node):
                self.expr(child)

    def target(self, node: ast.Node, op: str) -> None:
        if isinstance(node, ast.Identifier):
            if op == "<-":
                binding, _outer = self.lookup(node.name)
                if binding is None:
                    self.res.refs[id(node)] = Ref("root")
                    self.res.root_names.add(node.name)
                    return
            self.identifier(node, assigned=True)
        else:
            self.expr(node)

    def function(self, node: ast.FunctionExpr, owner: ClassInfo | None = None,
                 table: ast.TableLiteral | None = None) -> FuncInfo:
        info = FuncInfo(node, self.func, cls=owner, table=table)
        self.res.funcs[id(node)] = info
        for param in node.params:
            if param.default is not None:
                self.expr(param.default)
        saved = (self.func, self.blocks, self.loop_marks)
        self.func = info
        # the enclosing scopes stay visible (outers); loop marks restart for the new function
        self.blocks = [*self.blocks, {}]
        self.loop_marks = []
        for param in node.params:
            self.note(self.declare(param.name, param), "other")
        if node.varargs:
            self.note(self.declare("vargv", node), "other")
        self.body(node.body)
        self.func, self.blocks, self.loop_marks = saved
        return info

    def class_expr(self, node: ast.ClassExpr) -> None:
        info = self.res.classes.get(id(node)) or self._class(node, None)
        if node.base is not None:
            self.expr(node.base)
        for member in node.members:
            if member.computed:
                self.expr(member.key)
            if isinstance(member.key, ast.String):
                self.note(member_key(info, member.key.value), self.value_kind(member.value))
            if isinstance(member.value, ast.FunctionExpr):
                self.function(member.value, info)
            else:
                self.expr(member.value)


__all__ = [
    "IMP_GLOBALS",
    "RESERVED",
    "Binding",
    "ClassInfo",
    "FuncInfo",
    "Ref",
    "Resolution",
    "Resolver",
    "attribute_ok",
    "python_name",
]
