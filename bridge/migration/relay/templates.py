"""Wildcard sources and templated targets of relay rules: pure functions, no I/O.

- A source ``mqtt:/devices/+/messages/events`` subscribes to the MQTT topic filter
  ``devices/+/messages/events`` (the path without its leading ``/``); ``+`` is one whole level,
  ``#`` the rest (only as the last level). Other backends' paths are literal.
- A target may insert what the wildcards matched, in order: ``{1}``, ``{2}`` (``#`` gives the
  levels it matched, joined by ``/``), and ``{topic}``, the whole topic the message came on
  (MQTT sources only). ``amqp:/queue/telemetry-{1}``, ``mqtt:/archive/{topic}``. Into an AMQP
  ``/topic/`` address (a RabbitMQ routing key) the levels are joined by ``.``
  (``amqp:/topic/{topic}``: ``devices/d1/events`` -> ``/topic/devices.d1.events``); into other
  AMQP addresses a value with a ``/`` is refused.
- From an AMQP source, ``{subject}`` and ``{to}`` insert the message's AMQP ``subject`` and
  ``to`` (``mqtt:/devices/{subject}/messages/events``); the AMQP source then adds them to each
  message (``amqp.subject_property`` / ``to_property``), and a message without one is
  dead-lettered with the reason. Into an MQTT topic a value may hold ``/`` (levels) but not
  ``+``, ``#`` or NUL.

`parse_source` and `compile_target` run at start-up and raise ``ValueError`` saying what is
wrong; `render` runs per message and raises ``ValueError`` when a matched value cannot go into
the target (the message is then dead-lettered with that reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOPIC_PROPERTY = "bridge-relay-topic"  # the MQTT backend's topic_property on relay sources
SUBJECT_PROPERTY = "bridge-relay-subject"  # the AMQP backend's subject_property on relay sources
TO_PROPERTY = "bridge-relay-to"  # ... and its to_property
# placeholder -> its part code in a TargetTemplate (captures are 1, 2, ...)
_NAMED = {"topic": 0, "subject": -1, "to": -2}
_NAME_OF = {code: name for name, code in _NAMED.items()}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class SourcePattern:
    backend: str
    path: str
    levels: tuple[str, ...]  # the topic filter's levels (MQTT), else ()
    wildcards: int  # how many values a message's topic yields (+ and # levels)

    @property
    def topic_filter(self) -> str | None:
        """The MQTT topic filter when the source has wildcards, else None."""
        return "/".join(self.levels) if self.wildcards else None


@dataclass(frozen=True, slots=True)
class TargetTemplate:
    backend: str
    path: str
    # literal text, a capture number (1-based), 0 for {topic}, -1 {subject}, -2 {to}
    parts: tuple[str | int, ...]

    @property
    def is_static(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    @property
    def envelope(self) -> frozenset[str]:
        """The AMQP envelope fields the template inserts (``subject``, ``to``)."""
        return frozenset(_NAME_OF[part] for part in self.parts
                         if isinstance(part, int) and part < 0)


def _split(endpoint: str) -> tuple[str, str]:
    backend, sep, path = endpoint.partition(":")
    if not sep or not backend or not path:
        raise ValueError(f"{endpoint!r} must look like BACKEND:PATH")
    return backend, path


def parse_source(endpoint: str) -> SourcePattern:
    backend, path = _split(endpoint)
    if "{" in path or "}" in path:
        raise ValueError(f"source {endpoint!r}: templates belong in the target; a source "
                         f"uses MQTT wildcards (+, #)")
    if backend != "mqtt":
        return SourcePattern(backend, path, (), 0)
    topic = path[1:] if path.startswith("/") else path
    levels = tuple(topic.split("/"))
    wildcards = 0
    for index, level in enumerate(levels):
        if level in ("+", "#"):
            if level == "#" and index != len(levels) - 1:
                raise ValueError(f"source {endpoint!r}: '#' must be the last level")
            wildcards += 1
        elif "+" in level or "#" in level:
            raise ValueError(f"source {endpoint!r}: a wildcard must be a whole level "
                             f"({level!r})")
    return SourcePattern(backend, path, levels, wildcards)


def compile_target(endpoint: str, source: SourcePattern) -> TargetTemplate:
    backend, path = _split(endpoint)
    parts: list[str | int] = []
    position = 0
    for found in _PLACEHOLDER.finditer(path):
        parts.append(path[position:found.start()])
        name = found.group(1)
        if name == "topic":
            if source.backend != "mqtt":
                raise ValueError(f"target {endpoint!r}: {{topic}} needs an MQTT source "
                                 f"(the source is {source.backend})")
            parts.append(0)
        elif name in ("subject", "to"):
            if source.backend != "amqp":
                raise ValueError(f"target {endpoint!r}: {{{name}}} is an AMQP message's "
                                 f"{name}: it needs an AMQP source (the source is "
                                 f"{source.backend})")
            parts.append(_NAMED[name])
        elif name.isdigit() and 1 <= int(name) <= source.wildcards:
            parts.append(int(name))
        elif name.isdigit():
            have = (f"only {{1}}..{{{source.wildcards}}}" if source.wildcards
                    else "none: the source has no wildcards")
            raise ValueError(f"target {endpoint!r}: {{{name}}} is not a wildcard of the "
                             f"source ({have})")
        else:
            raise ValueError(f"target {endpoint!r}: unknown placeholder {{{name}}} (use "
                             f"{{1}}, {{2}}, ... for the source's wildcards, {{topic}}, or "
                             f"{{subject}} / {{to}} from an AMQP source)")
        position = found.end()
    rest = path[position:]
    if "{" in rest or "}" in rest or any("{" in p or "}" in p for p in parts
                                         if isinstance(p, str)):
        raise ValueError(f"target {endpoint!r}: unbalanced braces")
    if backend == "mqtt" and ("+" in path or "#" in path):
        raise ValueError(f"target {endpoint!r}: MQTT wildcards cannot be published to")
    parts.append(rest)
    return TargetTemplate(backend, path, tuple(p for p in parts if p != ""))


def captures(source: SourcePattern, topic: str) -> list[str] | None:
    """What the source's wildcards matched in *topic*, or None if it does not match."""
    levels = topic.split("/")
    values: list[str] = []
    for index, level in enumerate(source.levels):
        if level == "#":
            values.append("/".join(levels[index:]))
            return values
        if index >= len(levels):
            return None
        if level == "+":
            values.append(levels[index])
        elif level != levels[index]:
            return None
    return values if len(levels) == len(source.levels) else None


def render(template: TargetTemplate, values: list[str], topic: str | None,
           envelope: dict[str, str] | None = None) -> str:
    """The target path for one message (*envelope*: its AMQP ``subject`` / ``to``)."""
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value: str | None
        if part < 0:
            name = _NAME_OF[part]
            value = (envelope or {}).get(name, "")
            if not value:
                raise ValueError(f"template {template.path!r}: the message has no AMQP {name}")
            if "\x00" in value or (template.backend == "mqtt" and ("+" in value
                                                                    or "#" in value)):
                raise ValueError(f"template {template.path!r}: the AMQP {name} {value!r} "
                                 f"cannot be part of a topic")
            if template.backend == "mqtt":
                out.append(value)
                continue
        else:
            value = topic if part == 0 else values[part - 1]
        if not value:
            raise ValueError(f"template {template.path!r}: "
                             f"{'{topic}' if part == 0 else '{' + str(part) + '}'} is empty "
                             f"for topic {topic!r}")
        if "\x00" in value:
            raise ValueError(f"template {template.path!r}: the topic {topic!r} has a NUL")
        if template.backend != "mqtt" and "/" in value:
            if not template.path.startswith("/topic/"):
                raise ValueError(f"template {template.path!r}: {value!r} (from topic "
                                 f"{topic!r}) has a '/', which would change the "
                                 f"{template.backend} address")
            value = value.replace("/", ".")  # an AMQP topic's routing key: levels join by '.'
        out.append(value)
    return "".join(out)
