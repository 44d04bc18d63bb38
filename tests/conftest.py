"""Suite-wide guard: no secret used by any test may appear in any log line of the whole run.

Every log record from the ``bridge`` loggers (at DEBUG) is captured for the whole session; at
the end the captured text is searched for every value registered with `register_secret` (and the
fixed `KNOWN_SECRETS`). A leak fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

# Passwords, keys and tokens the tests hand to the bridge. Tests may add their own at run time.
KNOWN_SECRETS: set[str] = {
    "right-password", "wrong-password", "p@ss word", "hunter2-secret",
}


def register_secret(value: str) -> str:
    """Remember *value* as a secret the log must never contain; returns it."""
    if len(value) >= 6:  # shorter strings would match innocent text
        KNOWN_SECRETS.add(value)
    return value


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record must not break the suite
            self.lines.append(f"{record.name} unformattable record")


_recorder = _Recorder()


@pytest.fixture(scope="session", autouse=True)
def _capture_bridge_logs() -> Iterator[None]:
    logger = logging.getLogger("bridge")
    previous = logger.level
    logger.addHandler(_recorder)
    logger.setLevel(logging.DEBUG)
    yield
    logger.removeHandler(_recorder)
    logger.setLevel(previous)


def leaked_secrets() -> list[tuple[str, str]]:
    """(secret, line) pairs for every captured line containing a registered secret."""
    found = []
    for line in _recorder.lines:
        for secret in KNOWN_SECRETS:
            if secret in line:
                found.append((secret, line))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = leaked_secrets()
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "\n".join(f"  secret {s[:2]}... in log line: {line[:200]}" for s, line in leaks[:20])
        if reporter is not None:
            reporter.write_line(f"SECRET LEAK: {len(leaks)} log line(s) contain secrets:\n{text}",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
