"""What a codec had to drop or guess while decoding one message, shared by the backends' codecs.

Decoding functions call `note` for each problem; a receiver wraps one decode in
`collect_problems` and reports what was collected (a log line, a counter). Collection is per
thread and bounded, so hostile input cannot grow it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

MAX_PROBLEMS = 8  # per message: enough to say what is wrong, bounded for hostile input
_current = threading.local()


@contextlib.contextmanager
def collect_problems() -> Iterator[list[str]]:
    """Collect, on this thread, the problems noted inside the ``with`` block."""
    found: list[str] = []
    previous = getattr(_current, "found", None)
    _current.found = found
    try:
        yield found
    finally:
        _current.found = previous


def note(text: str) -> None:
    """Record one problem if a collection is active on this thread (else nothing)."""
    found = getattr(_current, "found", None)
    if found is not None and len(found) < MAX_PROBLEMS:
        found.append(text)
