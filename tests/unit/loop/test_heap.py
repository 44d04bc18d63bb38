"""freeze_heap: what is alive is frozen; thresholds replaced only while they are the defaults."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bridge.loop.heap import CPYTHON_DEFAULT_THRESHOLDS, FLEET_THRESHOLDS, freeze_heap


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_objects_alive_now_are_frozen_and_later_ones_are_not() -> None:
    gc.set_threshold(*CPYTHON_DEFAULT_THRESHOLDS)
    gc.unfreeze()
    kept = [[n] for n in range(1000)]
    freeze_heap()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)
    later = [[n] for n in range(1000)]
    assert gc.get_freeze_count() == frozen
    assert gc.is_tracked(later[0])
    assert gc.get_threshold() == FLEET_THRESHOLDS


@pytest.mark.parametrize(("before", "asked", "after"), [
    (CPYTHON_DEFAULT_THRESHOLDS, FLEET_THRESHOLDS, FLEET_THRESHOLDS),
    ((5000, 10, 10), FLEET_THRESHOLDS, (5000, 10, 10)),  # the process tuned its own: kept
    (CPYTHON_DEFAULT_THRESHOLDS, None, CPYTHON_DEFAULT_THRESHOLDS),
])
def test_thresholds_change_only_while_they_are_the_defaults(
        before: tuple[int, int, int], asked: tuple[int, int, int] | None,
        after: tuple[int, int, int]) -> None:
    gc.set_threshold(*before)
    freeze_heap(asked)
    assert gc.get_threshold() == after
