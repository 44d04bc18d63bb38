"""``bridge port``'s engine: Squirrel files (and the libraries they ``#require``) to Python.

- `translate_file(path, require_paths)`: the agent and its libraries, resolved by
  `bridge.squirrel.requires`, translated in dependency order into one module.
- `translate_source(source, file)`: one source text (its ``#require`` lines resolved against
  ``require_paths`` if any).
- `cached_translate_file`: the same, cached in memory by the content hash of every file involved
  (``bridge run agent.nut`` translating in memory).
- `compile_translation` / `nut_traceback`: run the result, and report a failure by the ``.nut``
  lines rather than the generated Python's.
"""

from __future__ import annotations

import hashlib
import threading
import traceback
import types
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from bridge.squirrel import ast
from bridge.squirrel.parser import parse
from bridge.squirrel.requires import find_requires, resolve_all, resolve_require
from bridge.squirrel.translate import Translation, translate_programs

# Bump when the generated code changes shape, so cached translations are not reused.
TRANSLATOR_VERSION = "1"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def translate_file(path: Path, require_paths: Sequence[Path] = ()) -> Translation:
    """``path`` and every library it requires (transitively) as one Python module.

    Raises RequireError (an unresolved or cyclic ``#require``), SquirrelSyntaxError or
    UnsupportedConstructError, each naming file:line:column.
    """
    files = resolve_all(Path(path), list(require_paths))
    return translate_programs([parse(_read(f), str(f)) for f in files])


def translate_source(source: str, file: str = "<string>",
                     require_paths: Sequence[Path] = ()) -> Translation:
    """One Squirrel source text (named ``file`` in errors and the line map)."""
    programs: list[ast.Program] = []
    seen: set[Path] = set()
    for req in find_requires(source, file):
        for lib in resolve_all(resolve_require(req, list(require_paths)), list(require_paths)):
            if lib.resolve() not in seen:
                seen.add(lib.resolve())
                programs.append(parse(_read(lib), str(lib)))
    programs.append(parse(source, file))
    return translate_programs(programs)


class TranslationCache:
    """Translations kept in memory by the SHA-256 of the sources (and the translator version);
    bounded, thread-safe."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, Translation] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(files: Sequence[Path]) -> str:
        digest = hashlib.sha256(TRANSLATOR_VERSION.encode())
        for file in files:
            digest.update(str(file).encode() + b"\0" + Path(file).read_bytes() + b"\0")
        return digest.hexdigest()

    def translate_file(self, path: Path, require_paths: Sequence[Path] = ()) -> Translation:
        files = resolve_all(Path(path), list(require_paths))
        key = self.key(files)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
        translation = translate_programs([parse(_read(f), str(f)) for f in files])
        with self._lock:
            self.misses += 1
            self._items[key] = translation
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return translation


_CACHE = TranslationCache()


def cached_translate_file(path: Path, require_paths: Sequence[Path] = ()) -> Translation:
    """`translate_file`, cached by content hash (a fleet translates an agent once)."""
    return _CACHE.translate_file(path, require_paths)


def compile_translation(translation: Translation, filename: str) -> types.CodeType:
    """The code object of the generated module (``filename`` is what its frames are named)."""
    return compile(translation.python, filename, "exec", dont_inherit=True)


def nut_traceback(exc: BaseException, translation: Translation, filename: str) -> str:
    """A traceback for ``exc`` whose frames in the generated code name the ``.nut`` file and
    line they were translated from (other frames, e.g. the bridge's, as Python prints them)."""
    lines = ["Traceback (most recent call last):\n"]
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename and frame.lineno is not None:
            where = translation.nut_location(frame.lineno)
            if where is not None:
                lines.append(f'  File "{where[0]}", line {where[1]}, in {frame.name}\n')
                source = _nut_line(*where)
                if source:
                    lines.append(f"    {source}\n")
                continue
        lines.extend(traceback.format_list([frame]))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def _nut_line(file: str, line: int) -> str:
    try:
        return Path(file).read_text(encoding="utf-8").splitlines()[line - 1].strip()
    except (OSError, IndexError):
        return ""


__all__ = ["TRANSLATOR_VERSION", "Translation", "TranslationCache", "cached_translate_file",
           "compile_translation", "nut_traceback", "translate_file", "translate_source"]
