"""An epoll selector for proton's container: many connections on one reactor thread.

proton's pure-Python IO (``proton._io.IO.Selector``) waits with ``select()`` - at most 1024
descriptors in a process (FD_SETSIZE), so a container serving a fleet would fail past a few
hundred connections - and rescans every selectable's deadline on each update and each wait.
`EpollSelector` has the same interface on `selectors` (epoll on Linux): updates are O(1),
deadlines wait in a heap (stale entries skipped when they surface), and a wait costs what is
ready, not what is registered. A container gets one with `install`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import time
from typing import Any

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class EpollSelector:
    """proton's ``IO.Selector`` protocol: add, remove, update, select, selectables."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._selectables: set[Any] = set()
        self._events: dict[Any, int] = {}
        self._deadlines: list[tuple[float, int, Any]] = []
        self._pushed: dict[Any, float] = {}  # the deadline last put in the heap, per selectable
        self._seq = itertools.count()

    @property
    def selectables(self) -> int:
        return len(self._selectables)

    def add(self, selectable: Any) -> None:
        self._selectables.add(selectable)
        self.update(selectable)

    def remove(self, selectable: Any) -> None:
        self._selectables.discard(selectable)
        self._pushed.pop(selectable, None)
        if self._events.pop(selectable, 0):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(selectable)

    def update(self, selectable: Any) -> None:
        if selectable not in self._selectables:
            return
        events = (_READ if selectable.reading else 0) | (_WRITE if selectable.writing else 0)
        current = self._events.get(selectable, 0)
        if events != current:
            try:
                if not current:
                    self._register(selectable, events)
                elif not events:
                    self._selector.unregister(selectable)
                else:
                    self._selector.modify(selectable, events, selectable)
            except (ValueError, OSError):  # no descriptor (a timer) or already closed
                events = 0
            if events:
                self._events[selectable] = events
            else:
                self._events.pop(selectable, None)
        deadline = selectable.deadline
        if deadline and self._pushed.get(selectable) != deadline:
            # (updates come with every transport event: only a new deadline is pushed)
            self._pushed[selectable] = deadline
            heapq.heappush(self._deadlines, (deadline, next(self._seq), selectable))

    def _register(self, selectable: Any, events: int) -> None:
        if selectable.fileno() < 0:
            raise ValueError("no descriptor")
        try:
            self._selector.register(selectable, events, selectable)
        except KeyError:
            # the descriptor is still registered for a closed socket whose number was reused
            stale = self._selector.get_map().get(selectable.fileno())
            if stale is None or stale.fileobj is selectable:
                raise
            self._selector.unregister(stale.fileobj)
            self._events.pop(stale.fileobj, None)
            self._selector.register(selectable, events, selectable)

    def _next_deadline(self) -> float | None:
        heap = self._deadlines
        while heap:
            deadline, _, selectable = heap[0]
            if selectable in self._selectables and selectable.deadline == deadline:
                return deadline
            heapq.heappop(heap)  # stale: removed, or its deadline moved
        return None

    def select(self, timeout: float | None) -> tuple[list[Any], list[Any], list[Any]]:
        now = time.time()  # proton's deadlines are wall-clock seconds
        deadline = self._next_deadline()
        wait = timeout
        if deadline is not None:
            until = max(0.0, deadline - now)
            wait = until if wait is None else min(wait, until)
        if wait is not None:
            wait = max(0.0, wait)
        ready = self._selector.select(wait) if self._events else _sleep(wait)
        readable = [key.data for key, mask in ready if mask & _READ]
        writable = [key.data for key, mask in ready if mask & _WRITE]
        now = time.time()
        expired: list[Any] = []
        seen: set[int] = set()
        heap = self._deadlines
        while heap and heap[0][0] < now:
            deadline, _, selectable = heapq.heappop(heap)
            if selectable in self._selectables and selectable.deadline == deadline \
                    and id(selectable) not in seen:
                seen.add(id(selectable))
                self._pushed.pop(selectable, None)  # the same deadline again is news now
                expired.append(selectable)
        return readable, writable, expired


def _sleep(wait: float | None) -> list[Any]:
    if wait:
        time.sleep(wait)
    return []


def install(container: Any) -> None:
    """Give *container* (not started yet) an `EpollSelector` instead of proton's own."""
    io_handler = getattr(container.global_handler, "base", container.global_handler)
    io_handler._selector = EpollSelector()
