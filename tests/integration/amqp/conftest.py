"""Fixtures for the AMQP backend's integration tests (real RabbitMQ, raw proton peers)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge import Agent, Settings
from tests.integration.amqp.rabbit import broker_available

TIMEOUT = 10.0


class Rec:
    """A lifecycle callback recording ``(event, errorDetail)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []

    def __call__(self, event: str, detail: str | None) -> None:
        self.events.append((event, detail))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def has(self, event: str) -> bool:
        return event in self.names()

    def detail(self, event: str) -> str:
        for name, detail in self.events:
            if name == event:
                return detail or ""
        raise AssertionError(f"no {event} in {self.events}")


class Harness:
    """Agents on the amqp backend, closed at teardown, and waiting helpers."""

    def __init__(self) -> None:
        self.agents: list[Agent] = []

    def agent(self, **amqp: Any) -> Agent:
        agent = Agent(Settings(backend="amqp", amqp=amqp))
        self.agents.append(agent)
        return agent

    @staticmethod
    def wait(agent: Agent, predicate: Callable[[], bool], what: str,
             timeout: float = TIMEOUT) -> None:
        assert agent.run_until(predicate, timeout), f"timed out waiting for {what}"

    def open(self, agent: Agent, url: str, *, session: bool = True
             ) -> tuple[Any, Rec, Any, Rec]:
        """An open connection (and session); returns (conn, conn_rec, session, session_rec)."""
        conn_rec = Rec()
        conn = agent.amqp.openconnection(url, conn_rec)
        self.wait(agent, lambda: bool(conn_rec.events), "the connection's first event")
        assert conn_rec.names() == ["CONNECTION_OPEN"], conn_rec.events
        if not session:
            return conn, conn_rec, None, Rec()
        session_rec = Rec()
        sess = conn.opensession(session_rec)
        self.wait(agent, lambda: bool(session_rec.events), "SESSION_OPEN")
        assert session_rec.names() == ["SESSION_OPEN"], session_rec.events
        return conn, conn_rec, sess, session_rec

    def link(self, agent: Agent, session: Any, role: str, path: str,
             on_messages: Callable[[list[Any]], Any] | None = None) -> tuple[Any, Rec]:
        rec = Rec()
        if role == "sender":
            link = session.opensender(path, rec)
        else:
            link = session.openreceiver(path, rec, on_messages or (lambda ds: None))
        self.wait(agent, lambda: bool(rec.events), f"{role} on {path}")
        return link, rec

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        self.agents.clear()
        gc.collect()


@pytest.fixture
def harness() -> Iterator[Harness]:
    made = Harness()
    yield made
    made.close()


@pytest.fixture
def rabbitmq() -> None:
    """The shared RabbitMQ must be up: these tests fail (never skip) without it."""
    problem = broker_available()
    if problem is not None:
        pytest.fail(problem)
