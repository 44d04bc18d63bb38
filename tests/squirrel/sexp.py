"""A compact s-expression rendering of expression trees, for readable parser test tables."""

from __future__ import annotations

from bridge.squirrel import ast


def sx(node: ast.Node | None) -> str:
    match node:
        case None:
            return "_"
        case ast.Integer(value=v) | ast.Float(value=v):
            return repr(v)
        case ast.String(value=v):
            return repr(v)
        case ast.Bool(value=v):
            return "true" if v else "false"
        case ast.Null():
            return "null"
        case ast.Identifier(name=n):
            return n
        case ast.This():
            return "this"
        case ast.Base():
            return "base"
        case ast.RootAccess(name=n):
            return "::" + n
        case ast.Member(obj=o, name=n):
            return f"(. {sx(o)} {n})"
        case ast.Index(obj=o, key=k):
            return f"([] {sx(o)} {sx(k)})"
        case ast.Call(callee=f, args=a):
            return "(call " + " ".join([sx(f), *map(sx, a)]) + ")"
        case ast.Unary(op=op, operand=x):
            return f"({op} {sx(x)})"
        case ast.IncDec(op=op, prefix=True, target=x):
            return f"({op}pre {sx(x)})"
        case ast.IncDec(op=op, target=x):
            return f"(post{op} {sx(x)})"
        case ast.Binary(op=op, left=a, right=b):
            return f"({op} {sx(a)} {sx(b)})"
        case ast.Assign(op=op, target=a, value=b):
            return f"({op} {sx(a)} {sx(b)})"
        case ast.Conditional(test=a, then=b, otherwise=c):
            return f"(? {sx(a)} {sx(b)} {sx(c)})"
        case ast.Comma(items=items):
            return "(, " + " ".join(map(sx, items)) + ")"
        case ast.ArrayLiteral(items=items):
            return "[" + " ".join(map(sx, items)) + "]"
        case ast.TableLiteral(slots=slots):
            return "{" + " ".join(f"{'[' + sx(s.key) + ']' if s.computed else sx(s.key)}="
                                  f"{sx(s.value)}" for s in slots) + "}"
        case ast.Delete(target=t):
            return f"(delete {sx(t)})"
        case ast.FunctionExpr(params=ps, varargs=va, body=b, is_lambda=lam):
            names = [p.name + ("=" + sx(p.default) if p.default else "") for p in ps]
            names += ["..."] if va else []
            return f"({'lambda' if lam else 'function'} ({' '.join(names)}) {sx(b)})"
        case ast.ClassExpr(base=b, members=m):
            return f"(class {sx(b)} {len(m)})"
        case ast.Return(value=v):
            return f"(return {sx(v)})"
        case ast.Block(body=b):
            return "{" + "; ".join(map(sx, b)) + "}"
        case ast.ExprStatement(expr=e):
            return sx(e)
    return type(node).__name__
