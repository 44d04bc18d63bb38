"""Statements and functions: Squirrel statement nodes to Python lines.

One Python statement per Squirrel statement where Python has one; the rest keep Squirrel's
meaning with a small, fixed shape: a ``for`` becomes ``init`` + ``while`` with the update also
before each ``continue``; a ``do … while`` a ``while True`` ending in the test; a ``switch``
an ``if``/``elif`` chain when no case falls through, otherwise a one-pass ``while True`` with a
``_fall`` flag.
"""

from __future__ import annotations

from bridge.squirrel import ast
from bridge.squirrel.translate_base import EmitterBase
from bridge.squirrel.translate_expr import py_string
from bridge.squirrel.translate_names import Binding, attribute_ok, python_name

_TERMINATORS = (ast.Break, ast.Return, ast.Throw, ast.Continue)
_BUMP = {"++": "sq.inc", "--": "sq.dec"}
_COMPOUND = {"+=": "add", "-=": "sub", "*=": "mul", "/=": "div", "%=": "mod"}


def _contains(node: ast.Node, kinds: tuple[type[ast.Node], ...], stop_at_loops: bool) -> bool:
    """A ``kinds`` node below ``node`` (not inside nested functions, nor loops if asked)."""
    stack = list(ast.children(node))
    while stack:
        current = stack.pop()
        if isinstance(current, kinds):
            return True
        if isinstance(current, (ast.FunctionExpr, ast.ClassExpr)):
            continue
        if stop_at_loops and isinstance(current, (ast.While, ast.DoWhile, ast.For, ast.Foreach,
                                                  ast.Switch)):
            continue
        stack.extend(ast.children(current))
    return False


class StmtMixin(EmitterBase):
    """The statement half of `Emitter`."""

    def stmts(self, body: list[ast.Node]) -> None:
        start = len(self.out)
        for stmt in body:
            self.flush_comments(stmt.line)
            first = len(self.out)
            self.stmt(stmt)
            self.trailing_comments(stmt.line, first)
        if len(self.out) == start or all(line.strip().startswith("#")
                                         for _i, line, _n in self.out[start:]):
            self.line("pass", body[0].line if body else self.current_line)

    def body_of(self, node: ast.Node) -> None:
        self.indent += 1
        self.stmts(node.body if isinstance(node, ast.Block) else [node])
        self.indent -= 1

    def stmt(self, node: ast.Node) -> None:
        self.current_line = node.line
        if isinstance(node, ast.ExprStatement):
            self.expr_stmt(node.expr)
        elif isinstance(node, ast.LocalDecl):
            for var in node.names:
                binding = self.res.decls[id(var)]
                if isinstance(var.value, ast.FunctionExpr) and not binding.boxed:
                    self.emit_function(var.value, binding.pyname)
                    continue
                value = self.expr(var.value) if var.value is not None else "None"
                self.line(f"{binding.pyname} = {self.boxed(binding, value)}", var.line)
        elif isinstance(node, ast.LocalFunction):
            binding = self.res.decls[id(node)]
            if binding.boxed:
                self.unsupported(node, "a boxed local function")
            self.emit_function(node.function, binding.pyname)
        elif isinstance(node, ast.FunctionDecl):
            self.function_decl(node)
        elif isinstance(node, ast.ClassDecl):
            self.class_decl(node)
        elif isinstance(node, ast.ConstDecl):
            self.line(f"# const {node.name} = {self.expr(node.value)}  (inlined where used)",
                      node.line)
        elif isinstance(node, ast.EnumDecl):
            members = ", ".join(f"{m.name} = {self.expr(m.value)}" for m in node.members)
            self.line(f"# enum {node.name} {{ {members} }}  (inlined where used)", node.line)
        elif isinstance(node, ast.Block):
            self.stmts(node.body) if node.body else None
        elif isinstance(node, ast.If):
            self.if_stmt(node)
        elif isinstance(node, ast.While):
            test = self.cond(node.test)
            self.line(f"while {test}:", node.line)
            self.loops.append(("while", []))
            self.body_of(node.body)
            self.loops.pop()
        elif isinstance(node, ast.DoWhile):
            self.do_while(node)
        elif isinstance(node, ast.For):
            self.for_stmt(node)
        elif isinstance(node, ast.Foreach):
            self.foreach(node)
        elif isinstance(node, ast.Switch):
            self.switch(node)
        elif isinstance(node, ast.Break):
            self.line("break", node.line)
        elif isinstance(node, ast.Continue):
            self.continue_stmt(node)
        elif isinstance(node, ast.Return):
            if self.func.top:
                self.unsupported(node, "return at the top level of a file",
                                 "end the script's top level without it")
            self.line("return" if node.value is None else f"return {self.expr(node.value)}",
                      node.line)
        elif isinstance(node, ast.Throw):
            self.line(f"raise sq.SquirrelError({self.expr(node.value)})", node.line)
        elif isinstance(node, ast.Try):
            self.try_stmt(node)
        elif isinstance(node, ast.Empty):
            pass
        else:
            self.unsupported(node, type(node).__name__)

    def boxed(self, binding: Binding, value: str) -> str:
        return f"sq.Cell({value})" if binding.boxed else value

    # -- expression statements: assignments keep Python's statement form -----------------------
    def expr_stmt(self, node: ast.Node) -> None:
        if isinstance(node, ast.Assign):
            self.assign_stmt(node)
        elif isinstance(node, ast.IncDec):
            target = node.target
            self.assign_stmt(ast.Assign("+=" if node.op == "++" else "-=", target,
                                        ast.Integer(1), line=node.line, column=node.column),
                             bump=_BUMP[node.op])
        elif isinstance(node, ast.Comma):
            for item in node.items:
                self.expr_stmt(item)
        else:
            self.line(self.expr(node), node.line)

    def assign_stmt(self, node: ast.Assign, bump: str | None = None) -> None:
        target = node.target
        if isinstance(node.value, ast.FunctionExpr) and node.op == "<-" \
                and self.res.funcs[id(node.value)].cls is not None \
                and isinstance(target, ast.Member):
            value = self.fresh(f"_{python_name(target.name)}")
            self.emit_function(node.value, value, method=True)
        elif isinstance(node.value, ast.FunctionExpr) and node.op in ("=", "<-"):
            hint = target.name if isinstance(target, (ast.Identifier, ast.Member,
                                                      ast.RootAccess)) else None
            value = self.function_value(node.value, hint)
        elif isinstance(node.value, ast.ClassExpr) and node.op in ("=", "<-"):
            hint = target.name if isinstance(target, (ast.Identifier, ast.Member,
                                                      ast.RootAccess)) else None
            value = self.class_value(node.value, hint)
        else:
            value = self.expr(node.value)
        read = self.target_read(target) if node.op in _COMPOUND else ""
        if bump is not None:
            value = f"{bump}({read})"
        elif node.op in _COMPOUND:
            value = f"sq.{_COMPOUND[node.op]}({read}, {value})"
        self.line(self.target_write(target, value, node.op == "<-", node), node.line)

    def target_read(self, target: ast.Node) -> str:
        return self.expr(target)

    def target_write(self, target: ast.Node, value: str, newslot: bool,
                     node: ast.Node) -> str:
        """The Python statement assigning ``value`` (text) to ``target``."""
        if isinstance(target, ast.Identifier):
            ref = self.res.refs.get(id(target))
            if ref is not None and ref.kind == "local" and ref.binding is not None:
                binding = ref.binding
                if binding.boxed:
                    return f"{binding.pyname}.value = {value}"
                self.declare_outer(binding)
                return f"{binding.pyname} = {value}"
            if ref is not None and ref.kind == "slot":
                if newslot:
                    return f"sq.newslot({self.self_name(target)}, {py_string(target.name)}, " \
                           f"{value})"
                return f"{self.self_name(target)}[{py_string(target.name)}] = {value}"
            if ref is not None and ref.kind == "member":
                if newslot:
                    return f"sq.newslot({self.self_name(target)}, {py_string(target.name)}, " \
                           f"{value})"
                return f"{self.self_name(target)}.{target.name} = {value}"
            return self.root_write(target.name, value, newslot or
                                   target.name in self.res.root_names)
        if isinstance(target, ast.RootAccess):
            return self.root_write(target.name, value, True)
        if isinstance(target, ast.Member):
            obj = self.expr(target.obj)
            if newslot:
                return f"sq.newslot({obj}, {py_string(target.name)}, {value})"
            if self.table_only(target.obj):
                return f"{obj}[{py_string(target.name)}] = {value}"
            if not attribute_ok(target.name) or target.name.startswith("__") \
                    or not self.attr_safe(target.obj):
                return f"sq.set_index({obj}, {py_string(target.name)}, {value})"
            return f"{obj}.{target.name} = {value}"
        if isinstance(target, ast.Index):
            obj = self.expr(target.obj)
            key = self.expr(target.key)
            if newslot:
                return f"sq.newslot({obj}, {key}, {value})"
            return f"sq.set_index({obj}, {key}, {value})"
        self.unsupported(node, "assignment to this kind of target")
        return ""

    def root_write(self, name: str, value: str, known: bool) -> str:
        pyname = python_name(name)
        if not known:
            return f"sq.root_set(globals(), {py_string(name)}, {value})"
        if not self.func.top:
            self.decls[pyname] = "global"
        return f"{pyname} = {value}"

    def declare_outer(self, binding: Binding) -> None:
        if binding.func is self.func:
            return
        self.decls[binding.pyname] = "global" if binding.func.top else "nonlocal"

    # -- control flow ---------------------------------------------------------------------------
    def if_stmt(self, node: ast.If) -> None:
        self.line(f"if {self.cond(node.test)}:", node.line)
        self.body_of(node.then)
        otherwise = node.otherwise
        while otherwise is not None:
            if isinstance(otherwise, ast.If):
                with self.capture() as pre:
                    test = self.cond(otherwise.test)
                if not pre:
                    self.line(f"elif {test}:", otherwise.line)
                    self.body_of(otherwise.then)
                    otherwise = otherwise.otherwise
                    continue
            self.line("else:", otherwise.line)
            self.body_of(otherwise)
            break

    def do_while(self, node: ast.DoWhile) -> None:
        self.line("while True:", node.line)
        self.indent += 1
        with self.capture() as pre:
            test = self.cond(node.test)
        check = [*pre, (0, f"if not ({test}):", node.test.line), (1, "break", node.test.line)]
        self.loops.append(("do", check))
        self.stmts(node.body.body if isinstance(node.body, ast.Block) else [node.body])
        self.loops.pop()
        self.splice(check)
        self.indent -= 1

    def for_stmt(self, node: ast.For) -> None:
        if node.init is not None:
            if isinstance(node.init, ast.LocalDecl):
                self.stmt(node.init)
            else:
                self.expr_stmt(node.init)
        test = self.cond(node.test) if node.test is not None else "True"
        self.line(f"while {test}:", node.line)
        self.indent += 1
        update: list[tuple[int, str, int]] = []
        if node.update is not None:
            with self.capture() as update:
                self.expr_stmt(node.update)
        self.loops.append(("for", update))
        self.stmts(node.body.body if isinstance(node.body, ast.Block) else [node.body])
        self.loops.pop()
        self.splice(update)
        self.indent -= 1

    def continue_stmt(self, node: ast.Continue) -> None:
        if not self.loops:
            self.unsupported(node, "continue outside a loop")
        kind, prelude = self.loops[-1]
        if kind == "switch":
            self.unsupported(node, "continue inside a switch with fall-through")
        self.splice(prelude)
        self.line("continue", node.line)

    def foreach(self, node: ast.Foreach) -> None:
        key, value = self.res.foreach[id(node)]
        if value.boxed or (key is not None and key.boxed):
            self.unsupported(node, "a foreach variable captured and reassigned in the loop")
        iterable = self.expr(node.iterable)
        if key is None:
            self.line(f"for {value.pyname} in sq.values({iterable}):", node.line)
        else:
            self.line(f"for {key.pyname}, {value.pyname} in sq.items({iterable}):", node.line)
        self.loops.append(("foreach", []))
        self.body_of(node.body)
        self.loops.pop()

    def try_stmt(self, node: ast.Try) -> None:
        binding = self.res.catch[id(node)]
        self.line("try:", node.line)
        self.body_of(node.body)
        error = self.temp("error")
        self.line(f"except Exception as {error}:", node.handler.line)
        self.indent += 1
        self.line(f"{binding.pyname} = {self.boxed(binding, f'sq.caught({error})')}",
                  node.handler.line)
        self.indent -= 1
        self.body_of(node.handler)

    def switch(self, node: ast.Switch) -> None:
        subject = self.expr(node.subject)
        if not isinstance(node.subject, (ast.Identifier, ast.This)) or "(" in subject:
            temp = self.temp("subject")
            self.line(f"{temp} = {subject}", node.line)
            subject = temp
        cases = node.cases
        # groups of case labels sharing one body (empty cases fall into the next)
        groups: list[tuple[list[ast.Node | None], list[ast.Node]]] = []
        labels: list[ast.Node | None] = []
        for case in cases:
            labels.append(case.test)
            if case.body:
                groups.append((labels, case.body))
                labels = []
        if labels:
            groups.append((labels, []))
        simple = all(
            (i == len(groups) - 1 or (body and isinstance(body[-1], _TERMINATORS)))
            and not any(_contains(stmt, (ast.Break,), True) for stmt in body[:-1])
            and not (body and _contains(body[-1], (ast.Break,), True))
            for i, (_labels, body) in enumerate(groups))
        if simple:
            self.switch_chain(subject, groups, node)
        else:
            self.switch_fallthrough(subject, cases, node)

    def _case_test(self, subject: str, labels: list[ast.Node | None]) -> str:
        tests = []
        for label in labels:
            if label is None:
                return "True"
            value = self.expr(label)
            if isinstance(label, (ast.String, ast.Integer, ast.Float)) \
                    and not (isinstance(label, ast.Integer) and label.value in (0, 1)):
                tests.append(f"{subject} == {value}")
            elif isinstance(label, ast.Null):
                tests.append(f"{subject} is None")
            else:
                tests.append(f"sq.eq({subject}, {value})")
        return " or ".join(tests)

    def switch_chain(self, subject: str,
                     groups: list[tuple[list[ast.Node | None], list[ast.Node]]],
                     node: ast.Switch) -> None:
        first = True
        for labels, body in groups:
            if isinstance(body[-1:] or None, list) and body and isinstance(body[-1], ast.Break):
                body = body[:-1]
            test = self._case_test(subject, labels)
            line = labels[0].line if labels and labels[0] is not None else node.line
            if test == "True":
                self.line("else:" if not first else "if True:", line)
            else:
                self.line(f"{'if' if first else 'elif'} {test}:", line)
            first = False
            self.indent += 1
            self.stmts(body) if body else self.line("pass", line)
            self.indent -= 1

    def switch_fallthrough(self, subject: str, cases: list[ast.SwitchCase],
                           node: ast.Switch) -> None:
        fall = self.temp("fall")
        self.line(f"{fall} = False", node.line)
        self.line("while True:  # switch: `break` leaves it, cases fall through", node.line)
        self.indent += 1
        self.loops.append(("switch", []))
        for case in cases:
            if case.test is None:
                self.line("# default:", case.line)
                self.stmts(case.body) if case.body else None
                continue
            self.line(f"if {fall} or {self._case_test(subject, [case.test])}:", case.line)
            self.indent += 1
            self.line(f"{fall} = True", case.line)
            if case.body:
                self.stmts(case.body)
            self.indent -= 1
        self.line("break", node.line)
        self.loops.pop()
        self.indent -= 1

    # -- functions ------------------------------------------------------------------------------
    def function_decl(self, node: ast.FunctionDecl) -> None:
        if len(node.path) == 1:
            name = python_name(node.path[0])
            if not self.func.top:
                self.decls[name] = "global"
            self.emit_function(node.function, name)
            return
        owner = ".".join(python_name(p) for p in node.path[:-1])
        pyname = "_".join(python_name(p) for p in node.path)
        info = self.res.funcs[id(node.function)]
        self.emit_function(node.function, pyname, method=info.cls is not None)
        self.line(f"sq.newslot({owner}, {py_string(node.path[-1])}, {pyname})", node.line)

    def function_value(self, node: ast.FunctionExpr, hint: str | None) -> str:
        """A function literal as a value: a lambda when it is one expression, else a ``def``
        written before the current statement; the Python name/expression."""
        info = self.res.funcs[id(node)]
        if node.is_lambda and not info.loop_defaults and not node.varargs \
                and not any(self.res.decls[id(p)].boxed for p in node.params):
            with self.capture() as pre, self.function_scope(info) as decls:
                body = self.expr(node.body)
            if not pre and not decls:
                params = self.params(node, method=False)
                return f"(lambda {params}: {body})" if params else f"(lambda: {body})"
        base = python_name(hint) if hint else "_function"
        if not base.startswith("_"):
            base = "_" + base
        name = self.fresh(base)
        self.emit_function(node, name)
        return name

    def params(self, node: ast.FunctionExpr, method: bool) -> str:
        info = self.res.funcs[id(node)]
        parts = ["self"] if method else []
        for param in node.params:
            binding = self.res.decls[id(param)]
            text = binding.pyname
            if param.default is not None:
                text += f"={self.expr(param.default)}"
            parts.append(text)
        if node.varargs:
            parts.append("*vargv")
        if info.loop_defaults:
            if not node.varargs:
                parts.append("*")
            parts.extend(f"{b.pyname}={b.pyname}" for b in info.loop_defaults)
        return ", ".join(parts)

    def emit_function(self, node: ast.FunctionExpr, pyname: str,
                      method: bool = False) -> None:
        info = self.res.funcs[id(node)]
        params = self.params(node, method)
        self.line(f"def {pyname}({params}):", node.line)
        header = len(self.out)
        self.indent += 1
        with self.function_scope(info) as decls:
            if node.varargs:
                vargv = self.res.decls[id(node)]
                self.line(f"{vargv.pyname} = {self.boxed(vargv, 'sq.Array(vargv)')}", node.line)
            for param in node.params:
                binding = self.res.decls[id(param)]
                if binding.boxed:
                    self.line(f"{binding.pyname} = sq.Cell({binding.pyname})", node.line)
            if node.is_lambda:
                self.line(f"return {self.expr(node.body)}", node.body.line)
            else:
                self.stmts(node.body.body if isinstance(node.body, ast.Block) else [node.body])
        for kind in ("global", "nonlocal"):
            names = sorted(n for n, k in decls.items() if k == kind)
            if names:
                self.out.insert(header, (self.indent, f"{kind} {', '.join(names)}", node.line))
        self.indent -= 1




class ValueAssignMixin(EmitterBase):
    """Assignments and ``++``/``--`` used as values (inside a larger expression)."""

    def assign_value(self, node: ast.Assign) -> str:
        target = node.target
        value = self.expr(node.value)
        if node.op in _COMPOUND:
            value = f"sq.{_COMPOUND[node.op]}({self.expr(target)}, {value})"
        return self._store_value(target, value, node.op == "<-", node)

    def incdec_value(self, node: ast.IncDec) -> str:
        step = _BUMP[node.op]
        target = node.target
        prefix = "True" if node.prefix else "False"
        if isinstance(target, ast.Member) and not isinstance(target.obj, ast.Base):
            return f"sq.bump_attr({self.expr(target.obj)}, {py_string(target.name)}, {step}, " \
                   f"{prefix})"
        if isinstance(target, ast.Index):
            return f"sq.bump_index({self.expr(target.obj)}, {self.expr(target.key)}, {step}, " \
                   f"{prefix})"
        ref = self.res.refs.get(id(target)) if isinstance(target, ast.Identifier) else None
        if ref is not None and ref.kind == "member":
            assert isinstance(target, ast.Identifier)
            return f"sq.bump_attr({self.self_name(target)}, {py_string(target.name)}, {step}, " \
                   f"{prefix})"
        current = self.expr(target)
        store = self._store_value(target, f"{step}({current})", False, node)
        return store if node.prefix else f"sq.first({current}, {store})"

    def _store_value(self, target: ast.Node, value: str, newslot: bool,
                     node: ast.Node) -> str:
        if isinstance(target, ast.Identifier):
            ref = self.res.refs.get(id(target))
            if ref is not None and ref.kind == "local" and ref.binding is not None:
                binding = ref.binding
                if binding.boxed:
                    return f"sq.set_cell({binding.pyname}, {value})"
                self.declare_outer(binding)
                return f"({binding.pyname} := {value})"
            if ref is not None and ref.kind == "slot":
                if newslot:
                    return f"sq.newslot({self.self_name(target)}, {py_string(target.name)}, " \
                           f"{value})"
                return f"{self.self_name(target)}[{py_string(target.name)}] = {value}"
            if ref is not None and ref.kind == "member":
                if newslot:
                    return f"sq.newslot({self.self_name(target)}, {py_string(target.name)}, " \
                           f"{value})"
                return f"sq.set_attr({self.self_name(target)}, {py_string(target.name)}, " \
                       f"{value})"
            name = target.name
        elif isinstance(target, ast.RootAccess):
            name, newslot = target.name, True
        elif isinstance(target, ast.Member):
            obj = self.expr(target.obj)
            helper = "newslot" if newslot else "set_attr"
            return f"sq.{helper}({obj}, {py_string(target.name)}, {value})"
        elif isinstance(target, ast.Index):
            helper = "newslot" if newslot else "set_index"
            return f"sq.{helper}({self.expr(target.obj)}, {self.expr(target.key)}, {value})"
        else:
            self.unsupported(node, "assignment to this kind of target")
        pyname = python_name(name)
        if not (newslot or name in self.res.root_names):
            return f"sq.root_set(globals(), {py_string(name)}, {value})"
        if not self.func.top:
            self.decls[pyname] = "global"
        return f"({pyname} := {value})"


__all__ = ["StmtMixin", "ValueAssignMixin"]
