"""A private RabbitMQ node for tests that restart the AMQP broker: own name, ports and files.

The shared RabbitMQ (``rabbit@localhost``, 127.0.0.1:5672) serves every other test run and is
never touched: the private node has its own node name (``bridge-test-<uuid>@localhost``), AMQP
and distribution ports, Mnesia and log directories, plugin and config files, and its own
``HOME`` (so its Erlang cookie is a fresh one in the temp dir, not the system node's)::

    with RabbitNode(tmp_path) as node:
        node.url          # amqp://guest:guest@127.0.0.1:<port>
        node.restart()    # SIGTERM (durable queues and persistent messages are kept), start
        node.ctl("list_queues", "name", "messages")

Readiness is observed, not guessed: `start` waits for the node's "Server startup complete" log
line. About 4 s per start on the 2-core test machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType

from tests.support.mosquitto import free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


class RabbitNode:
    """One private ``rabbitmq-server`` process (foreground) and its files under *directory*."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.node = f"bridge-test-{uuid.uuid4().hex[:10]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.log: list[str] = []
        self.starts = 0
        self._process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._write_files()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def _write_files(self) -> None:
        d = self.directory
        # loopback_users = none is not needed (we connect from 127.0.0.1), but the listener
        # must be bound to loopback only and to our port, never 5672.
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "management_agent.disable_metrics_collector = true\n"
            # the restart test floods the node: keep memory/disk alarms out of the way
            "disk_free_limit.absolute = 50MB\n")
        (d / "enabled_plugins").write_text("[rabbitmq_amqp1_0].\n")
        # An empty env file: the system one names the node rabbit@localhost.
        (d / "rabbitmq-env.conf").write_text("")

    def environment(self) -> dict[str, str]:
        d = self.directory
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update({
            "HOME": str(d),  # the Erlang cookie: generated here, shared by server and ctl
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_LOGS": "-",  # to stdout, where readiness is read
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins-expand"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        })
        return env

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> RabbitNode:
        assert self._process is None, "already running"
        self._ready.clear()
        process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], cwd=self.directory,
                                   env=self.environment(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   text=True, start_new_session=True)
        self._process = process
        threading.Thread(target=self._read_log, args=(process,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"private RabbitMQ {self.node} did not start:\n"
                               + "\n".join(self.log[-30:]))
        self.starts += 1
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: a clean shutdown (durable queues and persistent messages are written)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(process)

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            self._kill_group(process)

    @staticmethod
    def _kill_group(process: subprocess.Popen[str]) -> None:
        # only our own process group (start_new_session): never the system node
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def restart(self) -> float:
        """Stop and start again on the same ports and data; returns the seconds it took."""
        began = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - began

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        """``rabbitmqctl -n <this node>`` (the real script, not the su wrapper)."""
        done = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
                              env=self.environment(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.node} failed: "
                               f"{(done.stderr or done.stdout).strip()}")
        return done.stdout

    def queue_counts(self, name: str) -> tuple[int, int]:
        """(ready, unacknowledged) messages of queue *name* ((0, 0) when it does not exist)."""
        for line in self.ctl("list_queues", "name", "messages_ready",
                             "messages_unacknowledged").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] == name:
                return int(parts[1]), int(parts[2])
        return 0, 0

    def __enter__(self) -> RabbitNode:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _read_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in process.stdout:
                self.log.append(line.rstrip())
                if "Server startup complete" in line:
                    self._ready.set()
