"""Shadow mode: counts and logs how a shadow backend diverges from the primary one.

The router hands every transfer on a shadowed route to the shadow backend too, and opens a shadow
receiver beside each primary receiver. Only the primary's outcome reaches user callbacks; this
module records the differences: shadow failures, transfers the shadow could not take, which side
confirmed faster, and messages whose body or properties differ between the primary and the shadow
receiver (paired in arrival order per link).

The report is available in-process (`report_for`) and, when ``shadow.report_file`` is set, written
there as JSON for ``bridge shadow-report``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bridge.contract.backend import TransferHandle
    from bridge.contract.message import Message
    from bridge.migration.settings import ShadowSettings

log = logging.getLogger("bridge.migration.shadow")

MAX_EXAMPLES = 10


@dataclass
class RouteDivergence:
    """Counters of one shadowed route."""

    sent: int = 0
    primary_confirmed: int = 0
    shadow_sent: int = 0
    shadow_confirmed: int = 0
    shadow_failed: int = 0
    shadow_skipped: int = 0
    shadow_unconfirmed: int = 0
    shadow_slower: int = 0
    shadow_faster: int = 0
    primary_received: int = 0
    shadow_received: int = 0
    matched: int = 0
    mismatched: int = 0
    primary_latency_ms_total: float = 0.0
    shadow_latency_ms_total: float = 0.0
    problems: list[str] = field(default_factory=list)
    mismatch_examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def divergences(self) -> int:
        return (self.shadow_failed + self.shadow_skipped + self.shadow_unconfirmed
                + self.mismatched + len(self.problems))


def _describe(message: Message) -> dict[str, Any]:
    body = message.body()
    shown = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return {"kind": message.kind.value, "body": shown if isinstance(shown, str) else repr(shown),
            "properties": message.properties()}


class ShadowMonitor:
    """Thread-safe divergence counters for one agent."""

    def __init__(self, agent_id: str, report_file: Path | None, interval: float) -> None:
        self.agent_id = agent_id
        self.report_file = report_file
        self.interval = interval
        self._lock = threading.Lock()
        self.routes: dict[str, RouteDivergence] = {}
        self.connection_problems: list[str] = []
        # transfer id -> (route, send time, primary confirmed at, shadow confirmed at)
        self._timing: dict[int, list[Any]] = {}
        self._unpaired: dict[tuple[str, int], tuple[deque[Message], deque[Message]]] = {}
        self._last_write = 0.0

    def _route(self, route: str) -> RouteDivergence:
        found = self.routes.get(route)
        if found is None:
            found = self.routes[route] = RouteDivergence()
        return found

    # -- sends ------------------------------------------------------------------------------
    def primary_sent(self, route: str, transfer: TransferHandle, owner: int = 0) -> None:
        with self._lock:
            self._route(route).sent += 1
            # route, sent at, primary confirmed at, shadow confirmed at, shadow sent, owner
            self._timing[transfer.id] = [route, time.monotonic(), None, None, False, owner]

    def shadow_sent(self, route: str, transfer: TransferHandle) -> None:
        with self._lock:
            self._route(route).shadow_sent += 1
            timing = self._timing.get(transfer.id)
            if timing is not None:
                timing[4] = True

    def closing(self, owner: int) -> None:
        """A routed connection closes: shadow sends it never saw confirmed are divergences."""
        with self._lock:
            for transfer_id, timing in list(self._timing.items()):
                if timing[5] != owner:
                    continue
                if timing[4] and timing[3] is None:
                    self._route(timing[0]).shadow_unconfirmed += 1
                del self._timing[transfer_id]
        self.flush()

    def shadow_skipped(self, route: str) -> None:
        with self._lock:
            self._route(route).shadow_skipped += 1
        self._maybe_write()

    def primary_settled(self, route: str, transfer: TransferHandle) -> None:
        if route == "(default)":
            return
        with self._lock:
            stats = self._route(route)
            stats.primary_confirmed += 1
            self._confirm(stats, transfer, index=2)
        self._maybe_write()

    def shadow_settled(self, route: str, transfer: TransferHandle) -> None:
        with self._lock:
            stats = self._route(route)
            stats.shadow_confirmed += 1
            self._confirm(stats, transfer, index=3)
        self._maybe_write()

    def _confirm(self, stats: RouteDivergence, transfer: TransferHandle, index: int) -> None:
        timing = self._timing.get(transfer.id)
        if timing is None:
            return
        now = time.monotonic()
        timing[index] = now
        elapsed_ms = (now - timing[1]) * 1000
        if index == 2:
            stats.primary_latency_ms_total += elapsed_ms
        else:
            stats.shadow_latency_ms_total += elapsed_ms
        if timing[2] is not None and timing[3] is not None:
            if timing[3] > timing[2]:
                stats.shadow_slower += 1
            else:
                stats.shadow_faster += 1
            del self._timing[transfer.id]

    def shadow_failed(self, route: str, transfer: TransferHandle, detail: str) -> None:
        with self._lock:
            stats = self._route(route)
            stats.shadow_failed += 1
            self._timing.pop(transfer.id, None)
            self._note(stats.problems, f"transfer failed: {detail}")
        log.warning("shadow divergence on %s: transfer failed: %s", route, detail)
        self._maybe_write(force=True)

    # -- receives ---------------------------------------------------------------------------
    def primary_received(self, route: str, link_id: int, message: Message) -> None:
        self._received(route, link_id, message, primary=True)

    def shadow_received(self, route: str, link_id: int, message: Message) -> None:
        self._received(route, link_id, message, primary=False)

    def _received(self, route: str, link_id: int, message: Message, primary: bool) -> None:
        mismatch = None
        with self._lock:
            stats = self._route(route)
            if primary:
                stats.primary_received += 1
            else:
                stats.shadow_received += 1
            queues = self._unpaired.setdefault((route, link_id), (deque(), deque()))
            mine, other = (queues[0], queues[1]) if primary else (queues[1], queues[0])
            if not other:
                mine.append(message)
                return
            counterpart = other.popleft()
            primary_msg, shadow_msg = (message, counterpart) if primary else (counterpart, message)
            if primary_msg == shadow_msg:
                stats.matched += 1
            else:
                stats.mismatched += 1
                mismatch = {"primary": _describe(primary_msg), "shadow": _describe(shadow_msg)}
                self._note(stats.mismatch_examples, mismatch)
        if mismatch is not None:
            log.warning("shadow divergence on %s: primary %s != shadow %s", route,
                        mismatch["primary"], mismatch["shadow"])
            self._maybe_write(force=True)

    # -- connection-level -------------------------------------------------------------------
    def shadow_connected(self, label: str) -> None:
        log.info("shadow backend %s connected", label)

    def shadow_link_open(self, route: str) -> None:
        with self._lock:
            self._route(route)

    def shadow_problem(self, detail: str, route: str | None = None) -> None:
        with self._lock:
            target = self._route(route).problems if route else self.connection_problems
            self._note(target, detail)
        log.warning("shadow problem: %s", detail)
        self._maybe_write(force=True)

    @staticmethod
    def _note(items: list[Any], item: Any) -> None:
        if len(items) < MAX_EXAMPLES:
            items.append(item)

    # -- report -----------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        with self._lock:
            routes = {}
            for name, stats in self.routes.items():
                data = asdict(stats)
                data["divergences"] = stats.divergences
                routes[name] = data
            return {"agent_id": self.agent_id, "written_at": time.time(),
                    "connection_problems": list(self.connection_problems), "routes": routes}

    def _maybe_write(self, force: bool = False) -> None:
        if self.report_file is None:
            return
        now = time.monotonic()
        if not force and now - self._last_write < self.interval:
            return
        self._last_write = now
        self.flush()

    def flush(self) -> None:
        """Write the report file now (atomically) if one is configured."""
        if self.report_file is None:
            return
        data = json.dumps(self.report(), indent=2, sort_keys=True)
        temporary = self.report_file.with_suffix(self.report_file.suffix + ".tmp")
        try:
            self.report_file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(data, encoding="utf-8")
            temporary.replace(self.report_file)
        except OSError as exc:
            log.warning("cannot write the shadow report to %s: %s", self.report_file, exc)


_monitors: dict[str, ShadowMonitor] = {}
_monitors_lock = threading.Lock()


class _WithShadow(Protocol):
    """Settings with a ``shadow`` section (a `bridge.settings.Settings`)."""

    shadow: ShadowSettings


def monitor_for(settings: _WithShadow, agent_id: str) -> ShadowMonitor:
    """The monitor of *agent_id* (shared by its connections)."""
    with _monitors_lock:
        monitor = _monitors.get(agent_id)
        if monitor is None:
            monitor = _monitors[agent_id] = ShadowMonitor(
                agent_id, settings.shadow.report_file, settings.shadow.report_interval)
        return monitor


def report_for(agent_id: str) -> dict[str, Any] | None:
    """The current divergence report of *agent_id*, or None if it never routed a shadow."""
    with _monitors_lock:
        monitor = _monitors.get(agent_id)
    return monitor.report() if monitor is not None else None


def format_report(report: dict[str, Any]) -> str:
    """The report as lines a person reads."""
    lines = [f"shadow divergence report for agent {report.get('agent_id')!r}"]
    for problem in report.get("connection_problems", []):
        lines.append(f"  connection problem: {problem}")
    routes = report.get("routes", {})
    if not routes:
        lines.append("  no shadowed traffic yet")
    for name, stats in sorted(routes.items()):
        confirmed = stats["primary_confirmed"] or 1
        shadow_confirmed = stats["shadow_confirmed"] or 1
        lines.append(f"  route {name}: {stats['divergences']} divergence(s)")
        lines.append(f"    sent {stats['sent']}, primary confirmed {stats['primary_confirmed']}, "
                     f"shadow sent {stats['shadow_sent']}, confirmed "
                     f"{stats['shadow_confirmed']}, failed {stats['shadow_failed']}, "
                     f"skipped {stats['shadow_skipped']}, unconfirmed at close "
                     f"{stats.get('shadow_unconfirmed', 0)}")
        lines.append(f"    mean confirm latency: primary "
                     f"{stats['primary_latency_ms_total'] / confirmed:.2f} ms, shadow "
                     f"{stats['shadow_latency_ms_total'] / shadow_confirmed:.2f} ms; shadow slower "
                     f"{stats['shadow_slower']} time(s), faster {stats['shadow_faster']}")
        lines.append(f"    received: primary {stats['primary_received']}, shadow "
                     f"{stats['shadow_received']}, matched {stats['matched']}, mismatched "
                     f"{stats['mismatched']}")
        for example in stats.get("mismatch_examples", []):
            lines.append(f"    mismatch: primary {example['primary']} / shadow {example['shadow']}")
        for problem in stats.get("problems", []):
            lines.append(f"    problem: {problem}")
    return "\n".join(lines)
