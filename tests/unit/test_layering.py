"""The house's seams, checked from the source: no import circles, a contract that imports no
other bridge package, backends that never import each other, and commands that do not load
what they do not use (proton, the IoT Hub stand-in)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bridge"
BACKENDS = ("memory", "mqtt", "amqp", "iothub")
CONTRACT_MAY_IMPORT = ("bridge.contract", "bridge.errors", "bridge.events")


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """module -> the bridge modules it imports (every import: top level, in functions and
    under TYPE_CHECKING, each ties two files together for a reader)."""
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        base = name.split(".") if is_package else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:
                    stem = base[: len(base) - node.level + 1]
                    module = ".".join([*stem, *([module] if module else [])])
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in files else module
                           for a in node.names]
            for target in targets:
                parts = target.split(".")
                for i in range(len(parts), 0, -1):
                    candidate = ".".join(parts[:i])
                    if candidate in files and candidate != name:
                        # a package's __init__ importing its own modules is its face
                        if not (is_package and candidate.startswith(name + ".")):
                            found.add(candidate)
                        break
        graph[name] = found
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A path of imports from *start* to *goal*, or None."""
    seen = {start}
    stack = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == goal:
                return [*path, nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    circles = []
    for module, imported in graph.items():
        for other in imported:
            back = _reaches(graph, other, module)
            if back is not None:
                circles.append(" -> ".join([module, *back]))
    assert circles == []


def test_the_contract_imports_no_other_bridge_package() -> None:
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() if m.startswith("bridge.contract")
                 for d in deps if not d.startswith(CONTRACT_MAY_IMPORT))
    assert bad == []


def test_no_backend_imports_another() -> None:
    bad = []
    for module, deps in _graph().items():
        own = module.split(".")
        if len(own) < 3 or own[1] != "backends" or own[2] not in BACKENDS:
            continue
        for dep in deps:
            other = dep.split(".")
            if len(other) > 2 and other[1] == "backends" and other[2] in BACKENDS \
                    and other[2] != own[2]:
                bad.append(f"{module} -> {dep}")
    assert bad == []


_PROBE = """
import io, json, sys, contextlib
sys.argv = ["bridge", *json.loads(sys.argv[1])]
from bridge.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
loaded = sorted({m.split(".")[0] if not m.startswith("bridge.") else ".".join(m.split(".")[:2])
                 for m in sys.modules if m.startswith(("proton", "bridge.testing", "paho"))})
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("argv", [["--help"], ["config"], ["backends"]],
                         ids=["help", "config", "backends"])
def test_light_commands_load_neither_proton_nor_the_stand_in(argv: list[str],
                                                             tmp_path: Path) -> None:
    loaded = _loaded_by(argv, tmp_path)
    assert loaded == []


def test_run_on_the_memory_backend_loads_neither_proton_nor_the_stand_in(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text("conn = amqp.openconnection('amqps://x.example', lambda e, d: "
                      "agent.stop() if e == 'CONNECTION_OPEN' else None)\n")
    loaded = _loaded_by(["--backend", "memory", "run", "--timeout", "5", str(script)], tmp_path)
    assert loaded == []


def _loaded_by(argv: list[str], cwd: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], cwd=cwd,
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PACKAGE.parent)})
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))
