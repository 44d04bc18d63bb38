"""A private RabbitMQ node for tests and benchmarks (kills, restarts, many connections).

The shared RabbitMQ (rabbit@localhost, 127.0.0.1:5672) must never be restarted, so this starts a
second node of the installed RabbitMQ with its own name, ports and directories::

    node = RabbitNode(tmp_path).start()     # ~4-5 s: an Erlang VM boots
    node.declare_quorum_queue("q")          # survives a SIGKILL, messages included
    node.url                                # amqp://guest:guest@127.0.0.1:<port>
    node.kill(); node.start()               # a crash and a restart (same data directory)
    node.restart()                          # SIGTERM (everything written), start; seconds
    node.queue_counts("q")                  # (ready, unacknowledged)

- Everything listens on 127.0.0.1 (AMQP port, Erlang distribution port); the node registers with
  the machine's epmd under its own name (``bridgetest-<random>@localhost``).
- `/etc/rabbitmq/rabbitmq-env.conf` would rename the node to the shared one's name, so an empty
  env file replaces it; the config and enabled-plugins files are the node's own (AMQP 1.0).
- Readiness is observed, not guessed: `start` waits for the boot banner's "completed" line.
- The VM runs in its own process group (``exec`` without the shell wrapper), so `kill` and
  `close` end exactly the processes this helper started.

Quorum queues keep every message they confirmed on disk, whatever the message's durable flag,
so "nothing lost" across a SIGKILL does not depend on the sender marking messages durable. The
bridge addresses such a pre-declared queue as ``/amq/queue/<name>`` (the AMQP 1.0 plugin's
"existing queue" form; ``/queue/<name>`` would try to declare it again, non-durable, and fail).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType

from bridge.testing.hub.broker import free_port

# The installed release's scripts (links into lib/rabbitmq_server-<version>/sbin); rabbitmqctl
# is run from the same folder as the server, not through the su wrapper in /usr/sbin.
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
SERVER = RABBIT_BIN / "rabbitmq-server"
CTL = SERVER.resolve().parent / "rabbitmqctl"


def available() -> str | None:
    """None when a private node can be started here, else why not."""
    if not SERVER.exists() or shutil.which("erl") is None:
        return f"RabbitMQ server scripts not found at {SERVER}"
    return None


class RabbitNode:
    """One private RabbitMQ node and its files under *directory*."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = f"bridgetest-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.output: list[str] = []
        self.boot_seconds: list[float] = []
        self._process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        (self.directory / "env.conf").write_text("")
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
            # floods (the relay restart test) must not trip memory/disk alarms
            "disk_free_limit.absolute = 50MB\n")
        (self.directory / "enabled_plugins").write_text("[rabbitmq_amqp1_0].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        d = self.directory
        env = dict(os.environ)
        env.update({
            "HOME": str(d),  # the Erlang cookie lives here, shared by server and rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": str(d / "env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            # exec the VM in place of the wrapper shell: our pid is the broker's
            "RUNNING_UNDER_SYSTEMD": "true",
        })
        return env

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> RabbitNode:
        assert self._process is None, "already running"
        self._ready.clear()
        started = time.monotonic()
        process = subprocess.Popen([str(SERVER)], env=self._env(), cwd=self.directory,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._process = process
        threading.Thread(target=self._read_output, args=(process,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError("private RabbitMQ did not start:\n" + "\n".join(self.output[-30:]))
        self.boot_seconds.append(time.monotonic() - started)
        return self

    def restart(self) -> float:
        """Stop cleanly and start again on the same ports and data; the seconds it took."""
        began = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL to the node's process group: a crash, nothing is flushed."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    close = kill

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the VM shuts down cleanly (everything it holds is written out)."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in process.stdout:
                self.output.append(line.rstrip())
                if "Starting broker... completed" in line:
                    self._ready.set()

    # -- management ------------------------------------------------------------------------------
    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        done = subprocess.run([str(CTL), "-n", self.name, *args], env=self._env(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {args[0]} failed: {done.stderr or done.stdout}")
        return done.stdout

    def queue_counts(self, name: str) -> tuple[int, int]:
        """(ready, unacknowledged) messages of queue *name* ((0, 0) when it does not exist)."""
        for line in self.ctl("list_queues", "name", "messages_ready",
                             "messages_unacknowledged").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] == name:
                return int(parts[1]), int(parts[2])
        return 0, 0

    def declare_quorum_queue(self, name: str) -> str:
        """Declare a quorum queue; returns the bridge address of it.

        Ra registers the queue's server in a table written to disk lazily: a SIGKILL soon after
        the declaration loses the registration (after the restart the queue exists but never
        gets a leader). A clean restart once makes it permanent.
        """
        self.ctl("eval", f'rabbit_amqqueue:declare(rabbit_misc:r(<<"/">>, queue, <<"{name}">>), '
                         f'true, false, [{{<<"x-queue-type">>, longstr, <<"quorum">>}}], none, '
                         f'<<"bridge-tests">>).')
        self.stop()
        self.start()
        return f"/amq/queue/{name}"

    def __enter__(self) -> RabbitNode:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
