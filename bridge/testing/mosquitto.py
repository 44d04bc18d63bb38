"""`PrivateMosquitto`: a ``mosquitto`` of its own (own port, own config, own directory) for tests
and benchmarks: start, stop (SIGTERM: persistence is written), kill (SIGKILL), restart on the
same port, and its log.

Readiness is observed, not guessed: `start` returns once the broker logs that it is running.
Subclasses add configuration lines (`config_lines`); this one listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path
from types import TracebackType

from bridge.testing.hub.broker import (
    MOSQUITTO,
    announces_running,
    base_config,
    free_port,
    terminate,
)


class PrivateMosquitto:
    def __init__(self, directory: Path, *, persistence: bool = True,
                 max_queued_messages: int = 0, allow_anonymous: bool = True,
                 extra: list[str] | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self.allow_anonymous = allow_anonymous
        self.extra = list(extra or [])
        self.config_file = self.directory / "mosquitto.conf"
        self.log: list[str] = []
        self._process: subprocess.Popen[str] | None = None
        self._running = threading.Event()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config_lines(self) -> list[str]:
        """The configuration file's lines (a subclass adds its own; `extra` comes last)."""
        lines = [*base_config(), f"max_queued_messages {self.max_queued_messages}",
                 f"persistence {'true' if self.persistence else 'false'}",
                 f"allow_anonymous {'true' if self.allow_anonymous else 'false'}"]
        if self.persistence:
            lines += [f"persistence_location {self.directory}/", "persistence_file mosquitto.db"]
        return lines + self.listener_lines()

    def listener_lines(self) -> list[str]:
        """The listeners (options that follow a listener line apply to it)."""
        return [f"listener {self.port} 127.0.0.1"]

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> PrivateMosquitto:
        assert self._process is None, "already running"
        self.config_file.write_text("\n".join([*self.config_lines(), *self.extra]) + "\n")
        self._running.clear()
        process = subprocess.Popen([MOSQUITTO, "-c", str(self.config_file)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._process = process
        threading.Thread(target=self._read_log, args=(process,), daemon=True).start()
        if not self._running.wait(timeout):
            self.kill()
            raise RuntimeError("private mosquitto did not start:\n" + "\n".join(self.log[-20:]))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: mosquitto writes its persistence file and closes every connection."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is saved."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def restart(self, timeout: float = 10.0) -> None:
        self.stop(timeout)
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> PrivateMosquitto:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _read_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        with contextlib.suppress(ValueError, OSError):
            for line in process.stderr:
                self.log.append(line.rstrip())
                if announces_running(line):
                    self._running.set()
