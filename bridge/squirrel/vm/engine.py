"""`SquirrelVM`: one embedded Squirrel 3 VM per agent, its natives and its error reporting.

The VM is only touched by one thread at a time: the top level runs on the thread that calls
`load` (before dispatching starts), every callback on the agent's dispatcher (`invoke` checks
and raises if two threads ever overlap). Squirrel errors that nothing caught come back as
`SquirrelRuntimeError` naming the ``.nut`` file and line (the prelude's error handler records
the frames with ``getstackinfos``); compile errors as `SquirrelCompileError` with line and
column (the VM's own compiler, asked again in a subprocess, because the binding reports the
position only on the C++ stderr).
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import squirrel

from bridge.squirrel.errors import SquirrelSyntaxError
from bridge.squirrel.parser import declared_constants, parse
from bridge.squirrel.vm.errors import Frame, SquirrelCompileError, SquirrelRuntimeError
from bridge.squirrel.vm.natives import Natives
from bridge.squirrel.vm.prelude import PRELUDE, PRELUDE_NAME, REMOVED_GLOBALS

if TYPE_CHECKING:
    from bridge.agent import Agent
    from bridge.impenv import ImpEnv

agent_log = logging.getLogger("bridge.agent")

INITIAL_STACK = 128
_INTERNAL_SOURCES = frozenset({PRELUDE_NAME, "bridge-value", "__main__"})

_COMPILE_PROBE = (
    "import sys, squirrel\n"
    "source = sys.stdin.buffer.read().decode('utf-8')\n"
    "try:\n    squirrel.compile(source, sys.argv[1])\n"
    "except Exception:\n    pass\n")


class AgentExit(Exception):
    """Squirrel code called ``agent.exit(status)``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class SquirrelVM:
    """The VM of one agent, with the imp globals bound to *agent* and *env*."""

    def __init__(self, agent: Agent, env: ImpEnv) -> None:
        self.agent = agent
        # A small initial stack (the VM grows it on demand): 1,024 slots cost 16 KiB per agent.
        self._vm: Any = squirrel.SQVM(INITIAL_STACK)
        self._last_error: tuple[str, str] | None = None
        self._owner: int | None = None  # the thread inside the VM now, if any
        self._depth = 0
        self.exit_status: int | None = None
        self.files: list[str] = []
        self.natives = Natives(self, agent, env)
        root = self._vm.get_roottable()
        natives = self.natives.table()
        natives["onerror"] = self._record_error

        def dispatch(name: str, *args: Any) -> Any:
            return natives[name](*args)
        self._vm.bindfunc("__b", dispatch)
        self._vm.execute("local r = getroottable(); foreach (name in ["
                         + ",".join(f'"{n}"' for n in REMOVED_GLOBALS)
                         + "]) if (name in r) delete r[name];")
        self._run_source(PRELUDE, PRELUDE_NAME)
        self._deliver = root["__deliver"]
        self._lit = root["__r"]
        self._compile = self._vm.execute(
            "return function(src, name) { return compilestring(src, name); }")

    # -- errors ---------------------------------------------------------------------------------
    def _record_error(self, text: Any, frames: Any) -> None:
        self._last_error = (str(text), str(frames))

    def _runtime_error(self, exc: BaseException) -> SquirrelRuntimeError:
        recorded, self._last_error = self._last_error, None
        message = str(exc)
        frames: list[Frame] = []
        if recorded is not None:
            message = recorded[0]
            parts = recorded[1].split("\n")
            for i in range(0, len(parts) - 2, 3):
                src, line, func = parts[i], parts[i + 1], parts[i + 2]
                if src in _INTERNAL_SOURCES:
                    continue
                frames.append(Frame(src, int(line) if line.lstrip("-").isdigit() else 0,
                                    func or "(anonymous)"))
        if frames:
            top = frames[0]
            return SquirrelRuntimeError(top.file, top.line, message, tuple(frames))
        where = self.files[-1] if self.files else "<squirrel>"
        return SquirrelRuntimeError(where, 0, message)

    # -- entering the VM ------------------------------------------------------------------------
    def _enter(self) -> None:
        me = threading.get_ident()
        if self._depth and self._owner != me:
            raise RuntimeError("the agent's Squirrel VM was entered by two threads at once "
                               "(only its dispatcher may run Squirrel code)")
        self._owner = me
        self._depth += 1

    def _leave(self) -> None:
        self._depth -= 1
        if not self._depth:
            self._owner = None

    def call(self, fn: Any, *args: Any) -> Any:
        """Call a Squirrel function; a Squirrel error raises `SquirrelRuntimeError`, a call of
        ``agent.exit`` raises `AgentExit`."""
        self._enter()
        try:
            result = fn(*args)
        except RuntimeError as exc:
            self._raise_abort()
            if self.exit_status is not None:
                raise AgentExit(self.exit_status) from None
            raise self._runtime_error(exc) from None
        finally:
            self._leave()
            if self.natives.pending is not None and self._depth == 0:
                self.natives.pending = None
        self._raise_abort()  # Squirrel code caught the throw: the interruption still holds
        return result

    def _raise_abort(self) -> None:
        """A KeyboardInterrupt (or SIGTERM) that arrived inside a native: the natives turned
        it into a Squirrel throw to unwind the VM; raise it now, outside."""
        abort = self.natives.abort
        if abort is not None and self._depth <= 1:
            self.natives.abort = None
            raise abort

    def invoke(self, fn: Any, *args: Any) -> None:
        """Run a Squirrel callback as the dispatcher does for a Python one: an uncaught error is
        logged (``file:line: message`` and the frames) and does not stop the agent;
        ``agent.exit(n)`` ends the run with status *n* (SystemExit, as in a Python script)."""
        try:
            self.call(fn, *args)
        except SquirrelRuntimeError as exc:
            agent_log.error("Squirrel callback failed: %s", exc.traceback())
        except AgentExit as exc:
            raise SystemExit(exc.status) from None

    def callback(self, fn: Any) -> Callable[..., None] | None:
        """A Python callable for the contract that runs Squirrel function *fn* (None: None)."""
        if fn is None:
            return None
        if not callable(fn):
            raise TypeError(f"callback must be a function, got {type(fn).__name__}")
        invoke = self.invoke

        def run(*args: Any) -> None:
            invoke(fn, *args)
        return run

    def message_callback(self, fn: Any) -> Callable[[list[Any]], None] | None:
        if fn is None:
            return None
        if not callable(fn):
            raise TypeError(f"messageCallback must be a function, got {type(fn).__name__}")
        invoke, deliver = self.invoke, self._deliver

        def run(deliveries: list[Any]) -> None:
            invoke(deliver, fn, deliveries, len(deliveries))
        return run

    def value(self, python_value: Any) -> Any:
        """A Python value as a Squirrel one (a table for a dict ...), to pass to a callback."""
        from bridge.squirrel.vm.values import to_squirrel
        return self.call(self._lit, to_squirrel(python_value))

    # -- loading code -----------------------------------------------------------------------------
    def _run_source(self, source: str, name: str) -> None:
        self._vm.execute_bytecode(squirrel.compile(source, name))

    def load(self, files: Sequence[tuple[str, str]]) -> None:
        """Compile and run each ``(name, source)`` in order (required libraries first, the
        agent last), in this VM's root table."""
        constants: frozenset[str] = frozenset()
        for index, (name, source) in enumerate(files):
            constants = check_syntax(name, source, constants)
            self._enter()
            try:
                closure = self._compile(source, name)
            except RuntimeError as exc:
                self._last_error = None
                raise compile_error(files[: index + 1], str(exc)) from None
            finally:
                self._leave()
            self.files.append(name)
            self.call(closure)

    # -- teardown ------------------------------------------------------------------------------
    def release(self) -> None:
        """Drop everything the VM holds (its root table's slots, the natives): the binding
        keeps a VM alive for as long as a native is bound in it, so without this a closed
        agent's VM and every Python object it reached would never be freed."""
        vm, self._vm = self._vm, None
        if vm is None:
            return
        self._deliver = self._lit = self._compile = None
        vm.execute("seterrorhandler(null); local r = getroottable(); local names = [];"
                   "foreach (k, v in r) names.append(k);"
                   "foreach (k in names) delete r[k];")
        vm.collectgarbage()
        self.natives.release()


@functools.lru_cache(maxsize=64)
def check_syntax(name: str, source: str, constants: frozenset[str]) -> frozenset[str]:
    """Parse *source* with the bridge's parser before the VM's compiler sees it; the constants
    declared so far (for the next file). The 3.0.5 compiler crashes the process (SIGSEGV) on
    some invalid input; the parser is checked against that compiler (a fuzz test: no
    disagreement on what compiles) and names the file, line and column. Cached: a fleet loads
    the same sources once per device."""
    try:
        program = parse(source, name, constants=constants)
    except SquirrelSyntaxError as exc:
        construct = f" (in {exc.construct})" if exc.construct else ""
        raise SquirrelCompileError(exc.file, exc.line, exc.column, exc.message + construct) \
            from None
    return constants | frozenset(declared_constants(program))


def compile_error(files: Sequence[tuple[str, str]], message: str) -> SquirrelCompileError:
    """Where the last of *files* fails to compile: its predecessors are compiled with it (their
    ``const`` / ``enum`` declarations are part of the compile) and the line mapped back."""
    name = files[-1][0]
    starts: list[tuple[int, str]] = []
    text_parts: list[str] = []
    line = 1
    for part_name, source in files:
        starts.append((line, part_name))
        text_parts.append(source if source.endswith("\n") else source + "\n")
        line += text_parts[-1].count("\n")
    try:
        done = subprocess.run([sys.executable, "-c", _COMPILE_PROBE, name],
                              input="".join(text_parts).encode("utf-8"), capture_output=True,
                              timeout=60, check=False)
        report = dict(part.split(":", 1) for part in done.stderr.decode("utf-8", "replace")
                      .splitlines() if ":" in part)
        at, column = int(report["line"]), int(report["column"])
        message = report.get("desc", message)
    except (OSError, subprocess.SubprocessError, KeyError, ValueError):
        return SquirrelCompileError(name, 1, None, message)
    first, part_name = starts[0]
    for start, candidate in starts:
        if start <= at:
            first, part_name = start, candidate
    return SquirrelCompileError(part_name, at - first + 1, column, message)


def read_sources(paths: Sequence[Path]) -> list[tuple[str, str]]:
    return [(str(path), path.read_text(encoding="utf-8")) for path in paths]
