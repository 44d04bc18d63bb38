"""`Ledger`: the relay's durable record of what targets confirmed (``relay.ledger``).

An append-only text file, one record a line: ``S <key>`` when a message is sent to its target,
``C <key>`` when the target confirmed it. The relay writes a batch's ``C`` records (to the
operating system: a process kill cannot lose them) *before* it settles the batch's source
deliveries, so a relay killed and restarted finds every message whose confirmation it recorded
and settles it again at the source without publishing it a second time. What it sent and had
no confirmation for (``S`` without ``C``) was in flight at the kill: it is sent again, and
counted, as the only duplicates left.

Bounded: the newest *capacity* confirmed keys are kept; once the file holds twice that many
records it is rewritten (a temporary file renamed over it) with just those and the keys in
flight. A torn last line (a kill in the middle of a write) is ignored.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import TextIO


class Ledger:
    def __init__(self, path: Path, capacity: int = 100_000, fsync: bool = False) -> None:
        self.path = Path(path)
        self.capacity = capacity
        self.fsync = fsync
        self.confirmed: OrderedDict[str, None] = OrderedDict()
        self.in_flight: set[str] = set()
        self._buffer: list[str] = []
        self._records = 0
        self._load()
        # sent but not confirmed when the last run stopped: resending them may duplicate
        self.unconfirmed_at_start: frozenset[str] = frozenset(self.in_flight)
        self.in_flight.clear()
        self._file: TextIO = self._compact()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            kind, _, key = line.partition(" ")
            if not key or " " in key:
                continue  # a torn line
            if kind == "S":
                if key not in self.confirmed:
                    self.in_flight.add(key)
            elif kind == "C":
                self.in_flight.discard(key)
                self._confirm(key)

    def _confirm(self, key: str) -> None:
        self.confirmed[key] = None
        self.confirmed.move_to_end(key)
        if len(self.confirmed) > self.capacity:
            self.confirmed.popitem(last=False)

    def _compact(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as out:
            out.writelines(f"C {key}\n" for key in self.confirmed)
            out.writelines(f"S {key}\n" for key in self.in_flight)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        self._records = len(self.confirmed) + len(self.in_flight)
        return self.path.open("a", encoding="utf-8")

    # -- the relay's calls (its dispatcher thread) ----------------------------------------------
    def is_confirmed(self, key: str) -> bool:
        return key in self.confirmed

    def sent(self, key: str) -> None:
        self.in_flight.add(key)
        self._buffer.append(f"S {key}\n")

    def confirm(self, key: str) -> None:
        self.in_flight.discard(key)
        self._confirm(key)
        self._buffer.append(f"C {key}\n")

    def flush(self) -> None:
        """Write what was recorded since the last flush (before settling at the source)."""
        if not self._buffer:
            return
        self._file.write("".join(self._buffer))
        self._records += len(self._buffer)
        self._buffer.clear()
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        if self._records > 2 * self.capacity:
            self._file.close()
            self._file = self._compact()

    def close(self) -> None:
        self.flush()
        self._file.close()
