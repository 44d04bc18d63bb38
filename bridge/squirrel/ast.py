"""The Squirrel 3 syntax tree: one dataclass per construct, each with the ``line`` and ``column``
of the token that starts it (for a binary operation, assignment or call: of its operator).

Every node is a plain, mutable dataclass so passes (scan, the translator) can walk it with
:func:`walk` or by matching on the class. Expressions and statements share the ``Node`` base.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass, field, fields

from bridge.squirrel.tokens import Comment


@dataclass(slots=True)
class Node:
    _: KW_ONLY
    line: int = 0
    column: int = 0


# --- expressions --------------------------------------------------------------------------------

@dataclass(slots=True)
class Integer(Node):
    value: int  # already wrapped to signed 32 bits, as the VM stores it


@dataclass(slots=True)
class Float(Node):
    value: float


@dataclass(slots=True)
class String(Node):
    value: str
    verbatim: bool = False


@dataclass(slots=True)
class Bool(Node):
    value: bool


@dataclass(slots=True)
class Null(Node):
    pass


@dataclass(slots=True)
class Identifier(Node):
    """A bare name, resolved as the 3.0.5 compiler resolves it, in this order: ``scope`` is
    ``"local"`` (a local or parameter of the enclosing function), ``"outer"`` (a local of an
    enclosing function: a closure variable, readable and assignable), ``"const"`` (a ``const``
    or ``enum`` declared earlier in the file), or ``""``: looked up at run time in ``this``
    (so ``member = x`` in a method writes the instance slot), then in the root table."""

    name: str
    scope: str = ""


@dataclass(slots=True)
class This(Node):
    pass


@dataclass(slots=True)
class Base(Node):
    """``base``: the base class of the method's class."""


@dataclass(slots=True)
class RootAccess(Node):
    """``::name``: a slot of the root table."""

    name: str


@dataclass(slots=True)
class Member(Node):
    """``obj.name``."""

    obj: Node
    name: str


@dataclass(slots=True)
class Index(Node):
    """``obj[key]``."""

    obj: Node
    key: Node


@dataclass(slots=True)
class Call(Node):
    callee: Node
    args: list[Node]


@dataclass(slots=True)
class Unary(Node):
    """``op`` is one of ``-``, ``!``, ``~``, ``typeof``, ``clone``, ``resume``."""

    op: str
    operand: Node


@dataclass(slots=True)
class IncDec(Node):
    """``++x``/``--x`` (``prefix``) or ``x++``/``x--``."""

    op: str
    prefix: bool
    target: Node


@dataclass(slots=True)
class Binary(Node):
    """Arithmetic, bitwise, comparison (incl. ``<=>``), ``&&``, ``||``, ``in``, ``instanceof``."""

    op: str
    left: Node
    right: Node


@dataclass(slots=True)
class Assign(Node):
    """``op``: ``=``, ``<-`` (new slot) or compound (``+=``, ``-=``, ``*=``, ``/=``, ``%=``)."""

    op: str
    target: Node
    value: Node


@dataclass(slots=True)
class Conditional(Node):
    test: Node
    then: Node
    otherwise: Node


@dataclass(slots=True)
class Comma(Node):
    """``a, b, c``: evaluates all, the value is the last."""

    items: list[Node]


@dataclass(slots=True)
class ArrayLiteral(Node):
    items: list[Node]


@dataclass(slots=True)
class TableSlot(Node):
    """One slot of a table literal or class body. ``computed``: written ``[key] = value``
    (otherwise ``key`` is the String of a name, ``"json": value`` or ``function name()``)."""

    key: Node
    value: Node
    computed: bool = False


@dataclass(slots=True)
class TableLiteral(Node):
    slots: list[TableSlot]


@dataclass(slots=True)
class Param(Node):
    name: str
    default: Node | None = None


@dataclass(slots=True)
class FunctionExpr(Node):
    """A function: ``function name(...) {…}``, ``function (…) {…}`` or a lambda ``@(…) expr``.

    ``varargs``: the parameter list ends with ``...`` (extra arguments land in ``vargv``).
    ``body``: a Block (or another statement) — for a lambda, the expression whose value it returns.
    """

    name: str | None
    params: list[Param]
    varargs: bool
    body: Node
    is_lambda: bool = False


@dataclass(slots=True)
class ClassMember(Node):
    """A class body entry. ``kind``: ``field``, ``method`` or ``constructor``; ``key`` as for
    TableSlot; ``attributes``: the ``</ … />`` before it, parsed and otherwise ignored."""

    kind: str
    key: Node
    value: Node
    static: bool = False
    computed: bool = False
    attributes: TableLiteral | None = None


@dataclass(slots=True)
class ClassExpr(Node):
    name: str | None
    base: Node | None
    members: list[ClassMember]
    attributes: TableLiteral | None = None


@dataclass(slots=True)
class Delete(Node):
    """``delete obj.slot`` / ``delete obj[key]`` / ``delete ::name``: the value is the slot's."""

    target: Node


# --- statements ---------------------------------------------------------------------------------

@dataclass(slots=True)
class ExprStatement(Node):
    expr: Node


@dataclass(slots=True)
class Empty(Node):
    """A lone ``;``."""


@dataclass(slots=True)
class Block(Node):
    body: list[Node]


@dataclass(slots=True)
class LocalVar(Node):
    name: str
    value: Node | None = None


@dataclass(slots=True)
class LocalDecl(Node):
    """``local a = 1, b``."""

    names: list[LocalVar]


@dataclass(slots=True)
class LocalFunction(Node):
    """``local function name(…) {…}``. As in Squirrel 3.0.5 the local is declared *after* the
    body is compiled: inside its own body ``name`` is not this local (it resolves through
    ``this`` / the root table), so ``local function f() { f() }`` fails at run time with
    "the index 'f' does not exist" unless such a slot exists."""

    name: str
    function: FunctionExpr


@dataclass(slots=True)
class FunctionDecl(Node):
    """``function name(…) {…}`` or ``function A::B::name(…) {…}``: a new slot ``path[-1]`` of
    ``this`` (or of the object that ``path[:-1]`` names)."""

    path: list[str]
    function: FunctionExpr


@dataclass(slots=True)
class ClassDecl(Node):
    """``class Name …`` / ``class Outer.Inner …``: a new slot named by ``target``."""

    target: Node
    cls: ClassExpr


@dataclass(slots=True)
class EnumMember(Node):
    name: str
    value: Node  # explicit, or the VM's counter: implicit members count 0, 1, … on their own


@dataclass(slots=True)
class EnumDecl(Node):
    name: str
    members: list[EnumMember]


@dataclass(slots=True)
class ConstDecl(Node):
    name: str
    value: Node


@dataclass(slots=True)
class If(Node):
    test: Node
    then: Node
    otherwise: Node | None = None


@dataclass(slots=True)
class While(Node):
    test: Node
    body: Node


@dataclass(slots=True)
class DoWhile(Node):
    body: Node
    test: Node


@dataclass(slots=True)
class For(Node):
    """``for (init; test; update) body``: ``init`` a LocalDecl or an expression; each optional."""

    init: Node | None
    test: Node | None
    update: Node | None
    body: Node


@dataclass(slots=True)
class Foreach(Node):
    """``foreach (key, value in iterable)`` (``key`` None for ``foreach (value in iterable)``)."""

    key: str | None
    value: str
    iterable: Node
    body: Node


@dataclass(slots=True)
class SwitchCase(Node):
    """``case test:`` (``test`` None for ``default:``); falls through unless ``body`` breaks."""

    test: Node | None
    body: list[Node]


@dataclass(slots=True)
class Switch(Node):
    subject: Node
    cases: list[SwitchCase]


@dataclass(slots=True)
class Break(Node):
    pass


@dataclass(slots=True)
class Continue(Node):
    pass


@dataclass(slots=True)
class Return(Node):
    value: Node | None = None


@dataclass(slots=True)
class Yield(Node):
    value: Node | None = None


@dataclass(slots=True)
class Throw(Node):
    value: Node


@dataclass(slots=True)
class Try(Node):
    body: Node
    catch_name: str
    handler: Node


@dataclass(slots=True)
class Program(Node):
    """A whole file: its statements, its comments (for the translator) and its name."""

    body: list[Node]
    file: str = "<string>"
    comments: list[Comment] = field(default_factory=list)


_CHILD_FIELDS: dict[type[Node], tuple[str, ...]] = {}


def _child_fields(cls: type[Node]) -> tuple[str, ...]:
    names = _CHILD_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls)
                      if f.name not in ("line", "column", "comments", "_"))
        _CHILD_FIELDS[cls] = names
    return names


def children(node: Node) -> Iterator[Node]:
    """The direct child nodes of ``node``, in source order."""
    for name in _child_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Node):
                    yield item


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it, depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))
