"""Route patterns and per-target settings (pure functions)."""

from __future__ import annotations

import pytest

from bridge import ConfigError, Settings
from bridge.migration.routing import compile_path_pattern, match_path, route_for, target_settings


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/devices/{id}/messages/events", "/devices/d1/messages/events", {"id": "d1"}),
    ("/devices/{id}/messages/events", "/devices/d1/x/messages/events", None),
    ("/devices/{id}/messages/events", "/devices//messages/events", None),
    ("/devices/{id}/*", "/devices/d1/messages/devicebound", {"id": "d1"}),
    ("/devices/{id}/*", "/devices/d1/", {"id": "d1"}),
    ("/telemetry*", "/telemetry/a/b", {}),
    ("$cbs", "$cbs", {}),
    ("$cbs", "$cbsx", None),
    ("/a.b/{x}", "/aXb/1", None),  # dots are literal
    ("*", "anything at all", {}),
])
def test_match_path(pattern: str, path: str, expected: dict | None) -> None:
    assert match_path(pattern, path) == expected


@pytest.mark.parametrize(("pattern", "problem"), [
    ("", "empty"), ("/a/*/b", "only allowed at the end"), ("/{x}/{x}", "appears twice"),
    ("/{x", "unbalanced"),
])
def test_bad_patterns(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        compile_path_pattern(pattern)


def test_first_matching_route_wins() -> None:
    settings = Settings(routes=[
        {"match": "/devices/{id}/messages/events", "backend": "memory",
         "options": {"broker": "telemetry"}},
        {"match": "/devices/*", "backend": "memory", "options": {"broker": "rest"}},
    ])
    assert route_for(settings.routes, "/devices/a/messages/events").options == {
        "broker": "telemetry"}
    assert route_for(settings.routes, "/devices/a/messages/devicebound").options == {
        "broker": "rest"}
    assert route_for(settings.routes, "/other") is None


def test_target_settings_apply_options_and_drop_routes() -> None:
    settings = Settings(memory={"prefetch": 7}, routes=[
        {"match": "/x", "backend": "memory", "options": {"broker": "b2"}}])
    target = target_settings(settings, "memory", {"broker": "b2"})
    assert target.memory.broker == "b2" and target.memory.prefetch == 7
    assert target.routes == [] and settings.memory.broker == "default"


def test_bad_routes_fail_at_startup_with_one_line_each() -> None:
    with pytest.raises(ConfigError) as info:
        Settings(routes=[{"match": "/a/*/b", "backend": "memory"},
                         {"match": "/c", "backend": "nope"},
                         {"match": "/d", "backend": "memory", "options": {"prefetch": 0}},
                         {"match": "/e", "backend": "memory", "options": {"bogus": 1}}])
    problems = info.value.problems
    assert len(problems) == 4
    assert problems[0].startswith("routes.0.match")
    assert "unknown backend 'nope'" in problems[1]
    assert "options.prefetch" in problems[2]
    assert "options.bogus" in problems[3]
