"""`Fleet`: one agent script run once per device, thousands of agents in one process.

Each device gets its own `Agent` (its settings: the base ones with the device's overrides), its
own module namespace with its own ``amqp`` / ``imp`` / ``server`` / ``agent`` globals and
``imp.configparams`` (the device's row), and is dispatched on the process's shared pool
(``agent.start()``): a few network loops and a bounded pool of dispatcher workers serve them all.

The main thread supervises: it starts every agent (their connection attempts are spaced by the
process's pacer, ``fleet.connect_rate``), restarts with backoff an agent whose script raised
(at its top level, or a callback that ended its dispatching - ordinary callback exceptions are
logged and do not), prints the status line and serves the metrics. `request_stop` (SIGINT,
SIGTERM) ends the run: every agent is closed, all at once, within ``close_timeout``.
"""

from __future__ import annotations

import builtins
import heapq
import logging
import threading
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from bridge.agent import Agent
from bridge.fleet.devices import Device, settings_for
from bridge.loop.heap import freeze_heap
from bridge.loop.pacing import connect_pacer
from bridge.loop.pool import current_agent
from bridge.metrics import metric, serve_metrics

log = logging.getLogger("bridge.fleet")


class DeviceState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"  # failed, restart scheduled
    FAILED = "failed"  # failed for good (fleet.max_restarts)
    STOPPED = "stopped"  # the script stopped its agent


@dataclass(eq=False)
class DeviceRun:
    """One device's agent and its history."""

    device: Device
    agent: Agent | None = None
    state: DeviceState = DeviceState.STARTING
    namespace: dict[str, Any] | None = None
    restarts: int = 0
    failures: int = 0
    errors_before: int = 0  # error events of its earlier (restarted) agents
    last_failure: str | None = None
    failed_at: float = 0.0


class AgentProgram(Protocol):
    """An agent script the fleet starts once per device (`PythonProgram`, or the embedded
    Squirrel VM's ``NutProgram``): its top level for *agent*, what it keeps returned."""

    def start(self, agent: Agent) -> dict[str, Any]: ...


class PythonProgram:
    """A ``.py`` agent script, compiled once, run once per device."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.code = compile(self.path.read_bytes(), str(self.path), "exec", dont_inherit=True)

    def start(self, agent: Agent) -> dict[str, Any]:
        """Run the top level for *agent* (its own namespace); raises what the script raises."""
        module = types.ModuleType("__main__")
        module.__dict__.update({
            "__file__": str(self.path), "__cached__": None, "__builtins__": builtins,
            "amqp": agent.amqp, "imp": agent.imp, "server": agent.server, "agent": agent,
        })
        exec(self.code, module.__dict__)
        return module.__dict__


@dataclass
class Totals:
    received: int = 0
    confirmed: int = 0
    errors: int = 0
    at: float = field(default_factory=time.monotonic)


class Fleet:
    def __init__(self, settings: Any, program: AgentProgram, devices: list[Device]) -> None:
        self.settings = settings
        self.program = program
        self.runs = [DeviceRun(device) for device in devices]
        self.fleet = settings.fleet
        self._stop = threading.Event()
        self._stop_asked = False  # set from a signal handler: no lock taken there
        self._failed: list[DeviceRun] = []  # reported by pool workers, handled by the main thread
        self._failed_lock = threading.Lock()
        self._restarts: list[tuple[float, int, DeviceRun]] = []
        self._metrics: ThreadingHTTPServer | None = None
        self._last = Totals()
        self.rates = (0.0, 0.0)

    # -- lifecycle (main thread) ------------------------------------------------------------
    def start(self) -> None:
        connect_pacer().configure(self.fleet.connect_rate or None, self.fleet.connect_jitter)
        if self.fleet.metrics_port is not None:
            self._metrics = serve_metrics(self.metrics_text, self.fleet.metrics_host,
                                          self.fleet.metrics_port, "bridge-fleet-metrics")
        for run in self.runs:
            if self._stop.is_set() or self._stop_asked:
                break
            self._start(run)
        freeze_heap()  # the scripts' objects live as long as the fleet: see bridge/loop/heap.py

    @property
    def metrics_port(self) -> int | None:
        return self._metrics.server_address[1] if self._metrics is not None else None

    def run(self, timeout: float | None = None) -> None:
        """Supervise until `request_stop` (or *timeout* seconds), then close everything."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_status = time.monotonic() + (self.fleet.status_interval or 3600.0)
        frozen_connected = False
        next_connected_check = time.monotonic()
        try:
            while not self._stop.is_set() and not self._stop_asked:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    log.info("fleet: --timeout elapsed: closing")
                    break
                self._handle_failures()
                self._run_due_restarts(now)
                if not frozen_connected and now >= next_connected_check:
                    # once a second: counting walks every agent (10,000 status calls)
                    next_connected_check = now + 1.0
                    counts = self.counts()
                    if counts["connected"] == counts["agents"]:
                        # connections, sessions and links are up: freeze them too, once
                        frozen_connected = True
                        log.info("fleet: all %d agents connected", counts["agents"])
                        freeze_heap()
                if self.fleet.status_interval and now >= next_status:
                    log.info("fleet: %s", self.status_line())
                    next_status = now + self.fleet.status_interval
                wait = 0.2
                if self._restarts:
                    wait = min(wait, max(0.0, self._restarts[0][0] - now))
                self._stop.wait(wait)
            log.info("fleet: %s", self.status_line())
        finally:
            self.close()

    def request_stop(self) -> None:
        """Ask the run to end (safe from a signal handler: only a flag; `run` polls it)."""
        self._stop_asked = True

    def close(self) -> None:
        """Close every agent: all connections first, then wait for them (one deadline)."""
        self._stop.set()
        agents = [run.agent for run in self.runs if run.agent is not None]
        for agent in agents:
            agent.begin_close()
        deadline = time.monotonic() + self.settings.close_timeout
        for agent in agents:
            agent.finish_close(deadline)
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None

    # -- agents -----------------------------------------------------------------------------
    def _start(self, run: DeviceRun) -> None:
        device = run.device
        agent = Agent(settings_for(self.settings, device), configparams=device.configparams)
        agent.on_failure = lambda exc, run=run: self._report_failure(run, exc)
        run.agent, run.state = agent, DeviceState.STARTING
        token = current_agent.set(device.agent_id)
        try:
            run.namespace = self.program.start(agent)
        except BaseException as exc:  # its top level raised (SystemExit included)
            if isinstance(exc, KeyboardInterrupt):
                raise
            self._failed_now(run, exc, "its script raised at its top level")
            return
        finally:
            current_agent.reset(token)
        run.state = DeviceState.RUNNING
        agent.start()

    def _report_failure(self, run: DeviceRun, exc: BaseException) -> None:
        """(A pool worker.) The agent's dispatching ended: the main thread restarts it."""
        with self._failed_lock:
            self._failed.append(run)
        run.last_failure = "".join(traceback.format_exception_only(type(exc), exc)).strip()

    def _handle_failures(self) -> None:
        with self._failed_lock:
            failed, self._failed = self._failed, []
        for run in failed:
            if run.state is DeviceState.RUNNING:
                self._failed_now(run, run.agent.failure if run.agent else None,
                                 "its dispatching ended")
        for run in self.runs:  # a script that stopped its own agent is done, not failed
            if run.state is DeviceState.RUNNING and run.agent is not None \
                    and not run.agent.dispatching:
                run.state = DeviceState.STOPPED
                log.info("fleet: device %s: its script stopped its agent", run.device.device_id)

    def _failed_now(self, run: DeviceRun, exc: BaseException | None, what: str) -> None:
        run.failures += 1
        run.failed_at = time.monotonic()
        if exc is not None:
            run.last_failure = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            if not isinstance(exc, SystemExit):
                log.error("fleet: device %s: %s:\n%s", run.device.device_id, what,
                          "".join(traceback.format_exception(type(exc), exc,
                                                             exc.__traceback__)).rstrip())
        agent = run.agent
        if agent is not None:
            run.errors_before += agent.counters()[2]
            agent.close()
        limit = self.fleet.max_restarts
        if limit and run.restarts >= limit:
            run.state = DeviceState.FAILED
            log.error("fleet: device %s failed %d times: left failed (fleet.max_restarts)",
                      run.device.device_id, run.failures)
            return
        delay = min(self.fleet.reconnect_min_delay * 2 ** run.restarts,
                    self.fleet.reconnect_max_delay)
        run.state = DeviceState.WAITING
        log.warning("fleet: device %s (%s): %s; restarting in %.1f s", run.device.device_id,
                    run.last_failure or what, what, delay)
        heapq.heappush(self._restarts, (time.monotonic() + delay, id(run), run))

    def _run_due_restarts(self, now: float) -> None:
        while self._restarts and self._restarts[0][0] <= now and not self._stop.is_set():
            _, _, run = heapq.heappop(self._restarts)
            run.restarts += 1
            self._start(run)

    # -- observability ----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        counts = {"agents": len(self.runs), "running": 0, "connected": 0, "reconnecting": 0,
                  "failed": 0, "waiting": 0, "stopped": 0}
        for run in self.runs:
            if run.state is DeviceState.RUNNING and run.agent is not None:
                counts["running"] += 1
                status = run.agent.status()
                if status in ("connected", "reconnecting"):
                    counts[status] += 1
            elif run.state in (DeviceState.FAILED, DeviceState.WAITING):
                counts["failed" if run.state is DeviceState.FAILED else "waiting"] += 1
            elif run.state is DeviceState.STOPPED:
                counts["stopped"] += 1
        return counts

    def totals(self) -> Totals:
        totals = Totals()
        for run in self.runs:
            totals.errors += run.errors_before
            if run.agent is not None:
                received, confirmed, errors = run.agent.counters()
                totals.received += received
                totals.confirmed += confirmed
                totals.errors += errors
        return totals

    def status_line(self) -> str:
        counts = self.counts()
        totals = self.totals()
        span = max(1e-6, totals.at - self._last.at)
        self.rates = ((totals.received - self._last.received) / span,
                      (totals.confirmed - self._last.confirmed) / span)
        self._last = totals
        failed = counts["failed"] + counts["waiting"]
        return (f"{counts['agents']} agents: {counts['running']} running, "
                f"{counts['connected']} connected, {counts['reconnecting']} reconnecting, "
                f"{failed} failed ({counts['waiting']} restarting), {counts['stopped']} stopped; "
                f"in {self.rates[0]:.0f}/s, out {self.rates[1]:.0f}/s")

    def metrics_text(self) -> str:
        counts = self.counts()
        totals = self.totals()
        lines = metric("bridge_fleet_agents", "gauge", "Agents by state.",
                       [({"state": state}, counts[state]) for state in
                        ("running", "connected", "reconnecting", "failed", "waiting",
                         "stopped")])
        lines += metric("bridge_fleet_devices", "gauge", "Devices this process runs.",
                        [({}, counts["agents"])])
        lines += metric("bridge_fleet_received_total", "counter",
                        "Deliveries received by every agent.", [({}, totals.received)])
        lines += metric("bridge_fleet_sent_total", "counter",
                        "Transfers confirmed by the far end, every agent.",
                        [({}, totals.confirmed)])
        lines += metric("bridge_fleet_device_errors_total", "counter",
                        "Error events (*_ERROR) of one device.", self._per_device_errors())
        lines += metric("bridge_fleet_device_restarts_total", "counter",
                        "Restarts of one device's agent.",
                        [({"device": r.device.device_id}, r.restarts) for r in self.runs
                         if r.restarts])
        return "\n".join(lines) + "\n"

    def _per_device_errors(self) -> list[tuple[dict[str, str], object]]:
        samples: list[tuple[dict[str, str], object]] = []
        for run in self.runs:
            errors = run.errors_before + (run.agent.counters()[2] if run.agent else 0)
            samples.append(({"device": run.device.device_id}, errors))
        return samples


def device_log_filter() -> Callable[[logging.LogRecord], bool]:
    """A logging filter that puts the device (agent) id being served in ``record.device``."""

    def add_device(record: logging.LogRecord) -> bool:
        record.device = current_agent.get() or "-"
        return True

    return add_device
