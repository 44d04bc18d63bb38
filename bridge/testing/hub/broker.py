"""The stand-in's private Mosquitto: plain TCP on a loopback port, reached only through the front.

Mosquitto cannot check a SAS token, so it never sees an unauthenticated device: the TLS front
(`mqtt_front`) verifies the CONNECT and only then splices the connection through. Mosquitto
enforces the per-device topic scope with an ACL file. The front has already checked that the
client id equals the device id in the username, so ``%c`` in a pattern *is* the device id:

- a device may publish only to ``devices/{its id}/messages/events/...``;
- it may subscribe only to ``devices/{its id}/messages/devicebound/...``;
- ``$iothub/...`` traffic is rewritten by the front to ``$iothub/{device id}/...``, so the
  pattern ``$iothub/%c/#`` keeps each device's twin and method topics its own;
- the hub-side client (a user name only the stand-in knows) may read and write everything.

Mosquitto's own log goes to the ``bridge.testing.hub.mosquitto`` logger at DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("bridge.testing.hub.mosquitto")

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MAX_RESTARTS = 5


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (callers retry if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def base_config() -> list[str]:
    """Config lines every private Mosquitto here starts with: it runs as us (started as root it
    would switch to its own user and lose our files) and logs to stderr, unbuffered, where
    `announces_running` sees it come up."""
    return [
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
        "per_listener_settings false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]


def announces_running(log_line: str) -> bool:
    """Is this the log line with which Mosquitto says it accepts connections?"""
    return " running" in log_line and "mosquitto version" in log_line


def terminate(process: subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM (Mosquitto writes its persistence file), SIGKILL if it does not end in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def acl_lines(hub_username: str) -> list[str]:
    return [
        "# devices: the TLS front guarantees client id == device id",
        "pattern write devices/%c/messages/events/#",
        "pattern read devices/%c/messages/devicebound/#",
        "pattern readwrite $iothub/%c/#",
        "",
        "# the hub side",
        f"user {hub_username}",
        "topic readwrite devices/#",
        "topic readwrite $iothub/#",
    ]


class Broker:
    """One ``mosquitto`` process configured under *directory*, watched: if it exits while the
    hub runs, it is restarted on the same port (at most `MAX_RESTARTS` times) and
    *on_restart* is called."""

    def __init__(self, directory: Path, hub_username: str,
                 on_restart: Callable[[int | None], None] | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hub_username = hub_username
        self.on_restart = on_restart
        self.port = 0
        self.restarts = 0
        self.log_lines: list[str] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._process: subprocess.Popen[str] | None = None
        self._readers: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def start(self, timeout: float = 10.0, attempts: int = 3) -> None:
        """Start on a free port; retried when the port was taken between picking and binding."""
        if mosquitto_missing():
            raise RuntimeError(f"mosquitto is not installed (looked for {MOSQUITTO})")
        self._stopping = False
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            self._write_config()
            with self._lock:
                started = self._start_once(timeout)
            if started:
                return
            in_use = any("Address already in use" in line for line in self.log_lines[-5:])
            if not in_use or attempt == attempts:
                self.stop()
                raise RuntimeError("the stand-in's mosquitto did not start:\n"
                                   + "\n".join(self.log_lines[-20:]))

    def _start_once(self, timeout: float) -> bool:
        """Start the process (caller holds the lock); False if it is not running in time."""
        running = threading.Event()
        process = subprocess.Popen([MOSQUITTO, "-c", str(self.directory / "mosquitto.conf")],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        self._process = process
        reader = threading.Thread(target=self._read_log, args=(process, running),
                                  name="hub-mosquitto-log", daemon=True)
        self._readers.append(reader)
        reader.start()
        if running.wait(timeout) and process.poll() is None:
            return True
        self._process = None  # so its watcher does not try to restart it
        terminate(process, timeout)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (then SIGKILL), wait for the process and its log readers."""
        with self._lock:
            self._stopping = True
            process, self._process = self._process, None
        if process is not None:
            terminate(process, timeout)
        for reader in self._readers:
            if reader is not threading.current_thread():
                reader.join(timeout)
        self._readers = [r for r in self._readers if r.is_alive()]

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    def _read_log(self, process: subprocess.Popen[str], running: threading.Event) -> None:
        assert process.stderr is not None
        with contextlib.suppress(ValueError, OSError):
            for line in process.stderr:
                text = line.rstrip()
                self.log_lines.append(text)
                del self.log_lines[:-200]  # a long demo must not grow without bound
                log.debug("%s", text)
                if announces_running(text):
                    running.set()
        with contextlib.suppress(OSError):
            process.stderr.close()
        running.set()  # exited: wake `_start_once` so it can report the log
        self._watch(process)

    def _watch(self, process: subprocess.Popen[str]) -> None:
        """The process ended: restart it unless we stopped it (runs on its reader thread)."""
        code = process.wait()
        with self._lock:
            if self._stopping or process is not self._process:
                return
            if self.restarts >= MAX_RESTARTS:
                log.error("the stand-in's mosquitto exited (status %s) %d times: giving up",
                          code, self.restarts + 1)
                self._process = None
                return
            self.restarts += 1
            log.error("the stand-in's mosquitto exited unexpectedly (status %s): restarting "
                      "it on port %d", code, self.port)
            started = self._start_once(10.0)
        if self.on_restart is not None:
            self.on_restart(self.pid if started else None)

    def _write_config(self) -> None:
        acl = self.directory / "acl"
        acl.write_text("\n".join(acl_lines(self.hub_username)) + "\n")
        lines = [
            *base_config(),
            # Devices arrive with an IoT Hub user name and no broker password: the front has
            # authenticated them already.
            "allow_anonymous true",
            f"acl_file {acl}",
            "persistence false",
            "connection_messages true",
            # Mosquitto drops messages beyond 1000 queued for a slow subscriber by default:
            # a D2C message it PUBACKed must never vanish on its way to the hub client.
            "max_queued_messages 0",
            # The front rewrites $iothub topics; an alias would hide a topic from it.
            "max_topic_alias 0",
            f"listener {self.port} 127.0.0.1",
        ]
        (self.directory / "mosquitto.conf").write_text("\n".join(lines) + "\n")


def mosquitto_missing() -> bool:
    return not (os.path.isfile(MOSQUITTO) and os.access(MOSQUITTO, os.X_OK))

