"""Fleets of plain `Agent` objects for tests and benchmarks, and a private Mosquitto with TLS.

`AgentFleet` is what a user building a fleet by hand writes: N agents with one connection each,
started on the shared dispatcher pool (`agent.start()`); it counts CONNECTION_OPEN and keeps the
error events, opens one sender per agent, sends, and closes every agent with one deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.agent import Agent
from bridge.settings import Settings
from bridge.testing.hub.broker import free_port
from bridge.testing.hub.tls import make_tls_material
from bridge.testing.mosquitto import PrivateMosquitto

#: The IoT Hub host name fleets put in their connection strings (certificates are made for it).
HUB = "myhub.azure-devices.net"


class TLSMosquitto(PrivateMosquitto):
    """A private Mosquitto with a TLS listener too (certificate for localhost and `HUB`)."""

    def __init__(self, directory: Path, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.tls_port = free_port()
        self.tls = make_tls_material(directory / "tls", [HUB])

    def listener_lines(self) -> list[str]:
        return [*super().listener_lines(), f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}"]


class AgentFleet:
    """N agents with one connection each, dispatched on the shared pool."""

    def __init__(self, settings_for: Callable[[int], Settings], count: int, url: str) -> None:
        self.opened = threading.Semaphore(0)
        self.errors: list[tuple[str, str | None]] = []
        self.agents: list[Agent] = []
        self.connections: list[Any] = []
        self.senders: list[Any] = []
        self.started = time.monotonic()
        for n in range(count):
            agent = Agent(settings_for(n))
            self.connections.append(agent.amqp.openconnection(url, self._event))
            agent.start()
            self.agents.append(agent)

    def _event(self, event: str, detail: str | None) -> None:
        if event == "CONNECTION_OPEN":
            self.opened.release()
        elif event.endswith("_ERROR"):
            self.errors.append((event, detail))

    def wait_open(self, timeout: float) -> float:
        """Seconds from the start until every connection opened; RuntimeError otherwise."""
        deadline = time.monotonic() + timeout
        for n in range(len(self.agents)):
            if not self.opened.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"only {n} of {len(self.agents)} connected in {timeout:g} s; "
                                   f"errors: {self.errors[:3]}")
        return time.monotonic() - self.started

    def open_senders(self, path_for: Callable[[int], str], timeout: float = 60) -> None:
        """One sender per agent (on its own dispatcher), on *path_for(n)*; waits until open."""
        done = threading.Semaphore(0)
        senders: dict[int, Any] = {}

        def on_event(event: str, detail: str | None) -> None:
            if event == "SENDER_OPEN":
                done.release()
            elif event.endswith("_ERROR"):
                self.errors.append((event, detail))

        for n, (agent, conn) in enumerate(zip(self.agents, self.connections, strict=True)):
            def open_one(conn: Any = conn, n: int = n) -> None:
                session = conn.opensession()
                senders[n] = session.opensender(path_for(n), on_event)
            agent.call_soon(open_one)
        deadline = time.monotonic() + timeout
        for n in range(len(self.agents)):
            if not done.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"only {n} of {len(self.agents)} senders opened; "
                                   f"errors: {self.errors[:3]}")
        self.senders = [senders[n] for n in range(len(self.agents))]

    def send_each(self, body_for: Callable[[int], str],
                  confirmed: Callable[[str], None]) -> None:
        """Every agent sends one message *body_for(n)* (on its dispatcher); *confirmed(body)*
        runs when the far end confirmed it."""
        for n, (agent, sender) in enumerate(zip(self.agents, self.senders, strict=True)):
            body = body_for(n)
            agent.call_soon(lambda a=agent, s=sender, b=body: s.createtransfer(
                a.amqp.createmessage(b)).sendasync(lambda b=b: confirmed(b)))

    def close(self, timeout: float = 30) -> None:
        for agent in self.agents:
            agent.begin_close()
        deadline = time.monotonic() + timeout
        for agent in self.agents:
            agent.finish_close(deadline)


def bridge_threads() -> int:
    """The bridge's threads (network loops, reactors, dispatcher workers, timers, resolvers)
    and the main thread; test helpers' own threads (broker-log readers) are not counted."""
    return sum(1 for t in threading.enumerate()
               if t.name.startswith("bridge") or t is threading.main_thread())
