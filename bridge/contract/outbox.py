"""The durable outbox: sends survive a backend outage and a process restart.

When ``outbox.path`` is set, every ``sendasync`` first stores the message in a SQLite file; the row
is deleted once the far end confirmed the transfer. Rows left behind (the connection was lost, the
process was killed) are sent again, oldest first, the next time this agent opens a sender on the
same path — in this process or after a restart. A replayed transfer has no callback (the callback
died with the process). Delivery is therefore at least once; with ``outbox.tag_property`` set,
each message carries a unique id in that property so a consumer can count or drop duplicates.

The outbox is bounded by message count and bytes. Overflow policy: the transfer that does not fit
is refused — it fails at once with ``SENDER_ERROR`` ("outbox full") and nothing already stored is
dropped. Only ``outbox.window`` transfers per sender are handed to the backend at a time, so a
long backlog never exhausts a protocol's own limits (MQTT's 65,535 packet ids).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from bridge.contract.message import BodyKind, Message

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    body_type TEXT NOT NULL,
    properties TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_path ON outbox (agent_id, path, id);
"""


def _encode_body(message: Message) -> tuple[bytes, str]:
    body = message.body()
    if isinstance(body, bytes):
        return body, "bytes"
    if isinstance(body, str):
        return body.encode("utf-8"), "str"
    # a received AMQP value being forwarded (list, dict, number): JSON keeps it
    return json.dumps(body).encode("utf-8"), "json"


def _decode_body(raw: bytes, body_type: str) -> object:
    if body_type == "bytes":
        return bytes(raw)
    if body_type == "str":
        return bytes(raw).decode("utf-8")
    return json.loads(bytes(raw).decode("utf-8"))


class OutboxFull(Exception):
    """The message does not fit in the outbox's bounds."""


class Outbox:
    """A SQLite-backed store of unconfirmed sends, shared by every backend. Thread-safe."""

    def __init__(self, path: Path, agent_id: str, max_messages: int, max_bytes: int) -> None:
        self.path = path
        self.agent_id = agent_id
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # WAL + NORMAL: a committed row survives the process being killed (not a power cut)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox "
                               "WHERE agent_id = ?", (agent_id,)).fetchone()
        self.count, self.bytes = int(row[0]), int(row[1])

    def put(self, path: str, message: Message) -> int:
        """Store *message* for *path*; its row id. `OutboxFull` if it does not fit."""
        body, body_type = _encode_body(message)
        properties = json.dumps(message.properties())
        size = len(body) + len(properties) + len(path)
        with self._lock:
            if self.count + 1 > self.max_messages or self.bytes + size > self.max_bytes:
                raise OutboxFull(f"outbox full ({self.count} messages, {self.bytes} bytes; "
                                 f"limits {self.max_messages} messages, {self.max_bytes} bytes)")
            cursor = self._db.execute(
                "INSERT INTO outbox (agent_id, path, kind, body, body_type, properties, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.agent_id, path, message.kind.value, body, body_type, properties, size))
            self.count += 1
            self.bytes += size
            return int(cursor.lastrowid or 0)

    def delete(self, row_id: int) -> None:
        with self._lock:
            found = self._db.execute("SELECT size FROM outbox WHERE id = ?", (row_id,)).fetchone()
            if found is None:
                return
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            self.count -= 1
            self.bytes -= int(found[0])

    def pending(self, path: str, exclude: set[int]) -> list[tuple[int, Message]]:
        """Stored messages for *path*, oldest first, except the rows in *exclude*."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, body, body_type, properties FROM outbox "
                "WHERE agent_id = ? AND path = ? ORDER BY id", (self.agent_id, path)).fetchall()
        return [(row_id, Message(_decode_body(body, body_type), json.loads(properties),
                                 BodyKind(kind)))
                for row_id, kind, body, body_type, properties in rows if row_id not in exclude]

    def close(self) -> None:
        with self._lock:
            self._db.close()
