"""Connection pacing: at most so many connection attempts per second in this process.

IoT Hub throttles new device connections (about 100 per second per unit); ten thousand agents
that connect at once - at start, or all reconnecting after a broker restart - would be refused
in bulk and retry in bulk. Every connect attempt of the network loops asks the process's pacer
for its slot (`ConnectPacer.delay`): slots are 1/rate apart, each moved by a random jitter of
up to half a slot, so attempts are spread evenly instead of in bursts. Without a rate
(the default outside `bridge fleet`) there is no delay.
"""

from __future__ import annotations

import random
import threading
import time


class ConnectPacer:
    def __init__(self, rate: float | None = None, jitter: float = 0.5) -> None:
        self.rate = rate
        self.jitter = jitter
        self._next = 0.0
        self._lock = threading.Lock()

    def configure(self, rate: float | None, jitter: float = 0.5) -> None:
        with self._lock:
            self.rate = rate if rate and rate > 0 else None
            self.jitter = jitter
            self._next = 0.0

    def delay(self) -> float:
        """Seconds the caller should wait before its attempt (its slot is taken)."""
        rate = self.rate
        if rate is None:
            return 0.0
        gap = 1.0 / rate
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + gap
        return max(0.0, slot - now + random.uniform(0.0, self.jitter * gap))


_pacer = ConnectPacer()


def connect_pacer() -> ConnectPacer:
    """The process's pacer (unlimited until configured)."""
    return _pacer
