"""Errors of Squirrel code on the embedded VM, named by ``.nut`` file and line."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.squirrel.errors import SquirrelError


@dataclass(frozen=True, slots=True)
class Frame:
    """One Squirrel call frame: the source file, the line, the function name."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


class SquirrelCompileError(SquirrelError):
    """The VM's compiler refused a file: ``file:line:column: message``."""


class SquirrelRuntimeError(SquirrelError):
    """Squirrel code threw and nothing caught it: ``file:line: message`` plus the call frames,
    innermost first (`traceback` prints them)."""

    def __init__(self, file: str, line: int, message: str, frames: tuple[Frame, ...] = ()) -> None:
        self.frames = frames
        super().__init__(file, line, None, message)

    def traceback(self) -> str:
        lines = [str(self)]
        lines += [f"    at {frame}" for frame in self.frames]
        return "\n".join(lines)


class VMMissingError(ImportError):
    """The ``squirrel`` package (the embedded VM) is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the embedded Squirrel VM is not installed: pip install 'amqp-mqtt-bridge[squirrel]' "
            "(the squirrel-lang-sq305 package), or run with --engine translate")
