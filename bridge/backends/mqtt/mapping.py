"""AMQP path <-> MQTT topic mapping: pure functions driven by ordered rules.

A rule is a path *pattern* and a topic *template*:

- in the pattern, ``{name}`` captures exactly one non-empty level and ``*`` (only as the last
  level) captures the rest (one or more levels); every other level must match literally;
- in the template, ``{name}`` inserts a capture, a level that is exactly ``*`` inserts the rest,
  and ``{client_id}`` / ``{agent_id}`` insert the connection's identity (to scope topics per
  device). A template may contain the MQTT wildcards ``+`` / ``#`` as whole levels: such a rule
  maps a *receiver's* path to a topic filter and refuses senders.

The first matching rule wins. Without a match the default applies: strip one leading ``/``
(``/devices/x/messages/events`` -> ``devices/x/messages/events``); a path whose first level
starts with ``$`` (``$cbs``) gets the reserved prefix in front (``bridge/$cbs``), because topics
starting with ``$`` belong to the broker (``$SYS``) and plain clients cannot publish there.

Paths come from agent code, so they are checked before any rule runs: a path that contains
``+``, ``#`` or NUL, or has an empty level, is refused with `AddressError` naming the path and
the problem; a captured value can therefore never inject a wildcard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bridge.engines.mqtt.topics import MAX_TOPIC_BYTES, topic_problem
from bridge.errors import AddressError

_CAPTURE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
IDENTITY_VARIABLES = frozenset({"client_id", "agent_id"})


class RuleLike(Protocol):
    path: str
    topic: str


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A validated rule: pattern levels and the template."""

    path: str
    topic: str
    levels: tuple[str, ...]  # literal level, "{name}" or "*"
    rest: bool  # the pattern ends with "*"
    is_filter: bool  # the template contains + or # levels


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """Where a path goes: a topic (sender) or a topic filter (receiver)."""

    path: str
    topic: str
    is_filter: bool
    rule: str | None  # the pattern of the rule that matched, None for the default


def path_problem(path: str) -> str | None:
    """Why *path* cannot be mapped to MQTT, or None if it can."""
    if not path:
        return "it is empty"
    if "\x00" in path:
        return "it contains a NUL character, which MQTT topics cannot carry"
    for wildcard in ("+", "#"):
        if wildcard in path:
            return (f"it contains the MQTT wildcard {wildcard!r}, which would address other "
                    f"topics than the one named")
    body = path[1:] if path.startswith("/") else path
    if body == "" or "" in body.split("/"):
        return "it has an empty level ('//', a trailing '/' or only '/')"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        return f"it is longer than {MAX_TOPIC_BYTES} bytes"
    return None


def compile_rule(path: str, topic: str) -> CompiledRule:
    """Validate one rule; `ValueError` with a readable reason if it is unusable."""
    if not path:
        raise ValueError("rule path pattern is empty")
    levels = tuple(path.split("/"))
    names: list[str] = []
    rest = False
    for index, level in enumerate(levels):
        if level == "*":
            if index != len(levels) - 1:
                raise ValueError(f"rule {path!r}: '*' may only be the last level")
            rest = True
            continue
        capture = _CAPTURE.match(level)
        if capture:
            name = capture.group(1)
            if name in names or name in IDENTITY_VARIABLES:
                raise ValueError(f"rule {path!r}: capture name {name!r} is used twice or "
                                 f"reserved")
            names.append(name)
        elif "{" in level or "}" in level or "*" in level:
            raise ValueError(f"rule {path!r}: level {level!r} must be a literal, '{{name}}' "
                             f"or '*'")
        elif level and path_problem(level) is not None:
            raise ValueError(f"rule {path!r}: level {level!r} is not a valid path level")
    for name in _PLACEHOLDER.findall(topic):
        if name not in names and name not in IDENTITY_VARIABLES:
            raise ValueError(f"rule {path!r} -> {topic!r}: the template uses {{{name}}}, which "
                             f"the pattern does not capture")
    template_levels = topic.split("/")
    if "*" in template_levels and not rest:
        raise ValueError(f"rule {path!r} -> {topic!r}: the template uses '*' but the pattern "
                         f"has no '*'")
    # Check the template's literal shape with placeholders replaced by a harmless level.
    probe = _PLACEHOLDER.sub("x", topic)
    probe = "/".join("x" if level == "*" else level for level in probe.split("/"))
    problem = topic_problem(probe, allow_wildcards=True)
    if problem is not None:
        raise ValueError(f"rule {path!r} -> {topic!r}: {problem}")
    is_filter = any(level in ("+", "#") for level in template_levels)
    return CompiledRule(path, topic, levels, rest, is_filter)


def compile_rules(rules: Iterable[RuleLike | tuple[str, str]]) -> tuple[CompiledRule, ...]:
    compiled = []
    for rule in rules:
        if isinstance(rule, tuple):
            path, topic = rule
        else:
            path, topic = rule.path, rule.topic
        compiled.append(compile_rule(path, topic))
    return tuple(compiled)


def _match(rule: CompiledRule, levels: list[str]) -> dict[str, str] | None:
    fixed = rule.levels[:-1] if rule.rest else rule.levels
    if rule.rest:
        if len(levels) <= len(fixed):
            return None
    elif len(levels) != len(fixed):
        return None
    captures: dict[str, str] = {}
    for pattern, level in zip(fixed, levels, strict=False):
        capture = _CAPTURE.match(pattern)
        if capture:
            if not level:
                return None
            captures[capture.group(1)] = level
        elif pattern != level:
            return None
    if rule.rest:
        captures["*"] = "/".join(levels[len(fixed):])
    return captures


def _render(rule: CompiledRule, captures: Mapping[str, str],
            variables: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return captures[name] if name in captures else variables[name]

    levels = []
    for level in rule.topic.split("/"):
        if level == "*":
            levels.append(captures["*"])
        else:
            levels.append(_PLACEHOLDER.sub(substitute, level))
    return "/".join(levels)


def map_path(path: str, role: str, rules: Iterable[CompiledRule], *,
             variables: Mapping[str, str] | None = None,
             reserved_prefix: str = "bridge") -> TopicRoute:
    """Map an AMQP *path* for a ``"sender"`` (topic) or ``"receiver"`` (topic filter).

    Raises `AddressError` naming the path and the problem.
    """
    problem = path_problem(path)
    if problem is not None:
        raise AddressError(f"cannot use path {path!r} on MQTT: {problem}")
    values = {"client_id": "", "agent_id": ""}
    values.update(variables or {})
    levels = path.split("/")
    for rule in rules:
        captures = _match(rule, levels)
        if captures is None:
            continue
        if rule.is_filter and role != "receiver":
            raise AddressError(f"cannot use path {path!r} for a sender on MQTT: rule "
                               f"{rule.path!r} maps it to the topic filter {rule.topic!r}")
        topic = _render(rule, captures, values)
        problem = topic_problem(topic, allow_wildcards=rule.is_filter)
        if problem is not None:
            raise AddressError(f"cannot use path {path!r} on MQTT: rule {rule.path!r} gives "
                               f"{topic!r}: {problem}")
        return TopicRoute(path, topic, rule.is_filter, rule.path)
    topic = path[1:] if path.startswith("/") else path
    if topic.startswith("$"):
        topic = f"{reserved_prefix}/{topic}"
    problem = topic_problem(topic, allow_wildcards=False)
    if problem is not None:
        raise AddressError(f"cannot use path {path!r} on MQTT: it maps to {topic!r}: {problem}")
    return TopicRoute(path, topic, False, None)
