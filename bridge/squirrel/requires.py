"""``#require`` directives: finding them in a source file and resolving them to library files.

imp's build step (not the Squirrel VM, to which ``#`` starts a comment) replaces a line such as::

    #require "AzureIoTHub.agent.lib.nut:5.1.0"

with the named library. The bridge resolves the same line against local directories given with
``--require-path`` (in the order given). **Lookup rule**, for ``#require "NAME:VERSION"``, each
directory ``DIR`` is tried in order, and within it these candidates in order; the first existing
file wins:

1. ``DIR/NAME@VERSION``        e.g. ``libs/AzureIoTHub.agent.lib.nut@5.1.0``
2. ``DIR/NAME/VERSION/NAME``   e.g. ``libs/Promise.lib.nut/4.0.0/Promise.lib.nut``
3. ``DIR/NAME``                e.g. ``libs/AzureIoTHub.agent.lib.nut`` (an unversioned checkout)

**Version rule**: candidates 1 and 2 match only the exact version text (imp pins exact versions;
no ranges). Candidate 3 is accepted for any version unless the file declares its own version in
the imp convention ``static VERSION = "x.y.z"``; then that version must equal the required one, or
the directive is an error (a different library version silently changes behaviour). A directive
without ``:VERSION`` accepts candidate 3 only. The requiring file's own directory is *not*
searched: only the directories given, so a build is reproducible from its arguments.

Everything here is a pure function of its arguments and the file system; nothing is executed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.squirrel.errors import RequireError

# The directive must start its line (leading blanks allowed), like imp's preprocessor wants it;
# a trailing // comment is tolerated.
_DIRECTIVE = re.compile(r"^[ \t]*#require\b(?P<rest>.*)$")
_ARGUMENT = re.compile(r'^[ \t]+"(?P<spec>[^"]*)"[ \t]*(?://.*)?$')
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-+]*$")
_DECLARED_VERSION = re.compile(r"""\bstatic\s+VERSION\s*=\s*"([^"]+)\"""")


@dataclass(frozen=True)
class Require:
    """One ``#require "NAME:VERSION"`` line: ``version`` is None when the line gives none."""

    name: str
    version: str | None
    file: str
    line: int

    @property
    def spec(self) -> str:
        """The directive's argument as written: ``NAME:VERSION`` or ``NAME``."""
        return self.name if self.version is None else f"{self.name}:{self.version}"


def find_requires(source: str, file: str) -> list[Require]:
    """Every ``#require`` directive of ``source`` in order; a malformed one raises RequireError."""
    found: list[Require] = []
    for number, text in enumerate(source.splitlines(), start=1):
        directive = _DIRECTIVE.match(text)
        if directive is None:
            continue
        argument = _ARGUMENT.match(directive.group("rest"))
        if argument is None:
            raise RequireError(file, number,
                               'malformed #require: expected #require "NAME:VERSION"')
        spec = argument.group("spec")
        name, sep, version = spec.partition(":")
        if not _NAME.match(name):
            raise RequireError(file, number, f"malformed #require: bad library name {name!r}")
        if sep and not _VERSION.match(version):
            raise RequireError(file, number,
                               f"malformed #require: bad version {version!r} for {name}")
        found.append(Require(name, version if sep else None, file, number))
    return found


def candidates(req: Require, directory: Path) -> list[Path]:
    """The paths tried for ``req`` in ``directory``, in the order of the lookup rule."""
    plain = directory / req.name
    if req.version is None:
        return [plain]
    return [directory / f"{req.name}@{req.version}",
            directory / req.name / req.version / req.name,
            plain]


def declared_version(source: str) -> str | None:
    """The ``static VERSION = "x.y.z"`` a library declares, if any."""
    match = _DECLARED_VERSION.search(source)
    return match.group(1) if match else None


def resolve_require(req: Require, require_paths: Sequence[Path]) -> Path:
    """The library file ``req`` names, by the lookup rule above; RequireError when none fits."""
    mismatches: list[str] = []
    for directory in require_paths:
        tried = candidates(req, Path(directory))
        for index, path in enumerate(tried):
            if not path.is_file():
                continue
            versioned_candidate = req.version is not None and index < 2
            if versioned_candidate or req.version is None:
                return path
            declared = declared_version(path.read_text(encoding="utf-8", errors="replace"))
            if declared is None or declared == req.version:
                return path
            mismatches.append(f"{path} declares VERSION {declared!r}")
    searched = [Path(d) for d in require_paths]
    where_looked = ", ".join(str(d) for d in searched) if searched else "(no --require-path given)"
    detail = f"; rejected: {'; '.join(mismatches)}" if mismatches else ""
    raise RequireError(req.file, req.line,
                       f"cannot resolve #require {req.spec!r}: library {req.name}"
                       f"{'' if req.version is None else ' version ' + req.version}"
                       f" not found; searched {where_looked}{detail}",
                       searched=searched)


def resolve_all(path: Path, require_paths: Sequence[Path]) -> list[Path]:
    """``path`` and every library it requires, transitively, dependencies first, ``path`` last.

    Each file appears once (the first time it is needed). A cycle is a RequireError naming the
    directive that closes it and the chain, e.g. ``a.nut -> B.lib.nut -> a.nut``.
    """
    order: list[Path] = []
    done: set[Path] = set()

    def visit(current: Path, chain: list[Path], via: Require | None) -> None:
        key = current.resolve()
        if key in done:
            return
        if key in (c.resolve() for c in chain):
            assert via is not None  # the root cannot be its own ancestor
            names = " -> ".join(str(c) for c in [*chain, current])
            raise RequireError(via.file, via.line, f"#require cycle: {names}")
        try:
            source = current.read_text(encoding="utf-8")
        except OSError as exc:
            if via is None:
                raise RequireError(str(current), 1, f"cannot read {current}: {exc}") from exc
            raise RequireError(via.file, via.line,
                               f"cannot read {current} (for #require {via.spec!r}): {exc}") from exc
        for req in find_requires(source, str(current)):
            visit(resolve_require(req, require_paths), [*chain, current], req)
        done.add(key)
        order.append(current)

    visit(Path(path), [], None)
    return order


__all__ = ["Require", "candidates", "declared_version", "find_requires", "resolve_all",
           "resolve_require"]
