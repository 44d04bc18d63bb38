"""Two races found by reading the code, each shown by a test that failed on the old code.

- `Transfer` bookkeeping: ``sendasync`` (a user thread) counts a transfer into its sender's
  window under the runtime lock, while the dispatcher counted it out without it; a thread switch
  between reading and writing the counter lost updates, and a transfer settled while a user
  thread cancelled it was counted out twice.
- `AMQPBackend.cancel` changed state the reactor thread owns (its set of cancelled transfers)
  from the caller's thread.
"""

from __future__ import annotations

import copy
import os
import socket
import sys
import threading
from collections import deque
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from bridge import Agent, Settings

# The functions whose interleavings matter: thread switches are forced between their opcodes.
_RACY = frozenset({"sendasync", "cancel", "_handle_settled", "_left_backend"})


def _switch_often(frame: FrameType, event: str, arg: Any) -> Any:
    """A trace function: inside the racy functions, give the GIL away before every opcode.

    CPython switches threads only at calls and backward jumps, so a read-modify-write on one
    line (``link.in_backend -= 1``) is never interrupted by chance; here it is, on purpose."""
    if event == "call":
        if frame.f_code.co_name not in _RACY:
            return None
        frame.f_trace_opcodes = True
        return _switch_often
    if event == "opcode":
        os.sched_yield()  # releases the GIL: the other thread may run now
    return _switch_often


@pytest.fixture
def forced_switches() -> Iterator[None]:
    threading.settrace(_switch_often)
    sys.settrace(_switch_often)
    try:
        yield
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]


def test_window_count_survives_sends_from_a_user_thread(forced_switches: None) -> None:
    agent = Agent(Settings(backend="memory", agent_id="race-window",
                           memory={"broker": "race-window", "queue_capacity": 1_000_000}))
    try:
        events: list[str] = []
        conn = agent.amqp.openconnection("amqps://race.example", lambda e, d: events.append(e))
        session = conn.opensession()
        sender = session.opensender("/race/window")
        assert agent.run_until(sender.isopen, 5)
        agent.start()  # the dispatcher counts confirmed transfers out on its own thread
        confirmed = threading.Semaphore(0)
        total = 1_500
        message = agent.amqp.createmessage("x")
        transfers = [sender.createtransfer(message) for _ in range(total)]
        for transfer in transfers:  # this (user) thread counts them in
            transfer.sendasync(confirmed.release)
        for _ in range(total):
            assert confirmed.acquire(timeout=10), "a confirmation never came"
        agent.stop()
        assert sender._core.in_backend == 0
    finally:
        agent.close()


def test_a_transfer_cancelled_while_it_is_confirmed_is_counted_out_once(
        forced_switches: None) -> None:
    agent = Agent(Settings(backend="memory", agent_id="race-cancel",
                           memory={"broker": "race-cancel", "queue_capacity": 1_000_000}))
    try:
        conn = agent.amqp.openconnection("amqps://race.example", lambda e, d: None)
        sender = conn.opensession().opensender("/race/cancel")
        assert agent.run_until(sender.isopen, 5)
        agent.start()
        message = agent.amqp.createmessage("x")
        transfers = [sender.createtransfer(message) for _ in range(500)]
        for transfer in transfers:
            transfer.sendasync()
            transfer.cancel()  # races the dispatcher confirming it
        done = threading.Event()
        agent.call_soon(done.set)
        assert done.wait(10)
        agent.stop()
        assert sender._core.in_backend == 0
    finally:
        agent.close()


def _owned_state(handler: Any) -> dict[str, Any]:
    """A copy of every container the reactor thread owns in *handler*."""
    return {name: copy.copy(value) for name, value in vars(handler).items()
            if isinstance(value, set | dict | list | deque)}


def test_amqp_cancel_leaves_reactor_state_to_the_reactor() -> None:
    from bridge.backends.amqp.backend import AMQPBackend
    from tests.support.contexts import backend_context

    class Events:
        def __getattr__(self, name: str) -> Any:
            return lambda *args: None

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks AMQP
    port = silent.getsockname()[1]
    backend = AMQPBackend(backend_context(Settings(backend="amqp"), url=f"amqp://127.0.0.1:{port}",
                                          events=Events()))
    backend.open()  # a reactor thread waiting for the peer's open frame: enough to hold it
    handler = backend._handler
    reactor = backend._reactor
    assert reactor is not None
    busy, release = threading.Event(), threading.Event()
    reactor.submit(lambda: (busy.set(), release.wait(10)))
    try:
        assert busy.wait(5)  # the reactor thread is inside that command
        before = _owned_state(handler)

        class Transfer:
            id = 12345
            cancelled = True
            link: Any = None
            message: Any = None

        backend.cancel(Transfer())  # a user thread, while the reactor is busy
        assert _owned_state(handler) == before
    finally:
        release.set()
        backend.close()
        assert backend.wait_closed(10)
        silent.close()
