"""The relay's template codec: wildcard sources, templated targets, rendering (table-driven)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge import Settings
from bridge.errors import ConfigError
from bridge.migration.relay import Relay
from bridge.migration.relay.templates import captures, compile_target, parse_source, render

SOURCE_CASES = [  # source, topic filter (None: no wildcard), wildcards
    ("mqtt:/devices/+/messages/events", "devices/+/messages/events", 1),
    ("mqtt:/devices/d1/messages/events", None, 0),
    ("mqtt:/a/+/b/#", "a/+/b/#", 2),
    ("mqtt:#", "#", 1),
    ("amqp:/queue/x", None, 0),
    ("amqp:/topic/a.#", None, 0),  # literal for AMQP (a RabbitMQ binding key, not ours)
]

BAD_SOURCES = [
    ("mqtt:/a/#/b", "'#' must be the last level"),
    ("mqtt:/a/b+/c", "a wildcard must be a whole level"),
    ("mqtt:/a/{1}", "templates belong in the target"),
    ("nocolon", "BACKEND:PATH"),
]

MATCH_CASES = [  # source, topic, captures
    ("mqtt:/devices/+/messages/events", "devices/d1/messages/events", ["d1"]),
    ("mqtt:/devices/+/messages/events", "devices/d1/messages/other", None),
    ("mqtt:/devices/+/messages/events", "devices/d1/messages/events/x", None),
    ("mqtt:/devices/+/messages/events", "devices/messages/events", None),
    ("mqtt:/a/+/b/#", "a/x/b/c/d", ["x", "c/d"]),
    ("mqtt:/a/+/b/#", "a/x/b", ["x", ""]),  # "#" also matches the parent level
    ("mqtt:/a/#", "a/", [""]),
    ("mqtt:/t", "t", []),
]

RENDER_CASES = [  # source, target, topic, path
    ("mqtt:/devices/+/messages/events", "amqp:/queue/telemetry-{1}",
     "devices/d1/messages/events", "/queue/telemetry-d1"),
    ("mqtt:/devices/+/messages/events", "mqtt:/archive/{topic}",
     "devices/d1/messages/events", "/archive/devices/d1/messages/events"),
    ("mqtt:/devices/+/messages/events", "amqp:/topic/{topic}",
     "devices/d1/messages/events", "/topic/devices.d1.messages.events"),
    ("mqtt:/a/+/b/#", "mqtt:/out/{2}/{1}", "a/x/b/c/d", "/out/c/d/x"),
    ("mqtt:/a/+/b/#", "amqp:/topic/r.{2}", "a/x/b/c/d", "/topic/r.c.d"),
    ("amqp:/queue/in", "mqtt:/static/topic", None, "/static/topic"),
    ("mqtt:/d/+", "amqp:/queue/{1}-{1}", "d/z", "/queue/z-z"),
]

ENVELOPE_CASES = [  # target, the AMQP message's subject/to, path, envelope fields used
    ("mqtt:/devices/{subject}/messages/events", {"subject": "d1"},
     "/devices/d1/messages/events", {"subject"}),
    ("mqtt:/routed/{to}", {"to": "dev-7", "subject": "s"}, "/routed/dev-7", {"to"}),
    ("mqtt:/{subject}", {"subject": "a/b/c"}, "/a/b/c", {"subject"}),  # levels, in MQTT
    ("amqp:/topic/t.{subject}", {"subject": "a/b"}, "/topic/t.a.b", {"subject"}),
    ("amqp:/queue/by-{subject}-{to}", {"subject": "s", "to": "t"}, "/queue/by-s-t",
     {"subject", "to"}),
]

BAD_ENVELOPES = [  # target, subject/to, error
    ("mqtt:/devices/{subject}/x", {}, "the message has no AMQP subject"),
    ("mqtt:/devices/{subject}/x", {"subject": "a+b"}, "cannot be part of a topic"),
    ("mqtt:/devices/{to}/x", {"to": "#"}, "cannot be part of a topic"),
    ("amqp:/queue/q-{subject}", {"subject": "a/b"}, "has a '/'"),
]

BAD_TARGETS = [  # source, target, error
    ("mqtt:/devices/+/x", "amqp:/queue/t-{2}", "only {1}..{1}"),
    ("mqtt:/devices/d/x", "amqp:/queue/t-{1}", "the source has no wildcards"),
    ("amqp:/queue/in", "mqtt:/t/{topic}", "{topic} needs an MQTT source"),
    ("mqtt:/d/+", "amqp:/queue/{name}", "unknown placeholder {name}"),
    ("mqtt:/d/+", "amqp:/queue/{1", "unbalanced braces"),
    ("mqtt:/d/+", "amqp:/queue/1}", "unbalanced braces"),
    ("mqtt:/d/+", "mqtt:/out/+", "MQTT wildcards cannot be published to"),
    ("mqtt:/d/+", "mqtt:/out/{subject}", "{subject} is an AMQP message's subject"),
    ("memory:/q", "mqtt:/out/{to}", "it needs an AMQP source"),
]

BAD_RENDERS = [  # source, target, topic, error
    ("mqtt:/a/#", "amqp:/queue/q-{1}", "a/b/c", "has a '/'"),
    ("mqtt:/a/#", "mqtt:/x/{1}", "a/", "is empty"),
]


@pytest.mark.parametrize(("source", "topic_filter", "wildcards"), SOURCE_CASES)
def test_parse_source(source: str, topic_filter: str | None, wildcards: int) -> None:
    pattern = parse_source(source)
    assert (pattern.topic_filter, pattern.wildcards) == (topic_filter, wildcards)


@pytest.mark.parametrize(("source", "error"), BAD_SOURCES)
def test_bad_sources_say_why(source: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("+", r"\+").replace("{", r"\{")):
        parse_source(source)


@pytest.mark.parametrize(("source", "topic", "expected"), MATCH_CASES)
def test_captures(source: str, topic: str, expected: list[str] | None) -> None:
    assert captures(parse_source(source), topic) == expected


@pytest.mark.parametrize(("source", "target", "topic", "path"), RENDER_CASES)
def test_render(source: str, target: str, topic: str | None, path: str) -> None:
    pattern = parse_source(source)
    template = compile_target(target, pattern)
    values = captures(pattern, topic) if topic is not None else []
    assert values is not None
    assert render(template, values, topic) == path
    assert template.is_static is ("{" not in target)


@pytest.mark.parametrize(("target", "envelope", "path", "fields"), ENVELOPE_CASES)
def test_render_from_the_amqp_envelope(target: str, envelope: dict[str, str], path: str,
                                       fields: set[str]) -> None:
    template = compile_target(target, parse_source("amqp:/queue/in"))
    assert template.envelope == fields and not template.is_static
    assert render(template, [], None, envelope) == path


@pytest.mark.parametrize(("target", "envelope", "error"), BAD_ENVELOPES)
def test_bad_envelope_values_say_why(target: str, envelope: dict[str, str], error: str) -> None:
    template = compile_target(target, parse_source("amqp:/queue/in"))
    with pytest.raises(ValueError, match=re.escape(error)):
        render(template, [], None, envelope)


@pytest.mark.parametrize(("source", "target", "error"), BAD_TARGETS)
def test_bad_targets_say_why(source: str, target: str, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        compile_target(target, parse_source(source))
    assert error in str(raised.value) and target in str(raised.value)


@pytest.mark.parametrize(("source", "target", "topic", "error"), BAD_RENDERS)
def test_bad_renders_say_why(source: str, target: str, topic: str, error: str) -> None:
    pattern = parse_source(source)
    values = captures(pattern, topic)
    assert values is not None
    with pytest.raises(ValueError, match=error):
        render(compile_target(target, pattern), values, topic)


def test_the_relay_refuses_a_bad_template_at_start_naming_the_rule(tmp_path: Path) -> None:
    settings = Settings(relay={"ledger": str(tmp_path / "ledger"), "rules": [
        {"source": "amqp:/queue/in", "target": "mqtt:/ok"},
        {"source": "mqtt:/devices/+/events", "target": "amqp:/queue/t-{2}"}]})
    with pytest.raises(ConfigError) as raised:
        Relay(settings)
    (problem,) = raised.value.problems
    assert problem.startswith("relay.rules.1 (mqtt:/devices/+/events -> amqp:/queue/t-{2}): ")
    assert "{2} is not a wildcard of the source" in problem
    assert not (tmp_path / "ledger").exists()  # refused before anything was opened
