"""Test helpers for the AMQP backend on the shared RabbitMQ (127.0.0.1:5672, AMQP 1.0 plugin).

- `queue_address` makes unique ``/queue/bridge-amqp-test-...`` addresses; `ensure_expiry_policy`
  installs (once per run) a RabbitMQ policy that deletes such queues after two idle minutes, so
  the shared broker does not fill up even when a test dies half-way.
- `rabbitmqctl` runs the CLI (root only on this machine), used for what only the broker side can
  do: count consumers, delete queues and exchanges.
- Agents that must lose their connection connect through `tests.support.tcp_proxy.TcpProxy`:
  `cut_all` drops every connection as a network failure would, `stall` stops forwarding (idle
  time-outs).
- `RawClient` is a plain proton client (``proton.utils.BlockingConnection``): the "other
  application" of interop tests.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import uuid
from typing import Any

from proton import Message as ProtonMessage
from proton.utils import BlockingConnection

HOST, PORT = "127.0.0.1", 5672
URL = f"amqp://guest:guest@{HOST}:{PORT}"
QUEUE_PREFIX = "bridge-amqp-test-"
RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"

_policy_lock = threading.Lock()
_policy_done = False


def broker_available() -> str | None:
    """None when RabbitMQ answers on 5672, else why not."""
    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            return None
    except OSError as exc:
        return f"RabbitMQ is not reachable on {HOST}:{PORT}: {exc}"


def queue_address(label: str) -> str:
    """A fresh queue address; the queue is created by the first link that attaches to it."""
    ensure_expiry_policy()
    return f"/queue/{QUEUE_PREFIX}{label}-{uuid.uuid4().hex[:12]}"


def rabbitmqctl(*args: str, timeout: float = 30.0) -> str:
    """Run ``rabbitmqctl``; its wrapper script re-evaluates ``$``, so escape it."""
    escaped = [arg.replace("$", "\\$") for arg in args]
    done = subprocess.run([RABBITMQCTL, "-q", *escaped], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: "
                           f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def ensure_expiry_policy() -> None:
    """Queues named ``bridge-amqp-test-*`` (and the ``$cbs`` queue RabbitMQ makes for the bare
    address) are deleted by the broker after 120 s without consumers."""
    global _policy_done
    with _policy_lock:
        if _policy_done:
            return
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            rabbitmqctl("set_policy", "--apply-to", "queues", "bridge-amqp-test-expiry",
                        f"^({QUEUE_PREFIX}.*|[$]cbs)$", '{"expires":120000}')
        _policy_done = True


def queue_name(address: str) -> str:
    return address.removeprefix("/queue/")


def consumers(address: str) -> int:
    """Consumers RabbitMQ sees on the queue of *address* (0 when the queue does not exist)."""
    name = queue_name(address)
    for line in rabbitmqctl("list_queues", "name", "consumers").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return 0


def queue_depth(address: str) -> int:
    """Ready messages in the queue of *address* (0 when it does not exist)."""
    name = queue_name(address)
    for line in rabbitmqctl("list_queues", "name", "messages_ready").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return 0


def unacknowledged(address: str) -> int:
    """Messages of the queue of *address* delivered and not yet settled by their consumer."""
    name = queue_name(address)
    for line in rabbitmqctl("list_queues", "name", "messages_unacknowledged").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return 0


def delete_queue(address: str) -> None:
    with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
        rabbitmqctl("delete_queue", queue_name(address))


def declare_exchange(name: str) -> None:
    """A non-durable direct exchange (rabbitmqctl has no command for it: internal API)."""
    rabbitmqctl("eval", f'rabbit_exchange:declare(rabbit_misc:r(<<"/">>, exchange, '
                        f'<<"{name}">>), direct, false, false, false, [], <<"bridge-tests">>).')


def delete_exchange(name: str) -> None:
    rabbitmqctl("eval", f'rabbit_exchange:delete(rabbit_misc:r(<<"/">>, exchange, '
                        f'<<"{name}">>), false, <<"bridge-tests">>).')


class RawClient:
    """A plain proton client on RabbitMQ, used synchronously from a test."""

    def __init__(self, url: str = URL, timeout: float = 10.0) -> None:
        self.connection = BlockingConnection(url, timeout=timeout)
        self._senders: dict[str, Any] = {}

    # Links are never closed one by one: RabbitMQ 3.10 answers a closing detach with a
    # non-closing one, which BlockingLink.close waits on forever. Closing the connection ends
    # them all.
    def send(self, address: str, message: ProtonMessage) -> None:
        """Send and wait until the broker settled it (accepted)."""
        sender = self._senders.get(address)
        if sender is None:  # one per address: proton names links after their address
            sender = self._senders[address] = self.connection.create_sender(address)
        sender.send(message)

    def receive(self, address: str, count: int = 1, timeout: float = 10.0
                ) -> list[ProtonMessage]:
        """Take *count* messages off *address*, accepting each."""
        receiver = self.connection.create_receiver(address, credit=count)
        got = []
        for _ in range(count):
            got.append(receiver.receive(timeout=timeout))
            receiver.accept()
        return got

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_message(body: Any, properties: dict[str, Any] | None = None, *,
                inferred: bool = False) -> ProtonMessage:
    return ProtonMessage(body=body, properties=properties, inferred=inferred)
