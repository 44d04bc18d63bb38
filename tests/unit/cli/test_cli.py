"""The ``bridge`` command: in-process with click's CliRunner, and as a real process where signals
and the console-script entry point matter."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge import docs_gen
from bridge.backends.registry import backend_names
from bridge.cli import cli
from bridge.settings import MASK, Settings, env_var_name, is_secret_field, leaf_fields

BRIDGE = Path(sys.executable).with_name("bridge")  # the console script of this venv
SENTINEL = "hunter2-do-not-print"
WAIT = 15.0  # generous bound for a subprocess to reach a point; never a sleep

# A script that opens a memory connection and prints every event it hears.
OPEN_AND_REPORT = """
def on_event(event, detail):
    print("event", event, detail, flush=True)
    if event == "CONNECTION_OPEN":
        print("ready", flush=True)
        {on_open}

conn = amqp.openconnection("amqp://localhost/", on_event)
{top_level}
"""


def script(tmp_path: Path, on_open: str = "pass", top_level: str = "",
           name: str = "agent_script.py") -> Path:
    path = tmp_path / name
    path.write_text(OPEN_AND_REPORT.format(on_open=on_open, top_level=top_level),
                    encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No BRIDGE_* variable from outside, no .env from the repository, none left behind
    (``bridge --config`` sets BRIDGE_CONFIG in this process)."""
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    root_level = logging.getLogger().level  # `bridge -v` sets it in this process
    yield
    logging.getLogger().setLevel(root_level)
    for name in list(os.environ):
        if name.upper().startswith("BRIDGE_"):
            del os.environ[name]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="bridge")


# -- help, backends ----------------------------------------------------------------------------

def test_help_describes_the_project_commands_and_examples() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    text = result.stdout
    assert "Electric Imp" in text and "Examples:" in text and "bridge run agent.py" in text
    for option in ("--config PATH", "--backend NAME", "--log-level", "-v, --verbose"):
        assert option in text
    commands = text.split("Commands:", 1)[1].strip().splitlines()
    names = [line.split()[0] for line in commands]
    assert names == ["backends", "config", "demo", "fleet", "hub", "port", "relay", "run", "scan",
                     "shadow-report"]
    assert not any(line.rstrip().endswith("...") for line in commands)  # one full line each


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and "bridge" in result.stdout


def test_backends_lists_the_selectable_backends() -> None:
    result = invoke("backends")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == \
        backend_names(selectable_only=True)
    assert "memory" in result.stdout


# -- config ------------------------------------------------------------------------------------

def config_lines(text: str) -> dict[str, tuple[str, str]]:
    """``key = value  # source`` -> {key: (value, source)}."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, rest = line.split(" = ", 1)
        value, source = rest.rsplit("  # ", 1)
        found[key.strip()] = (value.strip(), source.strip())
    return found


def test_config_shows_each_value_with_its_source(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text("[limits]\nlinks = 3\n", encoding="utf-8")
    (tmp_path / ".env").write_text("BRIDGE_MEMORY__BROKER=b1\n", encoding="utf-8")
    monkeypatch.setenv("BRIDGE_MEMORY__PREFETCH", "7")
    monkeypatch.setenv("BRIDGE_MEMORY__USERS__alice", SENTINEL)
    result = invoke("--config", str(profile), "--backend", "memory", "config")
    assert result.exit_code == 0, result.output
    assert SENTINEL not in result.output
    lines = config_lines(result.stdout)
    assert {key for key, _ in leaf_fields(Settings)} == {tuple(k.split(".")) for k in lines}
    assert lines["backend"] == ('"memory"', "cli")
    assert lines["memory.prefetch"] == ("7", "env BRIDGE_MEMORY__PREFETCH")
    assert lines["memory.broker"] == ('"b1"', ".env BRIDGE_MEMORY__BROKER")
    assert lines["limits.links"] == ("3", f"toml {profile}")
    assert lines["config"] == (json.dumps(str(profile)), "env BRIDGE_CONFIG")
    assert lines["limits.sessions"] == ("16", "default")
    assert lines["memory.users"] == (json.dumps({"alice": MASK}),
                                     "env BRIDGE_MEMORY__USERS__ALICE")


SECRET_PATHS = [path for path, field in leaf_fields(Settings) if is_secret_field(field)]


@pytest.mark.parametrize("path", SECRET_PATHS, ids=".".join)
def test_config_masks_a_password_set_in_the_environment(path: tuple[str, ...],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    field = dict(leaf_fields(Settings))[path]
    table = "dict" in str(field.annotation)
    variable = env_var_name(path) + ("__SOMEONE" if table else "")
    monkeypatch.setenv(variable, SENTINEL)
    for args in (["config"], ["config", "--json"]):
        result = invoke(*args)
        assert SENTINEL not in result.output
        if result.exit_code == 2:  # a cross-field rule of the section rejected it: fine
            continue
        assert result.exit_code == 0, result.output
        if "--json" in args:
            entry = json.loads(result.stdout)[".".join(path)]
            assert entry["secret"] is True
            assert entry["value"] == ({"someone": MASK} if table else MASK)
            assert entry["source"] == f"env {variable}"
        else:
            value, source = config_lines(result.stdout)[".".join(path)]
            assert MASK in value and source == f"env {variable}"


def test_config_json_is_machine_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_LIMITS__LINKS", "5")
    result = invoke("config", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["limits.links"] == {"value": 5, "source": "env BRIDGE_LIMITS__LINKS",
                                    "sources": [{"kind": "env",
                                                 "detail": "BRIDGE_LIMITS__LINKS"}],
                                    "secret": False}
    assert data["backend"]["value"] == "memory" and data["backend"]["source"] == "default"


def test_config_invalid_is_a_readable_error_with_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_MEMORY__PREFETCH", "0")
    result = invoke("--backend", "nope", "config")
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # not a crash
    assert "Traceback" not in result.output
    err = result.stderr
    assert err.startswith("bridge: invalid configuration:")
    assert "- backend: unknown backend; allowed: " in err and "[from cli]" in err
    assert "- memory.prefetch: Input should be greater than or equal to 1 (given '0')" \
           "  [from env BRIDGE_MEMORY__PREFETCH]" in err


def test_config_missing_profile_exit_2() -> None:
    result = invoke("--config", "missing.toml", "config")
    assert result.exit_code == 2 and "'missing.toml' does not exist" in result.stderr


def test_config_markdown_is_the_reference() -> None:
    result = invoke("config", "--markdown")
    assert result.exit_code == 0
    assert result.stdout == docs_gen.render()
    assert "--markdown" not in invoke("config", "--help").stdout  # hidden


# -- run, in process -----------------------------------------------------------------------------

def test_run_script_that_stops_itself(tmp_path: Path) -> None:
    path = script(tmp_path, on_open="agent.stop()", top_level="""
import sys
print("globals", __name__, __file__, sys.argv, flush=True)
print("predefined", type(imp).__name__, type(server).__name__, type(agent).__name__, flush=True)
""")
    saved_argv, saved_main = sys.argv, sys.modules["__main__"]
    saved_sigint = signal.getsignal(signal.SIGINT)
    result = invoke("run", str(path), "--flag", "x")
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0] == f"globals __main__ {path} {[str(path), '--flag', 'x']}"
    assert out[1] == "predefined Imp Server Agent"
    # OPEN while dispatching; CLOSED from the shutdown after agent.stop().
    assert out[2:] == ["event CONNECTION_OPEN None", "ready", "event CONNECTION_CLOSED None"]
    assert "on backend 'memory'" in result.stderr.splitlines()[0]
    # The process is left as it was found.
    assert sys.argv is saved_argv and sys.modules["__main__"] is saved_main
    assert signal.getsignal(signal.SIGINT) is saved_sigint


def test_run_backend_option_reaches_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "s.py"
    path.write_text("print('backend', agent.settings.backend, agent.settings.log_level)\n"
                    "agent.stop()\n", encoding="utf-8")
    result = invoke("--backend", "memory", "-v", "run", str(path))
    assert result.exit_code == 0, result.output
    assert "backend memory DEBUG" in result.stdout


def test_run_keeps_the_scripts_globals_alive(tmp_path: Path) -> None:
    """The only reference to the connection is the script's global: it must stay open."""
    path = tmp_path / "s.py"
    path.write_text("""
import gc
def check():
    gc.collect()
    print("still open:", conn.isopen(), flush=True)
    agent.stop()
def on_event(event, detail):
    if event == "CONNECTION_OPEN":
        imp.wakeup(0.05, check)
conn = amqp.openconnection("amqp://localhost/", on_event)
""", encoding="utf-8")
    result = invoke("run", str(path))
    assert result.exit_code == 0, result.output
    assert "still open: True" in result.stdout


def test_run_timeout_stops_dispatching(tmp_path: Path) -> None:
    path = script(tmp_path)  # never stops by itself
    started = time.monotonic()
    result = invoke("run", "--timeout", "0.3", str(path))
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert 0.3 <= elapsed < 5
    assert result.stdout.splitlines() == ["event CONNECTION_OPEN None", "ready",
                                          "event CONNECTION_CLOSED None"]


def test_run_top_level_exception_prints_traceback_and_exits_1(tmp_path: Path) -> None:
    path = script(tmp_path, top_level="def fail():\n    raise RuntimeError('boom')\nfail()\n")
    result = invoke("run", str(path))
    assert result.exit_code == 1
    err = result.stderr
    assert "Traceback (most recent call last):" in err
    assert f'File "{path}", line' in err and "in fail" in err
    assert err.rstrip().endswith("RuntimeError: boom")
    assert "bridge/cli.py" not in err  # the traceback starts at the script
    # The connection the script opened was closed (and its callback told) before exiting.
    assert "event CONNECTION_CLOSED None" in result.stdout


def test_run_syntax_error_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("def broken(:\n", encoding="utf-8")
    result = invoke("run", str(path))
    assert result.exit_code == 1 and "SyntaxError" in result.stderr


def test_run_sys_exit_status_is_kept(tmp_path: Path) -> None:
    path = script(tmp_path, top_level="import sys\nsys.exit(3)\n")
    result = invoke("run", str(path))
    assert result.exit_code == 3
    assert "event CONNECTION_CLOSED None" in result.stdout


def test_run_invalid_config_exit_2_without_running_the_script(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BRIDGE_MEMORY__PREFETCH", "0")
    path = tmp_path / "s.py"
    path.write_text("print('ran')\n", encoding="utf-8")
    result = invoke("run", str(path))
    assert result.exit_code == 2
    assert "ran" not in result.stdout and "Traceback" not in result.output
    assert "memory.prefetch" in result.stderr


def test_run_script_does_not_inherit_future_flags(tmp_path: Path) -> None:
    """The script is compiled on its own, not with cli.py's ``from __future__ import``."""
    path = tmp_path / "s.py"
    path.write_text("def f(x: int) -> None: pass\nprint(f.__annotations__['x'] is int)\n"
                    "agent.stop()\n", encoding="utf-8")
    result = invoke("run", str(path))
    assert result.stdout.strip() == "True"


# -- run, as a real process ----------------------------------------------------------------------

class Proc:
    """A ``bridge`` process whose output lines can be waited for."""

    def __init__(self, *args: str, cwd: Path, ignore_sigint: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIDGE_")}
        command = [str(BRIDGE), *args]
        if ignore_sigint:
            # What a shell does for a background job: SIGINT ignored from the start (an
            # ignored disposition survives exec).
            command = ["sh", "-c", 'trap "" INT; exec "$0" "$@"', *command]
        self.popen = subprocess.Popen(command, cwd=cwd, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr = ""
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.stdout.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        self.stderr = self.popen.stderr.read()

    def expect(self, text: str) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"exited before {text!r}: {self.stdout} {self.stderr}")
            if text in line:
                return

    def finish(self) -> int:
        try:
            status = self.popen.wait(WAIT)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
        for reader in self._readers:
            reader.join(WAIT)
        return status


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()


def test_process_runs_a_script_that_stops_itself(tmp_path: Path, procs: list[Proc]) -> None:
    proc = Proc("run", str(script(tmp_path, on_open="agent.stop()")), cwd=tmp_path)
    procs.append(proc)
    assert proc.finish() == 0
    assert proc.stdout == ["event CONNECTION_OPEN None", "ready", "event CONNECTION_CLOSED None"]
    assert "bridge: running" in proc.stderr and "'memory'" in proc.stderr
    # Logging: time, level, logger name.
    assert any(" INFO    bridge.cli: the script stopped the agent" in line
               for line in proc.stderr.splitlines())


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_while_dispatching_closes_cleanly(signum: int, status: int, tmp_path: Path,
                                                 procs: list[Proc]) -> None:
    proc = Proc("run", str(script(tmp_path)), cwd=tmp_path)
    procs.append(proc)
    proc.expect("ready")
    proc.popen.send_signal(signum)
    assert proc.finish() == status
    # The connection was closed by the bridge and the script's callback heard it.
    assert proc.stdout[-1] == "event CONNECTION_CLOSED None"
    assert "Traceback" not in proc.stderr
    assert ("interrupted (SIGINT)" if signum == signal.SIGINT
            else "terminated (SIGTERM)") in proc.stderr


def test_sigint_during_the_scripts_top_level(tmp_path: Path, procs: list[Proc]) -> None:
    blocking = "import threading\nprint('top level waiting', flush=True)\nthreading.Event().wait()"
    proc = Proc("run", str(script(tmp_path, top_level=blocking)), cwd=tmp_path)
    procs.append(proc)
    proc.expect("top level waiting")
    proc.popen.send_signal(signal.SIGINT)
    assert proc.finish() == 130
    assert proc.stdout[-1] == "event CONNECTION_CLOSED None"
    assert "Traceback" not in proc.stderr


def test_second_sigint_forces_exit(tmp_path: Path, procs: list[Proc]) -> None:
    """A close that hangs (here: a CLOSED callback that never returns) can be cut short."""
    hang = tmp_path / "hang.py"
    hang.write_text("""
import threading
def on_event(event, detail):
    print("event", event, flush=True)
    if event == "CONNECTION_CLOSED":
        print("hanging", flush=True)
        threading.Event().wait()
conn = amqp.openconnection("amqp://localhost/", on_event)
""", encoding="utf-8")
    proc = Proc("run", str(hang), cwd=tmp_path)
    procs.append(proc)
    proc.expect("CONNECTION_OPEN")
    proc.popen.send_signal(signal.SIGINT)
    proc.expect("hanging")
    proc.popen.send_signal(signal.SIGINT)
    assert proc.finish() == 130
    assert "bridge: forced exit" in proc.stderr


def test_an_ignored_sigint_stays_ignored(tmp_path: Path, procs: list[Proc]) -> None:
    proc = Proc("run", str(script(tmp_path)), cwd=tmp_path, ignore_sigint=True)
    procs.append(proc)
    proc.expect("ready")
    proc.popen.send_signal(signal.SIGINT)
    proc.popen.send_signal(signal.SIGTERM)  # delivered after SIGINT: it ends the run
    assert proc.finish() == 0
    assert "terminated (SIGTERM)" in proc.stderr and "SIGINT" not in proc.stderr
