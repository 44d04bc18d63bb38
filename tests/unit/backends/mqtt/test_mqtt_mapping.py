"""Path <-> topic mapping of the MQTT backend (pure functions, table-driven)."""

from __future__ import annotations

import pytest

from bridge import Settings
from bridge.backends.mqtt.mapping import (
    compile_rule,
    compile_rules,
    map_path,
    path_problem,
)
from bridge.engines.mqtt.topics import topic_matches, topic_problem
from bridge.errors import AddressError, ConfigError

IOT_RULES = compile_rules([
    ("/devices/{device}/messages/events", "devices/{device}/messages/events"),
    ("/devices/{device}/messages/devicebound", "devices/{device}/messages/devicebound/#"),
    ("/telemetry/*", "tele/{client_id}/*"),
    ("/fixed", "some/where/else"),
])


@pytest.mark.parametrize(("path", "role", "topic", "is_filter"), [
    # default rule: strip one leading "/"
    ("/queue/a", "sender", "queue/a", False),
    ("queue/a", "receiver", "queue/a", False),
    ("/a", "sender", "a", False),
    # "$..." paths get the reserved prefix: "$" topics belong to the broker
    ("$cbs", "sender", "bridge/$cbs", False),
    ("$cbs", "receiver", "bridge/$cbs", False),
    ("/$sys/x", "sender", "bridge/$sys/x", False),
    # "$" inside a later level is an ordinary character
    ("/a/$b", "sender", "a/$b", False),
    # rules: captures, rest, identity variables, literal templates, filters
    ("/devices/x/messages/events", "sender", "devices/x/messages/events", False),
    ("/devices/dev-1/messages/devicebound", "receiver", "devices/dev-1/messages/devicebound/#",
     True),
    ("/telemetry/a/b/c", "sender", "tele/agent-7/a/b/c", False),
    ("/fixed", "sender", "some/where/else", False),
    # no rule matches (different level count): default
    ("/devices/x/messages/events/more", "sender", "devices/x/messages/events/more", False),
    ("/telemetry", "sender", "telemetry", False),
])
def test_paths_map_to_topics(path: str, role: str, topic: str, is_filter: bool) -> None:
    route = map_path(path, role, IOT_RULES, variables={"client_id": "agent-7"})
    assert (route.topic, route.is_filter) == (topic, is_filter)


@pytest.mark.parametrize(("path", "problem"), [
    ("/a/+/b", "wildcard '+'"),
    ("/a/#", "wildcard '#'"),
    ("a+b", "wildcard '+'"),
    ("/a\x00b", "NUL"),
    ("/a//b", "empty level"),
    ("/a/", "empty level"),
    ("/", "empty level"),
    ("//", "empty level"),
    ("", "empty"),
    ("/" + "x" * 70000, "longer than"),
])
def test_bad_paths_are_refused_naming_path_and_problem(path: str, problem: str) -> None:
    with pytest.raises(AddressError) as info:
        map_path(path, "sender", ())
    assert problem in str(info.value)
    assert repr(path)[:40] in str(info.value)


def test_captures_cannot_inject_wildcards() -> None:
    # the capture would be "+", but the path is refused before any rule runs
    with pytest.raises(AddressError, match=r"wildcard '\+'"):
        map_path("/devices/+/messages/events", "receiver", IOT_RULES)
    with pytest.raises(AddressError, match="wildcard '#'"):
        map_path("/telemetry/#", "sender", IOT_RULES)


def test_filter_rule_refuses_senders() -> None:
    with pytest.raises(AddressError, match="topic filter"):
        map_path("/devices/d/messages/devicebound", "sender", IOT_RULES)


def test_capture_giving_a_dollar_topic_is_refused() -> None:
    rules = compile_rules([("/x/{name}", "{name}/y")])
    with pytest.raises(AddressError, match="reserved for the broker"):
        map_path("/x/$SYS", "sender", rules)


def test_first_matching_rule_wins() -> None:
    rules = compile_rules([("/a/{x}", "first/{x}"), ("/a/b", "second")])
    assert map_path("/a/b", "sender", rules).topic == "first/b"


@pytest.mark.parametrize(("path", "topic", "problem"), [
    ("/a/*/b", "x", "'*' may only be the last level"),
    ("/a/{x}/{x}", "t/{x}", "used twice"),
    ("/a/{client_id}", "t", "reserved"),
    ("/a/{x}", "t/{y}", "does not capture"),
    ("/a/x{y}", "t", "must be a literal"),
    ("/a", "t/*", "has no '*'"),
    ("/a", "$SYS/x", "reserved for the broker"),
    ("/a", "t//u", "empty level"),
    ("/a", "t/#/u", "must be the last level"),
    ("/a", "t/a+", "mixes a wildcard"),
    ("", "t", "empty"),
])
def test_bad_rules_are_refused(path: str, topic: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        compile_rule(path, topic)


def test_rules_are_checked_when_settings_load() -> None:
    with pytest.raises(ConfigError, match="topic_rules"):
        Settings(backend="mqtt", mqtt={"topic_rules": [{"path": "/a/*/b", "topic": "x"}]})
    ok = Settings(backend="mqtt", mqtt={"topic_rules": [{"path": "/a/{x}", "topic": "b/{x}"}]})
    assert ok.mqtt.topic_rules[0].topic == "b/{x}"


def test_reserved_prefix_is_configurable() -> None:
    assert map_path("$cbs", "sender", (), reserved_prefix="amqp").topic == "amqp/$cbs"


@pytest.mark.parametrize(("topic_filter", "topic", "matches"), [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a/b/c", False),
    ("a/#", "a", True),
    ("a/#", "a/b/c", True),
    ("#", "a/b", True),
    ("#", "$SYS/x", False),
    ("+/x", "$SYS/x", False),
    ("$SYS/#", "$SYS/x", True),
    ("a/+/c", "a/b/c", True),
    ("a/b", "a/b/c", False),
])
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_problem_helpers_accept_good_input() -> None:
    assert path_problem("/devices/x/messages/events") is None
    assert path_problem("$cbs") is None
    assert topic_problem("a/+/#", allow_wildcards=True) is None
    assert topic_problem("a/+", allow_wildcards=False) is not None
