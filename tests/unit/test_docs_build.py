"""The documentation site builds in strict mode, and what it tells readers to run exists.

- `mkdocs build --strict` (mkdocs.yml has ``strict: true``): a broken link, a missing anchor, a
  page on disk but missing from the nav, or a nav entry without its page fails the build. mkdocs
  is a test dependency: if it is missing this test fails, it does not skip.
- Every ``bridge ...`` command line in a shell block of the docs names a real subcommand and
  real options (`bridge <command> --help`), and every ``config/...`` file the docs mention exists.
- The Python port in docs/porting.md runs as printed, on the memory backend.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import sys
import uuid
from functools import cache
from pathlib import Path

import pytest

from bridge.agent import Agent
from bridge.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# The global options of `bridge` that take a value (they come before the subcommand).
GLOBAL_WITH_VALUE = {"--config", "--backend", "--log-level"}


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_mkdocs_build_is_strict_and_clean(tmp_path: Path) -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^strict: true$", config, re.M), "CI builds the docs in strict mode"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
         str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (
        f"mkdocs build --strict failed (exit {done.returncode}); is mkdocs installed (the test "
        f"extra)?\n{done.stdout}{done.stderr}")
    for page in ("index", "quickstart", "configuration", "backends", "semantics", "contract",
                 "migration-guide", "porting"):
        assert (tmp_path / "site" / f"{page}.html").is_file(), f"{page}.md missing from the site"


def shell_lines() -> list[tuple[str, str]]:
    """(page, line) of every non-comment line in ```sh blocks, continuations joined."""
    found = []
    for page in doc_pages():
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```(?:sh|bash|console)\n(.*?)^```", text, re.M | re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"\s+#\s.*$", "", line).strip()
                if line and not line.startswith("#"):
                    found.append((page.name, line))
    return found


def bridge_invocations() -> list[tuple[str, list[str]]]:
    """(page, arguments after `bridge`) for every command line that runs the bridge CLI."""
    found = []
    for page, line in shell_lines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        commands: list[list[str]] = [[]]
        for token in lexer:  # split on the shell's operators: && || | ; &
            if token and all(char in "&|;" for char in token):
                commands.append([])
            else:
                commands[-1].append(token)
        for tokens in commands:
            while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
                tokens.pop(0)  # VAR=value prefixes
            if tokens and tokens[0] in ("bridge", ".venv/bin/bridge"):
                found.append((page, tokens[1:]))
    return found


@cache
def cli_help(*command: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bridge", *command, "--help"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"`bridge {' '.join(command)} --help`: {done.stderr}"
    return done.stdout


def test_documented_bridge_commands_exist() -> None:
    invocations = bridge_invocations()
    assert len(invocations) > 20, "the docs show how to run things"
    global_options = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", cli_help()))
    for page, args in invocations:
        index = 0
        while index < len(args) and args[index].startswith("-"):
            option = args[index].split("=", 1)[0]
            assert option in global_options, f"{page}: `bridge {option}` does not exist"
            index += 2 if option in GLOBAL_WITH_VALUE and "=" not in args[index] else 1
        if index == len(args):
            continue
        command = args[index]
        options = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", cli_help(command)))
        for arg in args[index + 1:]:
            if arg.startswith("--") and command != "run":  # run passes options to the script
                assert arg.split("=", 1)[0] in options, (
                    f"{page}: `bridge {command} {arg}` does not exist")


def test_documented_profiles_exist() -> None:
    for page in doc_pages():
        for path in re.findall(r"(?<![\w/])(config/[\w./-]+\.(?:toml|conf))",
                               page.read_text(encoding="utf-8")):
            assert (ROOT / path).is_file(), f"{page.name} mentions {path}, which does not exist"


def porting_example() -> str:
    text = (DOCS / "porting.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)
              if "class EventClient" in b]
    assert len(blocks) == 1, "docs/porting.md has one Python port of EventClient"
    return blocks[0]


def test_porting_example_runs_as_printed(caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(Settings(backend="memory", agent_id="porting-doc",
                           memory={"broker": f"porting-{uuid.uuid4().hex}"}))
    namespace = {"amqp": agent.amqp, "imp": agent.imp, "server": agent.server,
                 "agent": agent, "__name__": "__main__"}
    events: list[bytes] = []
    cloud: dict[str, object] = {}

    def on_telemetry(deliveries: list) -> None:
        for delivery in deliveries:
            events.append(delivery.message().body())
            delivery.accept()
            command = agent.amqp.createbinarymessage("reboot", {"id": 7})
            cloud["sender"].createtransfer(command).sendasync()  # type: ignore[attr-defined]

    def on_cloud_event(event: str, detail: str | None) -> None:
        if event == "CONNECTION_OPEN":
            cloud["session"] = cloud["connection"].opensession()  # type: ignore[attr-defined]
            cloud["receiver"] = cloud["session"].openreceiver(  # type: ignore[attr-defined]
                "/devices/d1/messages/events", None, on_telemetry)
            cloud["sender"] = cloud["session"].opensender(  # type: ignore[attr-defined]
                "/devices/d1/messages/devicebound")

    with caplog.at_level(logging.INFO, logger="bridge.agent"):
        try:
            exec(compile(porting_example(), str(DOCS / "porting.md"), "exec"), namespace)
            cloud["connection"] = agent.amqp.openconnection("amqps://cloud.example",
                                                            on_cloud_event)

            def logged(text: str) -> bool:
                return any(r.getMessage() == text for r in caplog.records)

            assert agent.run_until(lambda: logged("command: reboot") and logged("event sent"),
                                   10), [r.getMessage() for r in caplog.records]
        finally:
            agent.close()
    assert events == [b'{"temp": 21.5}']
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
