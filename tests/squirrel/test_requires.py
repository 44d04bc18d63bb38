"""#require directives: parsing (table-driven), the lookup rule, transitive order and cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.squirrel.errors import RequireError
from bridge.squirrel.requires import Require, find_requires, resolve_all, resolve_require

FIND_CASES = [
    ('#require "AzureIoTHub.agent.lib.nut:5.1.0"',
     [("AzureIoTHub.agent.lib.nut", "5.1.0", 1)]),
    ('  #require "Promise.lib.nut:4.0.0"  // async helpers',
     [("Promise.lib.nut", "4.0.0", 1)]),
    ('#require "Local.nut"', [("Local.nut", None, 1)]),
    ('local x = 1;\n#require "A.nut:1.0.0"\n#require "B.nut:2.0.0-rc1"\n',
     [("A.nut", "1.0.0", 2), ("B.nut", "2.0.0-rc1", 3)]),
    ("// #require \"Not.nut:1.0.0\" inside a comment is not a directive\n", []),
    ('local s = "#require \\"X.nut:1\\"";', []),
    ("# plain hash comment\n#requirement is not a directive\n", []),
]


@pytest.mark.parametrize(("source", "expected"), FIND_CASES)
def test_find_requires(source: str, expected: list[tuple[str, str | None, int]]) -> None:
    found = find_requires(source, "agent.nut")
    assert [(r.name, r.version, r.line) for r in found] == expected
    assert all(r.file == "agent.nut" for r in found)


BAD_CASES = [
    ("#require AzureIoTHub.agent.lib.nut:5.1.0", "malformed #require"),
    ('#require "Azure IoT.nut:1.0.0"', "bad library name"),
    ('#require "A.nut:"', "bad version"),
    ('#require "A.nut:1.0" trailing', "malformed #require"),
    ("#require", "malformed #require"),
]


@pytest.mark.parametrize(("source", "needle"), BAD_CASES)
def test_find_requires_rejects_malformed(source: str, needle: str) -> None:
    with pytest.raises(RequireError) as info:
        find_requires("\n\n" + source, "lib/agent.nut")
    assert str(info.value).startswith("lib/agent.nut:3: ")
    assert needle in str(info.value)


def _write(path: Path, text: str = "// lib\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# (files to create relative to tmp, the directive, expected relative result or None)
LOOKUP_CASES = [
    (["libs/A.nut@1.2.3"], ("A.nut", "1.2.3"), "libs/A.nut@1.2.3"),
    (["libs/A.nut/1.2.3/A.nut"], ("A.nut", "1.2.3"), "libs/A.nut/1.2.3/A.nut"),
    (["libs/A.nut"], ("A.nut", "1.2.3"), "libs/A.nut"),
    (["libs/A.nut", "libs/A.nut@1.2.3"], ("A.nut", "1.2.3"), "libs/A.nut@1.2.3"),
    (["libs/A.nut@1.2.3", "libs/A.nut/1.2.3/A.nut"], ("A.nut", "1.2.3"), "libs/A.nut@1.2.3"),
    (["libs/A.nut@1.2.4"], ("A.nut", "1.2.3"), None),  # exact versions only
    (["libs/A.nut@1.2.3"], ("A.nut", None), None),  # unversioned directive: plain file only
    (["libs/A.nut"], ("A.nut", None), "libs/A.nut"),
    (["other/A.nut@1.2.3", "libs/A.nut@1.2.3"], ("A.nut", "1.2.3"), "libs/A.nut@1.2.3"),
]


@pytest.mark.parametrize(("files", "directive", "expected"), LOOKUP_CASES)
def test_lookup_rule(tmp_path: Path, files: list[str], directive: tuple[str, str | None],
                     expected: str | None) -> None:
    for name in files:
        _write(tmp_path / name)
    req = Require(directive[0], directive[1], "agent.nut", 7)
    dirs = [tmp_path / "libs", tmp_path / "other"]
    if expected is None:
        with pytest.raises(RequireError) as info:
            resolve_require(req, dirs)
        text = str(info.value)
        assert text.startswith("agent.nut:7: ")
        assert directive[0] in text
        assert str(tmp_path / "libs") in text and str(tmp_path / "other") in text
        assert info.value.searched == dirs
    else:
        assert resolve_require(req, dirs) == tmp_path / expected


def test_declared_version_must_match_for_plain_file(tmp_path: Path) -> None:
    _write(tmp_path / "A.nut", 'class A { static VERSION = "2.0.0"; }\n')
    assert resolve_require(Require("A.nut", "2.0.0", "x.nut", 1), [tmp_path]) == tmp_path / "A.nut"
    with pytest.raises(RequireError, match=r"declares VERSION '2.0.0'"):
        resolve_require(Require("A.nut", "1.0.0", "x.nut", 1), [tmp_path])


def test_no_require_path_says_so() -> None:
    with pytest.raises(RequireError, match="no --require-path given"):
        resolve_require(Require("A.nut", "1.0.0", "x.nut", 1), [])


def test_resolve_all_dependency_order(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    _write(libs / "A.nut@1.0.0", '#require "B.nut:1.0.0"\n#require "C.nut:1.0.0"\n')
    _write(libs / "B.nut@1.0.0", '#require "C.nut:1.0.0"\n')
    _write(libs / "C.nut@1.0.0", "// leaf\n")
    agent = _write(tmp_path / "agent.nut", '#require "A.nut:1.0.0"\n#require "C.nut:1.0.0"\n')
    order = resolve_all(agent, [libs])
    assert order == [libs / "C.nut@1.0.0", libs / "B.nut@1.0.0", libs / "A.nut@1.0.0", agent]


def test_resolve_all_cycle(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    _write(libs / "A.nut@1", '#require "B.nut:1"\n')
    _write(libs / "B.nut@1", '// b\n#require "A.nut:1"\n')
    agent = _write(tmp_path / "agent.nut", '#require "A.nut:1"\n')
    with pytest.raises(RequireError) as info:
        resolve_all(agent, [libs])
    text = str(info.value)
    assert text.startswith(f"{libs / 'B.nut@1'}:2: #require cycle: ")
    assert "A.nut@1 -> " in text and text.endswith(str(libs / "A.nut@1"))


def test_resolve_all_unresolved_names_the_requiring_line(tmp_path: Path) -> None:
    agent = _write(tmp_path / "agent.nut", '\n#require "Missing.nut:1.0.0"\n')
    with pytest.raises(RequireError) as info:
        resolve_all(agent, [tmp_path])
    assert str(info.value).startswith(f"{agent}:2: cannot resolve #require 'Missing.nut:1.0.0'")


def test_resolve_all_missing_root(tmp_path: Path) -> None:
    with pytest.raises(RequireError, match="cannot read"):
        resolve_all(tmp_path / "nope.nut", [])
