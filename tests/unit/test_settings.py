"""Settings: sources and their precedence, readable errors, secrets, source tracking, the
memory profile and the generated configuration reference."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge import docs_gen
from bridge.backends.memory.settings import MemorySettings
from bridge.errors import ConfigError
from bridge.settings import (
    MASK,
    Settings,
    env_var_name,
    is_secret_field,
    leaf_fields,
)
from bridge.settings_sources import explain_settings, origin_of

REPO = Path(__file__).resolve().parents[2]
SENTINEL = "hunter2-do-not-print"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No BRIDGE_* variable from outside, no .env from the repository, none left behind."""
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            del os.environ[name]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(**init: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings(**init)
    return caught.value.problems


# -- sources ---------------------------------------------------------------------------------

def test_defaults() -> None:
    settings = Settings()
    assert settings.backend == "memory"
    assert settings.config is None
    assert (settings.limits.connections, settings.limits.sessions, settings.limits.links) \
        == (4, 16, 64)
    assert settings.memory == MemorySettings()
    assert settings.memory.prefetch == 100
    assert settings.log_level == "INFO"


def test_environment_with_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_AGENT_ID", "device-7")
    monkeypatch.setenv("BRIDGE_LIMITS__LINKS", "9")
    monkeypatch.setenv("BRIDGE_MEMORY__USERS__alice", SENTINEL)
    monkeypatch.setenv("AGENT_ID", "not-ours")  # without the prefix: ignored
    settings = Settings()
    assert settings.agent_id == "device-7"
    assert settings.limits.links == 9
    assert settings.memory.users["alice"].get_secret_value() == SENTINEL


def test_environment_section_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_LIMITS", '{"links": 3, "sessions": 2}')
    settings = Settings()
    assert (settings.limits.links, settings.limits.sessions, settings.limits.connections) \
        == (3, 2, 4)


def test_dotenv_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / ".env", "BRIDGE_MEMORY__BROKER=from-dotenv\nBRIDGE_LIMITS__SESSIONS=2\n")
    settings = Settings()
    assert settings.memory.broker == "from-dotenv"
    assert settings.limits.sessions == 2


def test_toml_profile_named_by_bridge_config(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", 'agent_id = "from-toml"\n[memory]\nprefetch = 7\n')
    monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    settings = Settings()
    assert settings.agent_id == "from-toml"
    assert settings.memory.prefetch == 7
    assert settings.config == str(profile)


def test_toml_profile_named_by_init_argument(tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", "[memory]\nprefetch = 8\n")
    assert Settings(config=str(profile)).memory.prefetch == 8


def test_toml_profile_named_in_dotenv_is_read(tmp_path: Path) -> None:
    write(tmp_path / "p.toml", "[memory]\nprefetch = 9\n")
    write(tmp_path / ".env", "BRIDGE_CONFIG=p.toml\n")
    settings = Settings()
    assert settings.config == "p.toml"
    assert settings.memory.prefetch == 9


LAYERS = ("init", "env", "dotenv", "toml")
LAYER_VALUE = {"init": 1, "env": 2, "dotenv": 3, "toml": 4}


@pytest.mark.parametrize("present", [LAYERS[i:] for i in range(len(LAYERS) + 1)],
                         ids=lambda layers: "+".join(layers) or "none")
def test_precedence_init_env_dotenv_toml_default(present: tuple[str, ...], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """memory.prefetch set in every layer from *present* on: the highest one wins."""
    init: dict[str, Any] = {}
    if "init" in present:
        init["memory"] = {"prefetch": LAYER_VALUE["init"]}
    if "env" in present:
        monkeypatch.setenv("BRIDGE_MEMORY__PREFETCH", str(LAYER_VALUE["env"]))
    if "dotenv" in present:
        write(tmp_path / ".env", f"BRIDGE_MEMORY__PREFETCH={LAYER_VALUE['dotenv']}\n")
    if "toml" in present:
        profile = write(tmp_path / "p.toml", f"[memory]\nprefetch = {LAYER_VALUE['toml']}\n")
        monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    expected = LAYER_VALUE[present[0]] if present else 100
    assert Settings(**init).memory.prefetch == expected
    _, explained = explain_settings(init)
    (item,) = [e for e in explained if e.key == "memory.prefetch"]
    assert item.value == expected
    assert item.origins[0].kind == (present[0] if present else "default")


# -- errors ----------------------------------------------------------------------------------

def test_one_readable_line_per_bad_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_MEMORY__PREFETCH", "0")
    monkeypatch.setenv("BRIDGE_LIMITS__LINKS", "lots")
    problems = problems_of(log_level="LOUD")
    assert len(problems) == 3
    by_field = {line.split(":", 1)[0]: line for line in problems}
    assert set(by_field) == {"memory.prefetch", "limits.links", "log_level"}
    assert "greater than or equal to 1" in by_field["memory.prefetch"]
    assert "given '0'" in by_field["memory.prefetch"]
    assert "valid integer" in by_field["limits.links"] and "'lots'" in by_field["limits.links"]
    assert "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in by_field["log_level"]
    assert "'LOUD'" in by_field["log_level"]


def test_config_error_text_lists_each_problem_on_its_own_line() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(agent_id="has space", limits={"links": -1})
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid configuration:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) \
        == ["- agent_id", "- limits.links"]


def test_unknown_backend_names_the_allowed_ones() -> None:
    (line,) = problems_of(backend="nope")
    assert line.startswith("backend: unknown backend; allowed: ")
    assert "memory" in line and "'nope'" in line


def test_unknown_key_in_toml_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", 'bakend = "memory"\n[memory]\nprefetchh = 5\n')
    monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    assert sorted(problems_of()) == ["bakend: unknown setting",
                                     "memory.prefetchh: unknown setting"]


def test_missing_toml_profile_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_CONFIG", "no/such/profile.toml")
    (line,) = problems_of()
    assert "'no/such/profile.toml' does not exist" in line


def test_invalid_toml_is_a_config_error_naming_the_file(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    profile = write(tmp_path / "broken.toml", "backend = \n")
    monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    (line,) = problems_of()
    assert str(profile) in line and "not valid TOML" in line and "line 1" in line


def test_environment_json_that_does_not_parse_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_LIMITS", "{links: 3")
    (line,) = problems_of()
    assert line.startswith("limits: the value from the environment is not valid JSON")
    assert "BRIDGE_LIMITS__<NAME>" in line


# -- secrets ---------------------------------------------------------------------------------

SECRET_PATHS = [path for path, field in leaf_fields(Settings) if is_secret_field(field)]


def _secret_init(path: tuple[str, ...], secret: Any) -> dict[str, Any]:
    """Init arguments that put *secret* in the secret setting at *path*."""
    field = dict(leaf_fields(Settings))[path]
    value: Any = {"someone": secret} if "dict" in str(field.annotation) else secret
    for part in reversed(path):
        value = {part: value}
    return value


def test_there_are_secrets_to_test() -> None:
    assert ("memory", "users") in SECRET_PATHS


@pytest.mark.parametrize("path", SECRET_PATHS, ids=".".join)
def test_secret_never_in_repr_str_or_dump(path: tuple[str, ...]) -> None:
    try:
        settings = Settings(**_secret_init(path, SENTINEL))
    except ConfigError as exc:  # a cross-field rule of the section: still nothing leaks
        assert SENTINEL not in str(exc)
        return
    for text in (repr(settings), str(settings), str(settings.model_dump()),
                 settings.model_dump_json()):
        assert SENTINEL not in text
    _, explained = explain_settings()
    assert SENTINEL not in repr(explained)


@pytest.mark.parametrize("path", SECRET_PATHS, ids=".".join)
def test_bad_value_next_to_a_secret_does_not_print_the_secret(path: tuple[str, ...]) -> None:
    problems = problems_of(**_secret_init(path, SENTINEL), agent_id="not valid!")
    assert any(line.startswith("agent_id:") for line in problems)
    assert SENTINEL not in "\n".join(problems)


@pytest.mark.parametrize("path", SECRET_PATHS, ids=".".join)
def test_secret_of_the_wrong_type_is_not_echoed(path: tuple[str, ...]) -> None:
    problems = problems_of(**_secret_init(path, 987654321))
    assert any(line.startswith(".".join(path)) for line in problems)
    assert "987654321" not in "\n".join(problems)


def test_secret_of_the_wrong_type_in_toml_is_not_echoed(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", "[memory]\nusers = { alice = 987654321 }\n")
    monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    (line,) = problems_of()
    assert line.startswith("memory.users.alice:") and "987654321" not in line


def test_misspelt_key_does_not_echo_its_value(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", f'[memory]\npasword = "{SENTINEL}"\n')
    monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    assert problems_of() == ["memory.pasword: unknown setting"]


def test_password_in_a_url_is_masked_in_errors() -> None:
    (line,) = problems_of(agent_id=f"amqps://user:{SENTINEL}@host")
    assert SENTINEL not in line
    assert f"user:{MASK}@host" in line


def test_assignment_error_does_not_print_the_secret() -> None:
    settings = Settings()
    with pytest.raises(ValidationError) as caught:
        settings.memory.users = {"alice": 987654321}  # type: ignore[dict-item]
    assert "987654321" not in str(caught.value)


# -- where values came from ------------------------------------------------------------------

def test_explain_names_the_variable_the_file_and_the_default(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = write(tmp_path / "p.toml", "[limits]\nlinks = 3\n[memory.users]\nbob = 'x'\n")
    monkeypatch.setenv("BRIDGE_CONFIG", str(profile))
    monkeypatch.setenv("BRIDGE_MEMORY__PREFETCH", "7")
    monkeypatch.setenv("BRIDGE_MEMORY__USERS__ALICE", SENTINEL)
    monkeypatch.setenv("BRIDGE_ROUTING", '{"also_notify_connection": true}')
    write(tmp_path / ".env", "BRIDGE_MEMORY__BROKER=b1\n")
    _, explained = explain_settings({"agent_id": "a1"}, init_kind="cli")
    by_key = {item.key: item for item in explained}
    assert [str(o) for o in by_key["agent_id"].origins] == ["cli"]
    assert [str(o) for o in by_key["memory.prefetch"].origins] == ["env BRIDGE_MEMORY__PREFETCH"]
    assert [str(o) for o in by_key["routing.also_notify_connection"].origins] \
        == ["env BRIDGE_ROUTING"]
    assert [str(o) for o in by_key["memory.broker"].origins] == [".env BRIDGE_MEMORY__BROKER"]
    assert [str(o) for o in by_key["limits.links"].origins] == [f"toml {profile}"]
    assert [str(o) for o in by_key["config"].origins] == ["env BRIDGE_CONFIG"]
    assert [str(o) for o in by_key["limits.sessions"].origins] == ["default"]
    # A table is merged across sources: both are named.
    users = by_key["memory.users"]
    assert [str(o) for o in users.origins] \
        == ["env BRIDGE_MEMORY__USERS__ALICE", f"toml {profile}"]
    assert users.secret and users.value == {"bob": MASK, "alice": MASK}
    assert not by_key["memory.prefetch"].secret


def test_origin_of_a_bad_value_while_the_settings_are_invalid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_MEMORY__PREFETCH", "0")
    origin = origin_of("memory.prefetch")
    assert origin is not None and str(origin) == "env BRIDGE_MEMORY__PREFETCH"
    assert origin_of("memory.queue_capacity") is None


def test_env_var_names() -> None:
    assert env_var_name(("memory", "prefetch")) == "BRIDGE_MEMORY__PREFETCH"
    assert env_var_name(("backend",)) == "BRIDGE_BACKEND"


# -- the memory profile and the reference ----------------------------------------------------

def test_memory_profile_spells_out_every_default() -> None:
    path = REPO / "config" / "memory.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["backend"] == "memory"
    assert set(data["memory"]) == set(MemorySettings.model_fields)
    settings = Settings(config=str(path))
    assert settings.backend == "memory"
    assert settings.memory == MemorySettings()


def test_configuration_reference_is_up_to_date() -> None:
    """docs/configuration.md is generated; regenerate with `python -m bridge.docs_gen`."""
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == docs_gen.render(), \
        "docs/configuration.md is out of date: run python -m bridge.docs_gen"


def test_reference_documents_every_setting_with_its_variable() -> None:
    text = docs_gen.render()
    for path, _ in leaf_fields(Settings):
        assert f"| `{'.'.join(path)}` |" in text
        assert f"`{env_var_name(path)}`" in text
