"""The network loops: readiness callbacks, one tidy per turn, more descriptors than select()
can take, and failures that are told to the connections they hit."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from bridge.loop.network import READ, LoopPool, NetworkLoop


@pytest.fixture
def loop() -> Iterator[NetworkLoop]:
    started = NetworkLoop("test-net").start()
    yield started
    started.stop()
    assert started.join(5)


class Member:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.failed = threading.Event()

    def loop_failed(self, detail: str) -> None:
        self.failures.append(detail)
        self.failed.set()


def test_a_ready_socket_calls_its_handler_and_a_tidy_follows_once(loop: NetworkLoop) -> None:
    ours, theirs = socket.socketpair()
    calls: list[str] = []
    done = threading.Event()

    def on_ready(mask: int) -> None:
        calls.append("read" if mask & READ else "other")
        ours.recv(100)
        loop.tidy(1, lambda: (calls.append("tidy"), done.set()))
        loop.tidy(1, lambda: (calls.append("tidy"), done.set()))  # same key: once

    loop.call(loop.register, ours, READ, on_ready)
    theirs.send(b"x")
    assert done.wait(5)
    assert calls == ["read", "tidy"]
    loop.call(loop.unregister, ours)
    ours.close()
    theirs.close()


def test_one_loop_serves_more_descriptors_than_select_can(loop: NetworkLoop) -> None:
    pairs = [socket.socketpair() for _ in range(1200)]  # 2400 descriptors, past FD_SETSIZE
    got = threading.Semaphore(0)

    def handler(sock: socket.socket) -> object:
        def on_ready(mask: int) -> None:
            sock.recv(10)
            got.release()
        return on_ready

    try:
        for ours, _ in pairs:
            loop.call(loop.register, ours, READ, handler(ours))
        assert max(ours.fileno() for ours, _ in pairs) > 1024
        for _, theirs in pairs:
            theirs.send(b"!")
        for _ in pairs:
            assert got.acquire(timeout=10)
    finally:
        for ours, _ in pairs:
            loop.call(loop.unregister, ours)
        done = threading.Event()
        loop.call(done.set)
        assert done.wait(5)
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def test_a_failing_handler_ends_its_member_only(loop: NetworkLoop) -> None:
    bad, good = Member(), Member()
    loop.add_member(bad)
    loop.add_member(good)
    ours, theirs = socket.socketpair()

    class Failing:
        def loop_failed(self, detail: str) -> None:
            bad.loop_failed(detail)

        def on_ready(self, mask: int) -> None:
            raise RuntimeError("a bug in a handler")

    failing = Failing()
    loop.call(loop.register, ours, READ, failing.on_ready)
    theirs.send(b"x")
    assert bad.failed.wait(5)
    assert "network handler failed" in bad.failures[0] and good.failures == []
    still = threading.Event()
    loop.call(still.set)
    assert still.wait(5)  # the loop goes on
    ours.close()
    theirs.close()


def test_a_crashed_loop_tells_every_member(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = NetworkLoop("test-crash")
    members = [Member() for _ in range(3)]
    for member in members:
        loop.add_member(member)

    def broken() -> None:
        raise MemoryError("the loop itself broke")

    monkeypatch.setattr(loop, "_run_tidy", broken)
    loop.start()
    assert all(member.failed.wait(5) for member in members)
    assert all("the network loop test-crash stopped" in m.failures[0] for m in members)
    assert loop.join(5)
    assert loop.call(lambda: None) is False  # ended: nothing will run


def test_members_spread_over_a_fixed_number_of_loops() -> None:
    pool = LoopPool(3, name="test-spread")
    members = [Member() for _ in range(30)]
    placed = [pool.place(member) for member in members]
    try:
        assert len({id(loop) for loop in placed}) == 3
        assert sorted(loop.load for loop in pool.loops) == [10, 10, 10]
    finally:
        for loop in pool.loops:
            loop.stop()
