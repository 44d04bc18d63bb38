"""``server.save(table)`` / ``server.load()``: an agent's persistent table in a local file.

imp kept one table per agent across restarts; here it is a JSON file (path configurable), so
the same rules as ``http.jsonencode`` apply to what can be saved (imp: only serialisable data,
at most 64 KB: the same limit is kept). Writes are atomic: a temporary file in the same
folder, flushed and fsynced, then renamed over the old one, so a crash leaves the previous
table or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.impenv.jsoncodec import jsondecode, jsonencode

MAX_BYTES = 64 * 1024


class Storage:
    """One agent's saved table at *path* (``None``: kept in memory only, lost at exit)."""

    __slots__ = ("_memory", "path")

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._memory = "{}"

    def save(self, table: Mapping[str, Any]) -> int:
        """Replace the saved table; returns 0 as imp did (an error is raised, not returned)."""
        if not isinstance(table, Mapping):
            raise TypeError(f"server.save: expected a table, got {type(table).__name__}")
        text = jsonencode(table, {"compact": True})
        if len(text.encode("utf-8")) > MAX_BYTES:
            raise ValueError(f"server.save: the table encodes to more than {MAX_BYTES} bytes")
        if self.path is None:
            self._memory = text
            return 0
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return 0

    def load(self) -> Any:
        """The saved table (``{}`` when nothing was saved yet)."""
        if self.path is None:
            return jsondecode(self._memory)
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"server.load: {self.path} is not a saved table ({exc.msg} at "
                             f"line {exc.lineno})") from None
        return jsondecode(text) if isinstance(data, dict) else {}

