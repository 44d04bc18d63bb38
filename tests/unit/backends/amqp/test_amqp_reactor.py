"""bridge.backends.amqp.reactor: the reactor thread and its command queue (no network)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import pytest

from bridge.backends.amqp.backend import AMQPBackend
from bridge.backends.amqp.reactor import CommandQueue, Deferred, Reactor
from bridge.settings import Settings
from tests.support.contexts import backend_context


class Idle:
    """A container handler that does nothing: the reactor only runs commands."""


def _reactor(handler: Any = None, crashes: list[BaseException] | None = None) -> Reactor:
    sink = crashes if crashes is not None else []
    return Reactor(handler or Idle(), "test-reactor", sink.append)


def test_commands_run_in_order_on_the_reactor_thread() -> None:
    reactor = _reactor()
    reactor.start()
    seen: list[tuple[int, str]] = []
    for i in range(100):
        assert reactor.submit(lambda i=i: seen.append((i, threading.current_thread().name)))
    assert reactor.submit(reactor.finish)
    assert reactor.join(5)
    assert [i for i, _ in seen] == list(range(100))
    assert {name for _, name in seen} == {"test-reactor"}
    assert reactor.submit(lambda: None) is False  # finished: nothing will run it


def test_a_failing_command_is_logged_and_the_next_ones_run(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    reactor = _reactor()
    reactor.start()
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="bridge.backends.amqp"):
        reactor.submit(boom)
        reactor.submit(lambda: ran.append("after"))
        reactor.submit(reactor.finish)
        assert reactor.join(5)
    assert ran == ["after"]
    assert "boom" in caplog.text


def test_submit_never_blocks_and_wakes_the_reactor_once_per_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reactor = _reactor()
    reactor.start()
    busy, release = threading.Event(), threading.Event()
    reactor.submit(lambda: (busy.set(), release.wait(10)))
    assert busy.wait(5)  # the reactor thread is now stuck in a command
    writes: list[int] = []
    core = reactor.commands.core
    real_wake = core.wake_now

    def counting_wake() -> None:  # every wake-up byte written for the reactor
        writes.append(1)
        real_wake()

    monkeypatch.setattr(core, "wake_now", counting_wake)
    count: list[int] = []
    started = time.monotonic()
    for i in range(100_000):  # far more than a pipe holds: one byte each would block
        reactor.submit(count.append, i)
    elapsed = time.monotonic() - started
    monkeypatch.undo()
    assert elapsed < 5 and len(writes) <= 1
    release.set()
    reactor.submit(reactor.finish)
    assert reactor.join(10)
    assert count == list(range(100_000))


def _pipe_bytes(queue: CommandQueue) -> int:
    """Wake-up bytes waiting in *queue*'s pipe (read and counted)."""
    try:
        return len(os.read(queue.fileno(), 4096))
    except BlockingIOError:
        return 0


def test_deferred_commands_wake_the_reactor_only_when_a_batch_is_full() -> None:
    queue = CommandQueue()
    try:
        results = [queue.submit_deferred(lambda: None, batch=4) for _ in range(3)]
        assert results == [Deferred.FIRST, Deferred.JOINED, Deferred.JOINED]
        assert _pipe_bytes(queue) == 0  # three wait without a wake-up
        assert queue.submit_deferred(lambda: None, batch=4) is Deferred.JOINED
        assert _pipe_bytes(queue) == 1  # the fourth fills the batch: one wake-up
        # until the reactor takes them, more commands ride along with that wake-up
        assert queue.submit_deferred(lambda: None, batch=4) is Deferred.JOINED
        queue.kick()
        assert _pipe_bytes(queue) == 0
    finally:
        queue.close()


def test_kick_wakes_the_reactor_for_a_partial_batch_once() -> None:
    queue = CommandQueue()
    try:
        assert queue.submit_deferred(lambda: None, batch=16) is Deferred.FIRST
        queue.kick()
        queue.kick()
        assert _pipe_bytes(queue) == 1
    finally:
        queue.close()


def test_a_plain_command_carries_the_deferred_ones() -> None:
    reactor = _reactor()
    reactor.start()
    ran: list[str] = []
    assert reactor.submit_deferred(ran.append, "settle-1", batch=16) is Deferred.FIRST
    assert reactor.submit_deferred(ran.append, "settle-2", batch=16) is Deferred.JOINED
    done = threading.Event()
    assert reactor.submit(lambda: (ran.append("plain"), done.set()))
    assert done.wait(5)
    assert ran == ["settle-1", "settle-2", "plain"]  # in submission order, one wake-up
    # the next deferred command opens a new batch
    assert reactor.submit_deferred(ran.append, "settle-3", batch=16) is Deferred.FIRST
    reactor.kick()
    reactor.submit(reactor.finish)
    assert reactor.join(5)
    assert ran[-1] == "settle-3"
    assert reactor.submit_deferred(ran.append, "late", batch=16) is Deferred.REFUSED


def test_a_crashing_handler_is_reported_and_the_thread_ends() -> None:
    class Broken:
        def on_reactor_init(self, event: Any) -> None:
            raise ValueError("handler bug")

    crashes: list[BaseException] = []
    reactor = _reactor(Broken(), crashes)
    reactor.start()
    assert reactor.join(5)
    assert [type(exc) for exc in crashes] == [ValueError]
    assert reactor.submit(lambda: None) is False


def test_join_before_start_is_immediate() -> None:
    assert _reactor().join(0.01)


class Events:
    """A BackendEvents sink that records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


def _backend(url: str, **amqp: Any) -> tuple[AMQPBackend, Events]:
    events = Events()
    context = backend_context(Settings(backend="amqp", amqp=amqp), url=url, events=events)
    return AMQPBackend(context), events


def test_an_unusable_url_is_reported_by_open_without_a_thread() -> None:
    backend, events = _backend("mqtt://broker:1883")
    before = threading.active_count()
    backend.open()
    assert events.calls == [("connection_error", (
        "amqp:invalid-field: unsupported URL scheme 'mqtt'; use amqp:// or amqps://",))]
    assert threading.active_count() == before
    backend.close()
    assert backend.wait_closed(0.01)


@pytest.fixture
def silent_url() -> Any:
    """A local listener that never answers: the connection stays 'connecting'."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"amqp://127.0.0.1:{server.getsockname()[1]}"


def test_close_while_connecting_ends_the_thread_quietly(silent_url: str) -> None:
    backend, events = _backend(silent_url)
    backend.open()
    backend.close()
    assert backend.wait_closed(5)
    assert events.calls == []  # the contract closed it: nothing to report


def test_commands_after_the_connection_ended_do_not_raise(silent_url: str) -> None:
    backend, events = _backend(silent_url)
    backend.open()
    backend.close()
    assert backend.wait_closed(5)

    class Transfer:
        id = 1
        link = None

    backend.send(Transfer())  # type: ignore[arg-type]
    # nothing reported for the transfer: the connection's end already was (a durable-outbox
    # row must stay to be resent, not be deleted as if the broker had refused the message)
    assert events.calls == []
