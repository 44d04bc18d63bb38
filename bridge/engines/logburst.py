"""One warning per event for a few connections, a count for the rest: logs of a fleet stay readable.

A broker restart under 10,000 connected agents made every connection log "MQTT connection lost
... reconnecting" - 10,000 lines in a second that buried everything else. A `BurstLog` logs the
first `limit` records of a `window` (seconds) as they come; the rest of that window are counted
and summed up in one line when it ends ("... 9,995 more like it in the last 10 s").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class BurstLog:
    """Rate-limited warnings of one kind (thread-safe: network loops share one)."""

    def __init__(self, logger: logging.Logger, what: str, *, limit: int = 5,
                 window: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 schedule: Callable[[float, Callable[[], None]], object] | None = None) -> None:
        self.logger, self.what, self.limit, self.window = logger, what, limit, window
        self._clock = clock
        self._schedule = schedule or _daemon_timer
        self._lock = threading.Lock()
        self._started = -float("inf")
        self._logged = 0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        with self._lock:
            now = self._clock()
            if now - self._started >= self.window:
                self._started, self._logged = now, 0
            if self._logged < self.limit:
                self._logged += 1
                suppress = False
            else:
                suppress = True
                self._suppressed += 1
                first = self._suppressed == 1
        if not suppress:
            self.logger.warning(message, *args)
        elif first:
            self._schedule(self._started + self.window - now, self.flush)

    def flush(self) -> None:
        """Log the count of what was held back (the timer calls it when the window ends)."""
        with self._lock:
            held, self._suppressed = self._suppressed, 0
        if held:
            self.logger.warning("%s: %d more like it in the last %.0f s", self.what, held,
                                self.window)


def _daemon_timer(delay: float, action: Callable[[], None]) -> object:
    timer = threading.Timer(max(0.0, delay), action)
    timer.daemon = True
    timer.start()
    return timer
