"""Every TOML profile in config/ loads into `Settings`, and the migration profiles say what the
migration guide says they do."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bridge.errors import ConfigError
from bridge.migration.routing import route_for
from bridge.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted((ROOT / "config").glob("*.toml"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the profile counts: no BRIDGE_* variable and no .env from the developer."""
    for variable in list(os.environ):
        if variable.startswith("BRIDGE_"):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)


def load(name: str) -> Settings:
    return Settings(config=str(ROOT / "config" / name))


def test_the_expected_profiles_exist() -> None:
    names = {path.name for path in PROFILES}
    assert {"memory.toml", "relay.toml", "staged.toml", "shadow.toml"} <= names


@pytest.mark.parametrize("profile", PROFILES, ids=lambda path: path.name)
def test_profile_loads(profile: Path) -> None:
    try:
        settings = Settings(config=str(profile))
    except ConfigError as exc:
        pytest.fail(f"{profile.name}: {exc}")
    assert settings.config == str(profile)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda path: path.name)
def test_profile_holds_no_secret(profile: Path) -> None:
    """Credentials belong in the environment or .env; a profile is committed."""
    data = tomllib.loads(profile.read_text(encoding="utf-8"))

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("password", "key_password") or (key == "users" and item):
                    pytest.fail(f"{profile.name}: {where}{key} holds a secret")
                walk(item, f"{where}{key}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}{index}.")
        elif isinstance(value, str) and "://" in value:
            parts = urlsplit(value)
            # guest:guest is RabbitMQ's published default, valid from localhost only.
            known_default = (parts.username, parts.password) == ("guest", "guest")
            assert parts.password is None or known_default, (
                f"{profile.name}: password in {where}")

    walk(data, "")


def test_staged_routes_telemetry_to_mqtt_and_the_rest_to_amqp() -> None:
    settings = load("staged.toml")
    assert settings.backend == "amqp"
    for path in ("/devices/d1/messages/events", "/queue/d1.telemetry"):
        route = route_for(settings.routes, path)
        assert route is not None and route.backend == "mqtt", path
        assert route.shadow is None
    for path in ("/devices/d1/messages/devicebound", "/queue/d1.commands", "$cbs"):
        assert route_for(settings.routes, path) is None, f"{path} must stay on amqp"


def test_shadow_keeps_amqp_primary_with_an_mqtt_shadow_everywhere() -> None:
    settings = load("shadow.toml")
    for path in ("/devices/d1/messages/events", "/queue/d1.commands", "/anything/else"):
        route = route_for(settings.routes, path)
        assert route is not None and (route.backend, route.shadow) == ("amqp", "mqtt"), path
    assert settings.shadow.report_file is not None


def test_relay_forwards_both_directions_between_amqp_and_mqtt() -> None:
    settings = load("relay.toml")
    pairs = {(rule.source.split(":")[0], rule.target.split(":")[0])
             for rule in settings.relay.rules}
    assert pairs == {("amqp", "mqtt"), ("mqtt", "amqp")}
    assert settings.relay.metrics_port is not None
    assert settings.mqtt.reconnect == "auto", "a relay must ride out a broker restart"
