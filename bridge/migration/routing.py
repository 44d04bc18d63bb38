"""Per-address routing: path patterns and the settings each routed backend runs with.

Pure functions: no I/O, no threads. A pattern is an AMQP path in which ``{name}`` matches exactly
one non-empty level and a trailing ``*`` matches the rest (possibly nothing).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bridge.backends.registry import backend_names
from bridge.errors import ConfigError
from bridge.migration.settings import RouteRule

# a `bridge.settings.Settings` (named by a type variable: the settings module imports this one)
SettingsT = TypeVar("SettingsT", bound=BaseModel)

_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@lru_cache(maxsize=256)
def compile_path_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a route pattern; ``ValueError`` naming the problem for a malformed one."""
    if not pattern:
        raise ValueError("route pattern must not be empty")
    regex = []
    names: set[str] = set()
    position = 0
    for index, char in enumerate(pattern):
        if char == "*" and index != len(pattern) - 1:
            raise ValueError(f"route pattern {pattern!r}: '*' is only allowed at the end")
    body = pattern[:-1] if pattern.endswith("*") else pattern
    for found in _CAPTURE.finditer(body):
        name = found.group(1)
        if name in names:
            raise ValueError(f"route pattern {pattern!r}: capture {{{name}}} appears twice")
        names.add(name)
        regex.append(re.escape(body[position:found.start()]))
        regex.append(f"(?P<{name}>[^/]+)")
        position = found.end()
    rest = body[position:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"route pattern {pattern!r}: unbalanced braces")
    regex.append(re.escape(rest))
    if pattern.endswith("*"):
        regex.append(".*")
    return re.compile("".join(regex) + r"\Z", re.DOTALL)


def match_path(pattern: str, path: str) -> dict[str, str] | None:
    """The captures if *path* matches *pattern*, else None."""
    found = compile_path_pattern(pattern).match(path)
    return found.groupdict() if found else None


def route_for(routes: list[RouteRule], path: str) -> RouteRule | None:
    """The first route whose pattern matches *path*."""
    for route in routes:
        if match_path(route.match, path) is not None:
            return route
    return None


def target_settings(settings: SettingsT, backend: str, options: dict[str, Any]) -> SettingsT:
    """Settings for one routed backend: *backend* selected, its section updated with *options*.

    Routes are dropped so the routed backend does not route again.
    """
    update: dict[str, Any] = {"backend": backend, "routes": []}
    section = getattr(settings, backend, None)
    if options:
        if section is None or not hasattr(section, "model_validate"):
            raise ConfigError([f"routes: backend {backend!r} has no settings section; "
                               f"options are not allowed"])
        try:
            update[backend] = type(section).model_validate({**dict(section), **options})
        except ValidationError as exc:
            problems = [f"options.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                        for e in exc.errors()]
            raise ConfigError(problems) from None
    return settings.model_copy(update=update)


def validate_routes(settings: Any) -> None:
    """Check every route of *settings* (a `bridge.settings.Settings`) at start-up: patterns
    compile, backends exist, options fit."""
    known = set(backend_names())
    problems: list[str] = []
    for index, route in enumerate(settings.routes):
        where = f"routes.{index}"
        try:
            compile_path_pattern(route.match)
        except ValueError as exc:
            problems.append(f"{where}.match: {exc}")
        for name, options in ((route.backend, route.options),
                              (route.shadow, route.shadow_options)):
            if name is None:
                continue
            if name not in known or name == "routed":
                problems.append(f"{where}: unknown backend {name!r}; allowed: "
                                f"{', '.join(sorted(known - {'routed'}))}")
                continue
            try:
                target_settings(settings, name, options)
            except ConfigError as exc:
                problems.extend(f"{where}: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
