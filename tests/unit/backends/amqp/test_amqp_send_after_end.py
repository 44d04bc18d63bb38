"""A transfer handed to an AMQP link that has already ended is left unsettled, not failed.

The link's (or the connection's) end is reported by itself; failing the transfer as well would
make the contract delete its durable-outbox row as if the broker had refused the message, and
the message would be lost instead of resent by the next sender (tests/reliability/
test_amqp_restart.py hits exactly this race: sends made in the milliseconds between a broker
crash and the CONNECTION_ERROR being dispatched).
"""

from __future__ import annotations

from typing import Any

from bridge import Settings
from bridge.backends.amqp.endpoint import connect_options
from bridge.backends.amqp.handler import ConnectionHandler


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


class Link:
    id = 7


class Transfer:
    id = 1
    link = Link()


def test_send_on_an_ended_link_reports_nothing() -> None:
    options = connect_options(Settings(backend="amqp").amqp, "amqp://127.0.0.1", "agent", 1)
    events = Recorder()
    handler = ConnectionHandler(options, events, close_timeout=1.0)  # type: ignore[arg-type]
    handler.cmd_send(Transfer())  # type: ignore[arg-type]  # no such link (any more)
    assert events.calls == []
