"""Classes: a Squirrel class becomes a Python class deriving from ``sq.Instance`` (or its base).

Member defaults become class attributes (Squirrel copies the default of each member into every
new instance, by reference for tables and arrays, which is what a Python class attribute read
through an instance gives); ``constructor`` becomes ``__init__``; methods take ``self`` for
``this``; metamethods keep their Squirrel names, which the runtime looks up (``_tostring``,
``_typeof``, ``_get``, ``_set``, ``_cmp``, ``_add`` …); ``base.f()`` becomes ``super().f()``.
"""

from __future__ import annotations

from bridge.squirrel import ast
from bridge.squirrel.translate_base import EmitterBase
from bridge.squirrel.translate_expr import py_string
from bridge.squirrel.translate_names import attribute_ok, python_name


class ClassMixin(EmitterBase):
    """The class half of `Emitter`."""

    def class_decl(self, node: ast.ClassDecl) -> None:
        target = node.target
        if isinstance(target, (ast.Identifier, ast.RootAccess)):
            pyname = python_name(target.name)
            if not self.func.top:
                self.decls[pyname] = "global"
            self.emit_class(node.cls, pyname, node.line)
            return
        if isinstance(target, ast.Member):
            owner = self.expr(target.obj)
            pyname = self.fresh(owner.replace(".", "_") + "_" + target.name)
            self.emit_class(node.cls, pyname, node.line)
            self.line(f"sq.newslot({owner}, {py_string(target.name)}, {pyname})", node.line)
            return
        self.unsupported(node, "class declared on this kind of target")

    def class_value(self, node: ast.ClassExpr, hint: str | None) -> str:
        name = self.fresh(python_name(hint) if hint else "_Class")
        self.emit_class(node, name, node.line)
        return name

    def emit_class(self, cls: ast.ClassExpr, pyname: str, line: int) -> None:
        base = self.expr(cls.base) if cls.base is not None else "sq.Instance"
        self.line(f"class {pyname}({base}):", line)
        self.indent += 1
        names = []
        for member in cls.members:
            if member.computed or not isinstance(member.key, ast.String):
                self.unsupported(member, "a computed class member key")
            assert isinstance(member.key, ast.String)
            name = member.key.value
            if not attribute_ok(name) or name.startswith("__"):
                self.unsupported(member, "a class member with this name", name)
            if member.kind != "constructor":
                names.append(name)
        members = "".join(f"{py_string(n)}, " for n in names).rstrip(", ")
        self.line(f"_sq_members = ({members}{',' if len(names) == 1 else ''})", line)
        statics = [m.key.value for m in cls.members
                   if m.static and isinstance(m.key, ast.String)]
        if statics:
            listed = ", ".join(py_string(n) for n in statics)
            self.line(f"_sq_statics = ({listed}{',' if len(statics) == 1 else ''})", line)
        for member in cls.members:
            self.flush_comments(member.line)
            assert isinstance(member.key, ast.String)
            name = member.key.value
            value = member.value
            if member.kind == "constructor":
                assert isinstance(value, ast.FunctionExpr)
                self.emit_function(value, "__init__", method=True)
            elif isinstance(value, ast.FunctionExpr):
                if member.static:
                    # called as Class.f(), its `this` is the class: a bare static member
                    # name inside it is self.NAME
                    self.line("@classmethod", member.line)
                self.emit_function(value, name, method=True)
            elif isinstance(value, ast.ClassExpr):
                self.emit_class(value, name, member.line)
            else:
                note = "  # static" if member.static else ""
                self.line(f"{name} = {self.expr(value)}{note}", member.line)
        if "_call" in names:
            self.line("__call__ = _call", line)
        self.indent -= 1

    def self_name(self, node: ast.Node) -> str:
        if self.func.top and isinstance(node, ast.This):
            return "sq.RootTable(globals())"  # the top level's `this` is the root table
        table = self.func.this_table()
        if table is not None:
            return self.table_names[id(table)]
        if self.func.method_class() is None:
            self.unsupported(node, "this outside a class method",
                             "the bridge gives functions their `this` statically: write the "
                             "table/instance explicitly")
        return "self"

    def super_ref(self) -> str:
        return "super()" if self.func.cls is not None else "super(__class__, self)"


__all__ = ["ClassMixin"]
