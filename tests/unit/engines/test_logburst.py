"""BurstLog: the first few warnings of a window as they come, the rest as one count."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bridge.engines.logburst import BurstLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.scheduled: list[tuple[float, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def schedule(self, delay: float, action: Callable[[], None]) -> None:
        self.scheduled.append((delay, action))


@pytest.mark.parametrize(("events", "limit", "shown", "summary"), [
    (3, 5, 3, None),
    (5, 5, 5, None),
    (6, 5, 5, "lost: 1 more like it in the last 10 s"),
    (10_000, 5, 5, "lost: 9995 more like it in the last 10 s"),
])
def test_a_burst_is_a_few_lines_and_a_count(caplog: pytest.LogCaptureFixture, events: int,
                                           limit: int, shown: int, summary: str | None) -> None:
    clock = Clock()
    burst = BurstLog(logging.getLogger("t.burst"), "lost", limit=limit, window=10.0,
                     clock=clock, schedule=clock.schedule)
    with caplog.at_level(logging.WARNING, "t.burst"):
        for n in range(events):
            burst.warning("connection %d lost", n)
        assert [r.getMessage() for r in caplog.records] == \
            [f"connection {n} lost" for n in range(shown)]
        assert len(clock.scheduled) == (1 if summary else 0)
        for delay, action in clock.scheduled:
            assert delay == pytest.approx(10.0)
            action()
        tail = [r.getMessage() for r in caplog.records[shown:]]
        assert tail == ([summary] if summary else [])


def test_a_new_window_logs_again(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    burst = BurstLog(logging.getLogger("t.burst2"), "lost", limit=1, window=10.0,
                     clock=clock, schedule=clock.schedule)
    with caplog.at_level(logging.WARNING, "t.burst2"):
        burst.warning("a")
        burst.warning("b")  # held
        clock.now += 10.0
        burst.warning("c")
        assert [r.getMessage() for r in caplog.records] == ["a", "c"]
        clock.scheduled[0][1]()
        assert caplog.records[-1].getMessage() == "lost: 1 more like it in the last 10 s"
