"""The router: one `Connection` whose links run on different backends, chosen per path.

Used whenever ``settings.routes`` is not empty. Every backend a route names (and the default
``settings.backend``) is a *target*: its own backend instance with its own connection. The
router gives each target private handle proxies, because a backend keeps its state on the
handles it is given (``backend_state``) and two targets must not overwrite each other.

Event coherence: ``CONNECTION_OPEN`` once every primary target is up; a primary target failing
before that fails the connection naming the target; a primary target lost afterwards is a
connection loss (children hear ``*_CLOSED``). ``SESSION_OPEN`` once the session is open on every
primary target. Shadow targets (``route.shadow``) never affect any of that: see
`bridge.migration.shadow`.
"""

from __future__ import annotations

import logging
import threading
from enum import StrEnum
from typing import Any, cast

from bridge.backends.registry import BackendEntry, Capabilities, load_backend
from bridge.contract.backend import (
    Backend,
    BackendContext,
    BackendEvents,
    LinkHandle,
    Outcome,
    SessionHandle,
    TransferHandle,
)
from bridge.contract.message import Message
from bridge.errors import AddressError
from bridge.migration.routing import route_for, target_settings
from bridge.migration.shadow import ShadowMonitor, monitor_for

ENTRY = BackendEntry(
    name="routed",
    factory="bridge.migration.routed:create",
    description="per-address routes over the other backends (used whenever routes are set)",
    capabilities=Capabilities(),
    selectable=False,
)

log = logging.getLogger("bridge.routed")


class TargetState(StrEnum):
    """Where one backend behind the router is."""

    OPENING = "opening"
    OPEN = "open"
    FAILED = "failed"


class _SessionProxy:
    __slots__ = ("backend_state", "id", "open", "real")

    def __init__(self, real: SessionHandle) -> None:
        self.real = real
        self.id = real.id
        self.open = False
        self.backend_state: Any = None


class _LinkProxy:
    __slots__ = ("backend_state", "id", "open", "path", "real", "role", "route", "session",
                 "target")

    def __init__(self, real: LinkHandle, session: _SessionProxy, target: _Target,
                 route: str) -> None:
        self.real = real
        self.id = real.id
        self.path = real.path
        self.role = real.role
        self.session = session
        self.target = target
        self.route = route
        self.open = False
        self.backend_state: Any = None


class _TransferProxy:
    __slots__ = ("backend_state", "id", "link", "message", "real", "started")

    def __init__(self, real: TransferHandle, link: _LinkProxy, started: float = 0.0) -> None:
        self.real = real
        self.id = real.id
        self.link = link
        self.message = real.message
        self.started = started
        self.backend_state: Any = None

    @property
    def cancelled(self) -> bool:
        return self.real.cancelled


class _Target:
    """One backend instance behind the router."""

    def __init__(self, router: RoutedBackend, name: str, options: dict[str, Any],
                 shadow: bool) -> None:
        self.router = router
        self.name = name
        self.shadow = shadow
        self.state = TargetState.OPENING
        self.sessions: dict[int, _SessionProxy] = {}
        context = router.context
        settings = target_settings(context.settings, name, options)
        self.events = _TargetEvents(self)
        self.backend: Backend = load_backend(name)(BackendContext(
            # the target only ever reports the proxies it was given (see _TargetEvents)
            url=context.url, events=cast(BackendEvents, self.events), agent_id=context.agent_id,
            connection_index=context.connection_index, wake=context.wake,
            later=context.later, close_timeout=context.close_timeout,
            config=settings.section(name), settings=settings))

    def session_proxy(self, real: SessionHandle) -> _SessionProxy:
        proxy = self.sessions.get(real.id)
        if proxy is None:
            proxy = self.sessions[real.id] = _SessionProxy(real)
        return proxy

    def label(self) -> str:
        return f"{'shadow ' if self.shadow else ''}{self.name}"


class _TargetEvents:
    """What one target reports, translated back to the real handles."""

    def __init__(self, target: _Target) -> None:
        self.target = target
        self.router = target.router

    def connection_opened(self) -> None:
        self.router._target_opened(self.target)

    def connection_error(self, detail: str) -> None:
        self.router._target_failed(self.target, f"{self.target.name}: {detail}")

    def connection_closed(self) -> None:
        self.router._target_failed(self.target,
                                   f"{self.target.name}: connection closed by the peer")

    def session_opened(self, session: _SessionProxy) -> None:
        self.router._session_opened(self.target, session)

    def session_error(self, session: _SessionProxy, detail: str) -> None:
        if self.target.shadow:
            self.router.monitor.shadow_problem(f"session: {detail}")
        else:
            self.router.events.session_error(session.real, f"{self.target.name}: {detail}")

    def session_closed(self, session: _SessionProxy) -> None:
        if not self.target.shadow:
            self.router.events.session_closed(session.real)

    def link_opened(self, link: _LinkProxy) -> None:
        link.open = True
        if link.target.shadow:
            self.router._shadow_link_opened(link)
        else:
            self.router.events.link_opened(link.real)

    def link_error(self, link: _LinkProxy, detail: str) -> None:
        link.open = False
        if link.target.shadow:
            self.router.monitor.shadow_problem(f"{link.role} {link.path}: {detail}", link.route)
        else:
            self.router.events.link_error(link.real, detail)

    def link_closed(self, link: _LinkProxy) -> None:
        link.open = False
        if not link.target.shadow:
            self.router.events.link_closed(link.real)

    def transfer_settled(self, transfer: _TransferProxy) -> None:
        if transfer.link.target.shadow:
            self.router.monitor.shadow_settled(transfer.link.route, transfer.real)
        else:
            self.router.monitor.primary_settled(transfer.link.route, transfer.real)
            self.router.events.transfer_settled(transfer.real)

    def transfer_failed(self, transfer: _TransferProxy, detail: str) -> None:
        if transfer.link.target.shadow:
            self.router.monitor.shadow_failed(transfer.link.route, transfer.real, detail)
        else:
            self.router.events.transfer_failed(transfer.real, detail)

    def delivery(self, link: _LinkProxy, message: Message, token: Any) -> None:
        if link.target.shadow:
            self.router.monitor.shadow_received(link.route, link.real.id, message)
            link.target.backend.settle(link, token, Outcome.ACCEPTED)
        else:
            if link.route in self.router.shadowed_routes:
                self.router.monitor.primary_received(link.route, link.real.id, message)
            self.router.events.delivery(link.real, message, token)


class RoutedBackend:
    """A `Backend` that fans one connection out over several backends by path."""

    def __init__(self, context: BackendContext) -> None:
        self.context = context
        self.events = context.events
        self.settings = context.settings
        self._lock = threading.RLock()
        self.targets: dict[tuple[str, str, bool], _Target] = {}
        self.default = self._target(self.settings.backend, {}, shadow=False)
        self.shadowed_routes: set[str] = set()
        for route in self.settings.routes:
            self._target(route.backend, route.options, shadow=False)
            if route.shadow:
                self._target(route.shadow, route.shadow_options, shadow=True)
                self.shadowed_routes.add(route.match)
        self.monitor: ShadowMonitor = monitor_for(self.settings, context.agent_id)
        self._opened = False
        self._failed = False
        self._pending_sessions: dict[int, set[_Target]] = {}
        self._shadow_links: dict[int, _LinkProxy] = {}

    def _target(self, name: str, options: dict[str, Any], shadow: bool) -> _Target:
        key = (name, repr(sorted(options.items())), shadow)
        target = self.targets.get(key)
        if target is None:
            target = self.targets[key] = _Target(self, name, options, shadow)
        return target

    def _primaries(self) -> list[_Target]:
        return [t for t in self.targets.values() if not t.shadow]

    def _shadows(self) -> list[_Target]:
        return [t for t in self.targets.values() if t.shadow]

    # -- connection -------------------------------------------------------------------------
    def open(self) -> None:
        for target in list(self.targets.values()):
            target.backend.open()

    def _target_opened(self, target: _Target) -> None:
        with self._lock:
            target.state = TargetState.OPEN
            if target.shadow:
                self.monitor.shadow_connected(target.label())
                self._open_shadow_sessions(target)
                return
            if self._opened or self._failed:
                return
            if all(t.state is TargetState.OPEN for t in self._primaries()):
                self._opened = True
                self.events.connection_opened()

    def _target_failed(self, target: _Target, detail: str) -> None:
        with self._lock:
            target.state = TargetState.FAILED
            if target.shadow:
                # Its links are gone with it: later sends are counted as skipped instead of
                # vanishing into a closed backend.
                for proxy in self._shadow_links.values():
                    if proxy.target is target:
                        proxy.open = False
                self.monitor.shadow_problem(f"connection: {detail}")
                return
            if self._failed:
                return
            self._failed = True
        log.warning("routed connection failed: %s", detail)
        self.events.connection_error(detail)

    def close(self) -> None:
        for target in list(self.targets.values()):
            target.backend.close()
        self.monitor.closing(id(self))

    def wait_closed(self, timeout: float) -> bool:
        return all([t.backend.wait_closed(timeout) for t in list(self.targets.values())])

    # -- sessions: open on every primary, and on shadows when they are up --------------------
    def open_session(self, session: SessionHandle) -> None:
        primaries = self._primaries()
        with self._lock:
            self._pending_sessions[session.id] = set(primaries)
            session.backend_state = {}
        for target in primaries:
            target.backend.open_session(target.session_proxy(session))
        for target in self._shadows():
            if target.state is TargetState.OPEN:
                target.backend.open_session(target.session_proxy(session))

    def _open_shadow_sessions(self, target: _Target) -> None:
        """Lock held: a shadow that came up late opens sessions the primaries already have."""
        for session_id in list(self._pending_sessions):
            real = next((t.sessions[session_id].real for t in self._primaries()
                         if session_id in t.sessions), None)
            if real is not None and session_id not in target.sessions:
                target.backend.open_session(target.session_proxy(real))

    def _session_opened(self, target: _Target, proxy: _SessionProxy) -> None:
        proxy.open = True
        if target.shadow:
            self._open_pending_shadow_links(target, proxy)
            return
        with self._lock:
            pending = self._pending_sessions.get(proxy.id)
            if pending is None or target not in pending:
                return
            pending.discard(target)
            done = not pending
        if done:
            self.events.session_opened(proxy.real)

    def close_session(self, session: SessionHandle) -> None:
        with self._lock:
            self._pending_sessions.pop(session.id, None)
        for target in list(self.targets.values()):
            proxy = target.sessions.pop(session.id, None)
            if proxy is not None and target.state is TargetState.OPEN:
                target.backend.close_session(proxy)

    # -- links ------------------------------------------------------------------------------
    def _route(self, path: str) -> tuple[_Target, str, _Target | None]:
        route = route_for(self.settings.routes, path)
        if route is None:
            return self.default, "(default)", None
        primary = self._target(route.backend, route.options, shadow=False)
        shadow = (self._target(route.shadow, route.shadow_options, shadow=True)
                  if route.shadow else None)
        return primary, route.match, shadow

    def validate_path(self, role: str, path: str) -> None:
        # Only the primary may refuse a path: a shadow that cannot carry it (e.g. MQTT refuses
        # '+' and '#', which AMQP queue names may contain) is skipped for that link instead.
        primary, _, _ = self._route(path)
        validate = getattr(primary.backend, "validate_path", None)
        if validate is not None:
            validate(role, path)

    @staticmethod
    def _shadow_refuses(shadow: _Target, role: str, path: str) -> str | None:
        validate = getattr(shadow.backend, "validate_path", None)
        if validate is None:
            return None
        try:
            validate(role, path)
        except AddressError as exc:
            return str(exc)
        return None

    def open_link(self, link: LinkHandle) -> None:
        primary, route, shadow = self._route(link.path)
        proxy = _LinkProxy(link, primary.session_proxy(link.session), primary, route)
        link.backend_state = proxy
        primary.backend.open_link(proxy)
        if shadow is not None and (refused := self._shadow_refuses(shadow, link.role,
                                                                   link.path)) is not None:
            self.monitor.shadow_problem(f"{link.role} {link.path}: {refused}", route)
            shadow = None  # its sends are counted as skipped
        if shadow is not None:
            shadow_proxy = _LinkProxy(link, shadow.session_proxy(link.session), shadow, route)
            with self._lock:
                self._shadow_links[link.id] = shadow_proxy
            if shadow.state is TargetState.OPEN and shadow_proxy.session.open:
                shadow.backend.open_link(shadow_proxy)
            # else opened once the shadow session is up (_open_pending_shadow_links)

    def _open_pending_shadow_links(self, target: _Target, session: _SessionProxy) -> None:
        with self._lock:
            waiting = [p for p in self._shadow_links.values()
                       if p.target is target and p.session is session and not p.open]
        for proxy in waiting:
            target.backend.open_link(proxy)

    def _shadow_link_opened(self, proxy: _LinkProxy) -> None:
        self.monitor.shadow_link_open(proxy.route)

    def close_link(self, link: LinkHandle) -> None:
        proxy: _LinkProxy = link.backend_state
        if proxy is not None and proxy.target.state is TargetState.OPEN:
            proxy.target.backend.close_link(proxy)
        with self._lock:
            shadow = self._shadow_links.pop(link.id, None)
        if shadow is not None and shadow.target.state is TargetState.OPEN:
            shadow.target.backend.close_link(shadow)

    # -- transfers --------------------------------------------------------------------------
    def send(self, transfer: TransferHandle) -> None:
        proxy: _LinkProxy = transfer.link.backend_state
        sent = _TransferProxy(transfer, proxy)
        transfer.backend_state = sent
        if proxy.route in self.shadowed_routes:
            self.monitor.primary_sent(proxy.route, transfer, id(self))
            shadow = self._shadow_links.get(transfer.link.id)
            if shadow is not None and shadow.open:
                shadow.target.backend.send(_TransferProxy(transfer, shadow))
                self.monitor.shadow_sent(proxy.route, transfer)
            else:
                self.monitor.shadow_skipped(proxy.route)
        proxy.target.backend.send(sent)

    def cancel(self, transfer: TransferHandle) -> None:
        sent = transfer.backend_state
        if isinstance(sent, _TransferProxy):
            sent.link.target.backend.cancel(sent)

    def settle(self, link: LinkHandle, token: Any, outcome: Outcome) -> None:
        proxy: _LinkProxy = link.backend_state
        if proxy is not None:
            proxy.target.backend.settle(proxy, token, outcome)


def create(context: BackendContext) -> RoutedBackend:
    return RoutedBackend(context)
