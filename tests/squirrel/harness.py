"""Run translated Squirrel the way the oracle runs the VM: output lines, then ``ERROR: message``
for an uncaught throw."""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

from bridge.squirrel import runtime as sq
from bridge.squirrel.port import compile_translation, translate_source
from bridge.squirrel.translate import Translation


def _text(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return sq.print_text(value)


def run_translated(source: str, file: str = "program.nut",
                   namespace: dict[str, Any] | None = None) -> tuple[str, Translation]:
    """(output, translation) of ``source`` translated and executed."""
    translation = translate_source(source, file)
    code = compile_translation(translation, file + ".py")
    out: list[str] = []
    env: dict[str, Any] = dict(namespace or {})

    def printer(value: Any = None) -> None:
        out.append(_text(value))

    buffer = io.StringIO()
    original = sq.print
    try:
        sq.print = printer  # type: ignore[assignment]
        with contextlib.redirect_stdout(buffer):
            exec(code, env)
    except sq.SquirrelError as exc:
        out.append("ERROR: " + str(exc))
    except Exception as exc:  # a Python error is a runtime error in Squirrel's terms
        out.append("ERROR: " + str(sq.caught(exc)))
    finally:
        sq.print = original  # type: ignore[assignment]
    return "\n".join(out), translation
