"""Expressions: Squirrel expression nodes to Python expression text.

Where Python's operator means the same thing for every operand Squirrel allows, it is kept
(``a < b``, ``x is None``, ``a and b`` between booleans); elsewhere the runtime function of the
same name is called (``sq.add(a, b)`` for ``+``: 32-bit wrap, float32, string concatenation).
An expression that Python cannot write inline (a function literal, an assignment used as a
value) adds statements before the current one through ``self.pre``.
"""

from __future__ import annotations

from typing import Any

from bridge.squirrel import ast
from bridge.squirrel import runtime as sq
from bridge.squirrel.translate_base import EmitterBase
from bridge.squirrel.translate_names import (
    IMP_GLOBALS,
    Binding,
    attribute_ok,
    member_key,
    python_name,
)

# Python attribute names of dict/list/str: a Squirrel member of one of these names must not
# meet Python's method (``t.keys`` is the slot "keys", not dict.keys).
_SHADOWED = frozenset(n for kind in (dict, list, str) for n in dir(kind)
                      if not n.startswith("__")) | {"_sq_cmp", "_sq_members"}
_ARITH = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "&": "bitand",
          "|": "bitor", "^": "bitxor", "<<": "shl", ">>": "shr", ">>>": "ushr", "<=>": "cmp"}
_COMPARE = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_FOLDABLE = (ast.Integer, ast.Float, ast.String, ast.Bool, ast.Null)


def py_string(text: str) -> str:
    """A Python string literal, double-quoted like most Squirrel code writes them."""
    body = repr(text)
    if body.startswith("'") and '"' not in text:
        body = '"' + body[1:-1].replace("\\'", "'") + '"'
    return body


def literal_value(node: ast.Node) -> Any:
    if isinstance(node, ast.Integer):
        return node.value
    if isinstance(node, ast.Float):
        return sq.f32(node.value)
    if isinstance(node, (ast.String, ast.Bool)):
        return node.value
    return None


def py_literal(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return 'float("nan")'
        if value in (float("inf"), float("-inf")):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)
    return py_string(str(value))


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "{": "{{", "}": "}}"}


def _fstring_text(text: str, quote: str) -> str:
    """``text`` as the literal part of an f-string quoted with ``quote`` (non-ASCII kept)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == quote:
            out.append("\\" + quote)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


class ExprMixin(EmitterBase):
    """The expression half of `Emitter` (which provides ``self.res``, ``self.pre`` ...)."""

    def expr(self, node: ast.Node) -> str:
        ref = self.res.refs.get(id(node))
        if ref is not None and ref.kind == "const" and ref.value is not None:
            return self.expr(ref.value)
        if isinstance(node, _FOLDABLE):
            return py_literal(literal_value(node))
        if isinstance(node, ast.Identifier):
            return self.name_read(node)
        if isinstance(node, ast.This):
            return self.this(node)
        if isinstance(node, ast.RootAccess):
            return self.root_name(node.name)
        if isinstance(node, ast.Base):
            return self.super_ref()
        if isinstance(node, ast.Member):
            return self.member(node)
        if isinstance(node, ast.Index):
            obj = self.expr(node.obj)
            if isinstance(node.key, ast.String):
                return f"{obj}[{py_string(node.key.value)}]"
            return f"sq.index({obj}, {self.expr(node.key)})"
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Unary):
            return self.unary(node)
        if isinstance(node, ast.Binary):
            return self.binary(node)
        if isinstance(node, ast.Conditional):
            return (f"({self.expr(node.then)} if {self.cond(node.test)} "
                    f"else {self.expr(node.otherwise)})")
        if isinstance(node, ast.Comma):
            return "(" + ", ".join(self.expr(item) for item in node.items) + ")[-1]"
        if isinstance(node, ast.ArrayLiteral):
            if not node.items:
                return "sq.Array()"
            return "sq.Array([" + ", ".join(self.expr(item) for item in node.items) + "])"
        if isinstance(node, ast.TableLiteral):
            return self.table(node)
        if isinstance(node, ast.FunctionExpr):
            return self.function_value(node, None)
        if isinstance(node, ast.ClassExpr):
            return self.class_value(node, None)
        if isinstance(node, ast.Assign):
            return self.assign_value(node)
        if isinstance(node, ast.IncDec):
            return self.incdec_value(node)
        if isinstance(node, ast.Delete):
            return self.delete(node)
        self.unsupported(node, type(node).__name__)
        return ""

    # -- names ----------------------------------------------------------------------------------
    def binding_read(self, binding: Binding) -> str:
        return f"{binding.pyname}.value" if binding.boxed else binding.pyname

    def name_read(self, node: ast.Identifier) -> str:
        ref = self.res.refs.get(id(node))
        if ref is None or ref.kind == "root":
            return self.root_name(node.name)
        if ref.kind == "member":
            return f"{self.self_name(node)}.{node.name}" if node.name not in _SHADOWED \
                else f"sq.index({self.self_name(node)}, {py_string(node.name)})"
        if ref.kind == "slot":
            return f"{self.self_name(node)}[{py_string(node.name)}]"
        assert ref.binding is not None
        return self.binding_read(ref.binding)

    def root_name(self, name: str) -> str:
        if name not in self.res.root_names and name in sq.GLOBALS:
            return f"sq.{sq.GLOBALS[name]}"
        return python_name(name)

    def this(self, node: ast.Node) -> str:
        return self.self_name(node)

    # -- member access and calls ----------------------------------------------------------------
    def attr_safe(self, node: ast.Node) -> bool:
        """``node.name`` may be Python's attribute access: ``node`` only ever holds tables,
        instances, classes (or null), or is one of the runner's imp objects. Anything else
        (a parameter, a call's result ...) may be a plain dict from the bridge, read with
        ``sq.get``."""
        if isinstance(node, (ast.This, ast.Base)):
            return True
        if isinstance(node, (ast.Identifier, ast.RootAccess)):
            ref = self.res.refs.get(id(node))
            if isinstance(node, ast.Identifier) and ref is not None and ref.kind == "local":
                return ref.binding is not None and self.res.attr_safe(ref.binding)
            if isinstance(node, ast.Identifier) and ref is not None and ref.kind == "member":
                cls = self.func.method_class()
                return cls is not None and self.res.attr_safe(member_key(cls, node.name))
            if ref is not None and ref.kind == "const":
                return False
            key = ("root", node.name)
            if key not in self.res.kinds:
                return node.name in IMP_GLOBALS or node.name in sq.GLOBALS
            return self.res.attr_safe(key)
        return False

    def table_only(self, node: ast.Node) -> bool:
        """``node`` only ever holds a table (so ``node["name"]`` is its slot, at dict speed)."""
        if isinstance(node, ast.This) and self.func.this_table() is not None:
            return True
        if not isinstance(node, (ast.Identifier, ast.RootAccess)):
            return False
        ref = self.res.refs.get(id(node))
        if isinstance(node, ast.Identifier) and ref is not None and ref.kind == "local":
            return ref.binding is not None and self.res.table_only(ref.binding)
        if isinstance(node, ast.Identifier) and ref is not None and ref.kind == "member":
            cls = self.func.method_class()
            return cls is not None and self.res.table_only(member_key(cls, node.name))
        if ref is not None and ref.kind == "const":
            return False
        return self.res.table_only(("root", node.name))

    def member(self, node: ast.Member) -> str:
        if isinstance(node.obj, ast.Base):
            return f"{self.super_ref()}.{python_name(node.name)}"
        obj = self.expr(node.obj)
        if node.name in sq.METHOD_FUNCTIONS:
            return f"sq.method({obj}, {py_string(node.name)})"
        if self.table_only(node.obj):
            return f"{obj}[{py_string(node.name)}]"
        if node.name in _SHADOWED or not attribute_ok(node.name) \
                or not self.attr_safe(node.obj):
            return f"sq.get({obj}, {py_string(node.name)})"
        return f"{obj}.{node.name}"

    def call(self, node: ast.Call) -> str:
        callee = node.callee
        # a function literal passed as an argument is named after what receives it
        named = callee.name if isinstance(callee, (ast.Member, ast.Identifier)) else "call"
        args = []
        for arg in node.args:
            literal = arg if isinstance(arg, ast.FunctionExpr) else self._bound_literal(arg)
            args.append(self.function_value(literal, f"{named}_callback") if literal is not None
                        else self.expr(arg))
        if isinstance(callee, ast.Member):
            if isinstance(callee.obj, ast.Base):
                name = "__init__" if callee.name == "constructor" else python_name(callee.name)
                return f"{self.super_ref()}.{name}({', '.join(args)})"
            name = callee.name
            if name == "bindenv" and len(node.args) == 1 and isinstance(node.args[0], ast.This) \
                    and self.func.method_class() is not None and self._is_own_method(callee.obj):
                # a function written inside a method closes over that method's self, and
                # self.method is already bound to it
                return self.expr(callee.obj)
            if name == "bindenv" and isinstance(callee.obj, ast.FunctionExpr) \
                    and not (len(node.args) == 1 and isinstance(node.args[0], ast.This)) \
                    and self._uses_environment(callee.obj):
                self.unsupported(node, "bindenv of a function that uses its environment to "
                                       "something other than this",
                                 "the translation binds a function's `this` where it is written")
            obj = self.expr(callee.obj)
            if name in sq.METHOD_FUNCTIONS:
                return f"sq.{sq.METHOD_FUNCTIONS[name]}({', '.join([obj, *args])})"
            if name in _SHADOWED or not attribute_ok(name):
                return f"sq.invoke({', '.join([obj, py_string(name), *args])})"
            return f"{obj}.{name}({', '.join(args)})"
        if isinstance(callee, ast.Identifier) and callee.name == "getroottable" \
                and self.res.refs.get(id(callee), None) is not None \
                and self.res.refs[id(callee)].kind == "root" and not args:
            return "sq.RootTable(globals())"
        return f"{self.expr(callee)}({', '.join(args)})"

    def _is_own_method(self, node: ast.Node) -> bool:
        """``node`` is a function literal, or a method of this class (``m`` / ``this.m``)."""
        if isinstance(node, ast.FunctionExpr):
            return True
        ref = self.res.refs.get(id(node))
        if isinstance(node, ast.Identifier):
            return ref is not None and ref.kind == "member"
        return isinstance(node, ast.Member) and isinstance(node.obj, ast.This)

    def _bound_literal(self, node: ast.Node) -> ast.FunctionExpr | None:
        """The function of ``function () {...}.bindenv(this)`` inside a method, else None."""
        if (isinstance(node, ast.Call) and isinstance(node.callee, ast.Member)
                and node.callee.name == "bindenv" and isinstance(node.callee.obj, ast.FunctionExpr)
                and len(node.args) == 1 and isinstance(node.args[0], ast.This)
                and self.func.method_class() is not None):
            return node.callee.obj
        return None

    def delete(self, node: ast.Delete) -> str:
        target = node.target
        if isinstance(target, ast.Member):
            return f"sq.delete({self.expr(target.obj)}, {py_string(target.name)})"
        if isinstance(target, ast.Index):
            return f"sq.delete({self.expr(target.obj)}, {self.expr(target.key)})"
        if isinstance(target, ast.RootAccess):
            return f"sq.delete(globals(), {py_string(target.name)})"
        self.unsupported(node, "delete of this target")
        return ""

    # -- operators ------------------------------------------------------------------------------
    def is_bool(self, node: ast.Node) -> bool:
        """The expression's value is always a Squirrel bool (so Python's ``and``/``not`` and
        truth are exact for it)."""
        if isinstance(node, ast.Bool):
            return True
        if isinstance(node, ast.Unary):
            return node.op == "!"
        if isinstance(node, ast.Binary):
            if node.op in ("==", "!=", "<", "<=", ">", ">=", "in", "instanceof"):
                return True
            if node.op in ("&&", "||"):
                return self.is_bool(node.left) and self.is_bool(node.right)
        return False

    def cond(self, node: ast.Node) -> str:
        """``node`` as a Python condition with Squirrel's truthiness."""
        if isinstance(node, ast.Binary) and node.op in ("&&", "||"):
            op = " and " if node.op == "&&" else " or "
            return f"({self.cond(node.left)}{op}{self.cond(node.right)})"
        if isinstance(node, ast.Unary) and node.op == "!":
            return f"not {self.cond(node.operand)}"
        text = self.expr(node)
        if self.is_bool(node):
            return text
        return f"sq.truth({text})"

    def unary(self, node: ast.Unary) -> str:
        op = node.op
        if op == "!":
            return f"(not {self.cond(node.operand)})"
        if op == "-" and isinstance(node.operand, (ast.Integer, ast.Float)):
            return py_literal(sq.neg(literal_value(node.operand)))
        operand = self.expr(node.operand)
        if op == "-":
            return f"sq.neg({operand})"
        if op == "~":
            return f"sq.bitnot({operand})"
        if op == "typeof":
            return f"sq.typeof({operand})"
        if op == "clone":
            return f"sq.clone({operand})"
        self.unsupported(node, f"operator {op}")
        return ""

    def _static_type(self, node: ast.Node) -> str | None:
        if isinstance(node, ast.String):
            return "string"
        if isinstance(node, ast.Null):
            return "null"
        if isinstance(node, ast.Integer):
            return "int01" if node.value in (0, 1) else "number"
        if isinstance(node, ast.Float):
            return "int01" if node.value in (0.0, 1.0) else "number"
        return None

    def binary(self, node: ast.Binary) -> str:
        op = node.op
        if op in ("&&", "||"):
            if self.is_bool(node.left) and self.is_bool(node.right):
                word = "and" if op == "&&" else "or"
                return f"({self.expr(node.left)} {word} {self.expr(node.right)})"
            left = self.expr(node.left)
            right = self.expr(node.right)
            if self.is_bool(node.left):  # the left value, when it decides, is false/true
                return f"({right} if {left} else False)" if op == "&&" \
                    else f"(True if {left} else {right})"
            temp = self.temp()
            if op == "&&":
                return f"({right} if sq.truth({temp} := {left}) else {temp})"
            return f"({temp} if sq.truth({temp} := {left}) else {right})"
        if isinstance(node.left, _FOLDABLE) and isinstance(node.right, _FOLDABLE) \
                and op in _ARITH and not (op in ("/", "%") and literal_value(node.right) == 0):
            try:
                folded = getattr(sq, _ARITH[op])(literal_value(node.left),
                                                 literal_value(node.right))
                if not isinstance(folded, str) or len(folded) < 80:
                    return py_literal(folded)
            except sq.SquirrelError:
                pass
        if op == "+" and isinstance(node.left, ast.Binary) and node.left.op == "+":
            # a chain a + b + c (left-associative) reads as sq.add(a, b, c)
            chain = [node.right]
            head: ast.Node = node.left
            while isinstance(head, ast.Binary) and head.op == "+" \
                    and self.res.refs.get(id(head)) is None:
                chain.append(head.right)
                head = head.left
            chain.append(head)
            chain.reverse()
            if isinstance(chain[0], ast.String):
                return self.concatenation(chain)
            return "sq.add(" + ", ".join(self.expr(item) for item in chain) + ")"
        left = self.expr(node.left)
        right = self.expr(node.right)
        if op in _ARITH:
            return f"sq.{_ARITH[op]}({left}, {right})"
        if op in _COMPARE:
            return f"sq.{_COMPARE[op]}({left}, {right})"
        if op in ("==", "!="):
            kinds = {self._static_type(node.left), self._static_type(node.right)}
            if isinstance(node.left, _FOLDABLE) and isinstance(node.right, _FOLDABLE):
                same = sq.eq(literal_value(node.left), literal_value(node.right))
                return py_literal(same if op == "==" else not same)
            if "null" in kinds:
                word = "is" if op == "==" else "is not"
                return f"({left} {word} {right})"
            if kinds & {"string", "number"}:
                return f"({left} {op} {right})"
            return f"sq.{'eq' if op == '==' else 'ne'}({left}, {right})"
        if op == "in":
            return f"sq.has({left}, {right})"
        if op == "instanceof":
            return f"sq.instanceof({left}, {right})"
        self.unsupported(node, f"operator {op}")
        return ""

    def concatenation(self, chain: list[ast.Node]) -> str:
        """``"text" + a + b``: from a string on, ``+`` only concatenates, so the chain is an
        f-string of the items' Squirrel text (``sq.tostring``)."""
        parts: list[tuple[str, str]] = []
        for item in chain:
            if isinstance(item, ast.String):
                parts.append(("s", item.value))
            else:
                parts.append(("e", self.expr(item)))
        codes = "".join(text for kind, text in parts if kind == "e")
        quote = next((q for q in ('"', "'") if q not in codes), None)
        if quote is None or any(c in codes for c in "\\{}\n"):
            # Python 3.11's f-strings take no backslash, brace or the quote inside {}
            return "sq.add(" + ", ".join(text if kind == "e" else py_string(text)
                                         for kind, text in parts) + ")"
        body = []
        for kind, text in parts:
            if kind == "s":
                body.append(_fstring_text(text, quote))
            else:
                body.append("{sq.tostring(" + text + ")}")
        return "f" + quote + "".join(body) + quote

    def table(self, node: ast.TableLiteral) -> str:
        if not node.slots:
            return "sq.Table()"
        own_this = any(isinstance(slot.value, ast.FunctionExpr)
                       and self.res.funcs[id(slot.value)].table is node
                       and self._uses_this(slot.value) for slot in node.slots)
        if own_this:
            # its functions read `this`/its slots: the table exists (empty) before they do
            name = self.fresh("_table")
            self.table_names[id(node)] = name
            self.line(f"{name} = sq.Table()", node.line)
        parts = []
        for slot in node.slots:
            key = self.expr(slot.key) if slot.computed or not isinstance(slot.key, ast.String) \
                else py_string(slot.key.value)
            hint = slot.key.value if isinstance(slot.key, ast.String) else None
            if isinstance(slot.value, ast.FunctionExpr):
                value = self.function_value(slot.value, hint)
            else:
                value = self.expr(slot.value)
            parts.append(f"{key}: {value}")
        if own_this:
            return f"sq.fill({self.table_names[id(node)]}, {{" + ", ".join(parts) + "})"
        return "sq.Table({" + ", ".join(parts) + "})"

    def _uses_environment(self, function: ast.FunctionExpr) -> bool:
        """``function`` reads ``this``, a member or a table slot through its environment."""
        for inner in ast.walk(function.body):
            if isinstance(inner, ast.This):
                return True
            ref = self.res.refs.get(id(inner))
            if ref is not None and ref.kind in ("member", "slot"):
                return True
        return False

    def _uses_this(self, function: ast.FunctionExpr) -> bool:
        """``function`` (or a function inside it) reads ``this`` or a slot of its table."""
        for inner in ast.walk(function.body):
            if isinstance(inner, ast.This):
                return True
            ref = self.res.refs.get(id(inner))
            if ref is not None and ref.kind == "slot":
                return True
        return False


__all__ = ["ExprMixin", "literal_value", "py_literal", "py_string"]
