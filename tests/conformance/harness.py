"""Helpers shared by the conformance tests: recorders, a per-test context, pipes."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from bridge import Agent

from .profiles.base import BackendProfile


class Recorder:
    """A lifecycle callback that records ``(event, errorDetail)`` and a few observations."""

    def __init__(self, name: str = "cb", observe: Callable[[], Any] | None = None) -> None:
        self.name = name
        self.events: list[tuple[str, str | None]] = []
        self.observed: list[Any] = []
        self._observe = observe

    def __call__(self, *args: Any) -> None:
        assert len(args) == 2, f"{self.name} called with {len(args)} arguments: {args!r}"
        event, detail = args
        self.events.append((event, detail))
        if self._observe is not None:
            self.observed.append(self._observe())

    def names(self) -> list[str]:
        return [event for event, _ in self.events]

    def count(self, event: str) -> int:
        return self.names().count(event)

    def has(self, event: str) -> bool:
        return event in self.names()

    def detail(self, event: str) -> str | None:
        for name, detail in self.events:
            if name == event:
                return detail
        raise AssertionError(f"{self.name} never got {event}; got {self.names()}")


class Ctx:
    """Per-test helpers bound to one profile; closes every agent it made."""

    def __init__(self, profile: BackendProfile) -> None:
        self.profile = profile
        self.agents: list[Agent] = []

    def agent(self, **overrides: Any) -> Agent:
        agent = self.profile.agent(**overrides)
        self.agents.append(agent)
        return agent

    def wait(self, agent: Agent, predicate: Callable[[], bool], what: str,
             timeout: float | None = None) -> None:
        ok = agent.run_until(predicate, timeout or self.profile.timeout)
        assert ok, f"timed out waiting for {what} on {self.profile.name}"

    def settle_briefly(self, agent: Agent, seconds: float = 0.3) -> None:
        """Dispatch for a bounded time: used only to show that something does NOT happen."""
        agent.run(timeout=seconds)

    def connect(self, agent: Agent, callback: Recorder | None = None,
                url: str | None = None) -> tuple[Any, Recorder]:
        recorder = callback or Recorder("connection")
        conn = agent.amqp.openconnection(url or self.profile.url(), recorder)
        self.wait(agent, lambda: recorder.has("CONNECTION_OPEN") or
                  recorder.has("CONNECTION_ERROR"), "CONNECTION_OPEN")
        assert recorder.has("CONNECTION_OPEN"), f"connection failed: {recorder.events}"
        return conn, recorder

    def session(self, agent: Agent, conn: Any) -> tuple[Any, Recorder]:
        recorder = Recorder("session")
        session = conn.opensession(recorder)
        self.wait(agent, lambda: recorder.has("SESSION_OPEN"), "SESSION_OPEN")
        return session, recorder

    def sender(self, agent: Agent, session: Any, path: str) -> tuple[Any, Recorder]:
        recorder = Recorder("sender")
        sender = session.opensender(path, recorder)
        self.wait(agent, lambda: recorder.has("SENDER_OPEN") or recorder.has("SENDER_ERROR"),
                  "SENDER_OPEN")
        assert recorder.has("SENDER_OPEN"), f"sender failed: {recorder.events}"
        return sender, recorder

    def receiver(self, agent: Agent, session: Any, path: str,
                 on_messages: Callable[[list[Any]], Any]) -> tuple[Any, Recorder]:
        recorder = Recorder("receiver")
        receiver = session.openreceiver(path, recorder, on_messages)
        self.wait(agent, lambda: recorder.has("RECEIVER_OPEN") or recorder.has("RECEIVER_ERROR"),
                  "RECEIVER_OPEN")
        assert recorder.has("RECEIVER_OPEN"), f"receiver failed: {recorder.events}"
        return receiver, recorder

    def pipe(self, agent: Agent, label: str,
             on_messages: Callable[[list[Any]], Any] | None = None) -> Pipe:
        """An open connection, session, receiver and sender on one fresh address."""
        conn, conn_rec = self.connect(agent)
        session, _ = self.session(agent, conn)
        path = self.profile.address(label)
        pipe = Pipe(conn, conn_rec, session, path)
        pipe.receiver, pipe.receiver_rec = self.receiver(
            agent, session, path, on_messages or pipe.keep_messages)
        pipe.sender, pipe.sender_rec = self.sender(agent, session, path)
        return pipe

    def send(self, agent: Agent, sender: Any, message: Any) -> None:
        done: list[tuple[Any, ...]] = []
        sender.createtransfer(message).sendasync(lambda *args: done.append(args))
        self.wait(agent, lambda: bool(done), "sendasync callback")
        assert done == [()]

    def close(self) -> None:
        for agent in self.agents:
            agent.close()
        self.agents.clear()
        gc.collect()


class Pipe:
    """Objects of a ready send/receive path; messages land in ``.messages`` by default."""

    def __init__(self, conn: Any, conn_rec: Recorder, session: Any, path: str) -> None:
        self.conn = conn
        self.conn_rec = conn_rec
        self.session = session
        self.path = path
        self.receiver: Any = None
        self.receiver_rec: Recorder | None = None
        self.sender: Any = None
        self.sender_rec: Recorder | None = None
        self.messages: list[Any] = []

    def keep_messages(self, deliveries: list[Any]) -> None:
        for delivery in deliveries:
            self.messages.append(delivery.message())
            delivery.accept()


def deviates(ctx: Ctx, statement: int) -> bool:
    """True if the profile documents a deviation; the caller then runs the profile's pin."""
    if statement in ctx.profile.deviations:
        pin = getattr(ctx.profile, "pin_deviation", None)
        assert pin is not None, f"{ctx.profile.name} lists deviation {statement} but pins none"
        pin(statement, ctx)
        return True
    return False


def pin_cancel_cannot_withdraw(ctx: Ctx) -> None:
    """Deviation 39 where a publish cannot be taken back (MQTT, IoT Hub): cancel() right after
    sendasync suppresses the callback, but the message is already on its way and arrives."""
    agent = ctx.agent()
    pipe = ctx.pipe(agent, "cancel39")
    fired: list[str] = []
    transfer = pipe.sender.createtransfer(agent.amqp.createmessage("cancelled"))
    transfer.sendasync(lambda: fired.append("cancelled"))
    transfer.cancel()
    ctx.send(agent, pipe.sender, agent.amqp.createmessage("marker"))
    ctx.wait(agent, lambda: len(pipe.messages) == 2, "both messages")
    assert [m.body() for m in pipe.messages] == ["cancelled", "marker"]
    assert fired == []
