"""The durable outbox across a kill -9, and past MQTT's 65,535 packet ids.

1. An agent process (``bridge run outbox_agent.py``) streams numbered messages to a private
   Mosquitto through the outbox and is killed with SIGKILL mid-stream. Started again with the
   same agent id and outbox file, it first resends every row the first process stored and had
   not seen confirmed, then continues the stream. A raw persistent subscriber must end up with
   every message; duplicates (confirmed by the broker but killed before the row was deleted,
   or stored just before the kill and sent again by the second run) are counted.
2. With the broker down, more than 65,535 messages are queued in the outbox of one sender; once
   the broker is back they are all delivered. Only ``outbox.window`` transfers are handed to the
   MQTT backend at a time, so paho never needs more packet ids than it has. The count is
   ``BRIDGE_TEST_OUTBOX_COUNT`` (default 70,000).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge import Agent
from bridge.backends.mqtt.backend import live_backends
from tests.reliability.conftest import Subscriber, signal_on, wait_until
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCRIPT = Path(__file__).with_name("outbox_agent.py")
BRIDGE = Path(sys.executable).with_name("bridge")
TAG = "x-msg-id"
STREAM = 4000
KILL_AFTER = 1500  # confirmations seen before the kill
MANY = int(os.environ.get("BRIDGE_TEST_OUTBOX_COUNT", "70000"))


class AgentProcess:
    """One ``bridge run`` of the outbox agent; stdout lines are collected as they come."""

    def __init__(self, env: dict[str, str], start: int, path: str) -> None:
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.process = subprocess.Popen(
            [str(BRIDGE), "run", str(SCRIPT), str(start), str(STREAM), path], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.process.stdout, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.stderr),
                         daemon=True).start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self.cond:
                into.append(line.rstrip())
                self.cond.notify_all()

    def last(self, word: str) -> int:
        with self.cond:
            found = [int(line.split()[1]) for line in self.lines if line.startswith(word + " ")]
        return found[-1] if found else 0

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(15)


def _rows(db: Path, agent_id: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE agent_id = ?",
                                (agent_id,)).fetchone()[0])


def test_messages_stored_before_a_kill_9_are_delivered_after_the_restart(
        mosquitto: Callable[..., Mosquitto], subscriber: Callable[..., Subscriber],
        tmp_path: Path, record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto(persistence=False)
    path = f"/outbox/{uuid.uuid4().hex[:8]}"
    raw = subscriber(broker.port, path.lstrip("/"), tag=TAG)
    agent_id = f"outbox-kill-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "outbox.db"
    env = {**os.environ, "BRIDGE_BACKEND": "mqtt", "BRIDGE_AGENT_ID": agent_id,
           "BRIDGE_MQTT__URL": broker.url, "BRIDGE_OUTBOX__PATH": str(db),
           "BRIDGE_OUTBOX__TAG_PROPERTY": TAG, "BRIDGE_OUTBOX__WINDOW": "200",
           "BRIDGE_LOG_LEVEL": "INFO"}
    env.pop("BRIDGE_CONFIG", None)

    first = AgentProcess(env, 0, path)
    try:
        assert first.wait(lambda: first.last("confirmed") >= KILL_AFTER, 60), \
            (first.lines[-5:], first.stderr[-5:])
        first.process.send_signal(signal.SIGKILL)  # mid-stream: no goodbye, no cleanup
        assert first.process.wait(10) == -signal.SIGKILL
    finally:
        first.stop(signal.SIGKILL)
    queued = first.last("queued")
    confirmed_before = first.last("confirmed")
    stored = _rows(db, agent_id)
    assert 0 < queued < STREAM, "not killed mid-stream"
    assert stored > 0, "nothing was left in the outbox: the kill came too late to matter"

    second = AgentProcess(env, queued, path)  # same agent id, same outbox file
    try:
        everything = {f"m{n:05d}".encode() for n in range(STREAM)}
        assert raw.wait(lambda: everything <= set(raw.bodies), 60), (
            f"{len(everything - set(raw.bodies))} missing; {second.stderr[-5:]}")
        assert wait_until(lambda: _rows(db, agent_id) == 0, 15), "outbox not emptied"
    finally:
        assert second.stop() == 0
    resent = [int(m) for line in second.stderr
              for m in re.findall(r"resending (\d+) message", line)]

    assert set(raw.bodies) == everything  # nothing lost, nothing invented
    duplicates = raw.duplicates()
    # a duplicate body repeats the outbox id of a stored row (resent after the kill) unless the
    # first process was killed between storing a message and printing "queued"
    tag_duplicates = sum(count - 1 for count in raw.tags.values())
    assert sum(resent) >= stored  # every row left by the kill was resent
    record_property("duplicates", duplicates)
    print(f"\nkill -9 after {confirmed_before} confirmations ({queued} of {STREAM} queued, "
          f"{stored} rows left in the outbox); the restart resent {sum(resent)}; "
          f"{duplicates} duplicates at the subscriber ({tag_duplicates} by outbox id)")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_more_than_65535_queued_messages_are_delivered(
        mosquitto: Callable[..., Mosquitto], subscriber: Callable[..., Subscriber],
        agents: Callable[..., Agent], tmp_path: Path,
        record_property: Callable[[str, Any], None]) -> None:
    broker = mosquitto(persistence=True)
    path = f"/many/{uuid.uuid4().hex[:8]}"
    raw = subscriber(broker.port, path.lstrip("/"))
    agent = agents(backend="mqtt", mqtt={
        "url": broker.url, "reconnect": "auto", "reconnect_min_delay": 0.05,
        "reconnect_max_delay": 0.2, "max_inflight": 500},
        outbox={"path": str(tmp_path / "outbox.db"), "window": 1000,
                "max_messages": MANY + 10})
    amqp = agent.amqp
    conn = amqp.openconnection("amqps://hub", lambda e, d: None)
    sender = conn.opensession().opensender(path)
    assert agent.run_until(sender.isopen, 10)
    (backend,) = live_backends(agent.settings.agent_id)
    down = signal_on(backend, "on_down")
    broker.stop()  # SIGTERM: the subscriber's session is kept for the restart
    assert down.wait(10)

    started = time.monotonic()
    for n in range(MANY):
        sender.createtransfer(amqp.createmessage(str(n))).sendasync()
    queue_seconds = time.monotonic() - started
    outbox = agent._rt.outbox
    assert outbox is not None and outbox.count == MANY  # all stored, none refused
    assert len(backend.outbound.waiting) <= 1000  # the backend holds one window, not 70,000

    up = signal_on(backend, "on_up")
    broker.start()
    assert up.wait(15)
    started = time.monotonic()
    assert agent.run_until(lambda: outbox.count == 0, 180), f"{outbox.count} left"
    assert raw.wait(lambda: len(raw.bodies) == MANY, 60), f"{MANY - len(raw.bodies)} missing"
    drain_seconds = time.monotonic() - started
    assert set(raw.bodies) == {str(n).encode() for n in range(MANY)}
    assert backend.stats.published >= MANY > 65_535
    record_property("queue_per_second", round(MANY / queue_seconds))
    record_property("drain_per_second", round(MANY / drain_seconds))
    print(f"\n{MANY} messages: stored in the outbox in {queue_seconds:.1f} s "
          f"({MANY / queue_seconds:,.0f}/s) with the broker down; delivered in "
          f"{drain_seconds:.1f} s ({MANY / drain_seconds:,.0f}/s) once it was back; "
          f"{raw.duplicates()} duplicates")
