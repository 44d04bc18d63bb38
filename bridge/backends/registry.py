"""The backend registry: a name -> a lazily imported `BackendEntry`.

An entry says everything the rest of the bridge needs to know about a backend without importing
its protocol library: the factory (``"module:attribute"``, imported when a connection opens), its
settings model (the ``BRIDGE_<NAME>__*`` section, TOML table and `bridge config` rows), a one-line
description (`bridge backends`) and its declared capabilities (what the conformance suite pins
as deviations, what `bridge scan` reports). Built-in backends declare their entry in their
package's ``__init__``; a third-party backend publishes one under the entry-point group
``amqp_mqtt_bridge.backends`` (an entry, or just a factory) or calls `register_backend`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from bridge.contract.backend import BackendFactory

ENTRY_POINT_GROUP = "amqp_mqtt_bridge.backends"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend's protocol can give of the contract (docs/semantics.md has the why).

    ``deviations`` maps a conformance statement of spec/imp-amqp-api.md section 6 to the
    documented way this backend deviates from it; the conformance suite pins each one.
    """

    reject: bool = True  # Delivery.reject() reaches the far end as a rejection
    release: bool = True  # release() hands the message back for redelivery
    credit: bool = True  # consumer-granted credit holds a sender back (statement 37)
    cancel_withdraws: bool = True  # cancel() can withdraw a transfer not yet confirmed
    link_detach: bool = True  # the far end can end one link with an error (statement 45)
    typed_properties: bool = True  # int/float/bool/str property types survive the wire
    any_path: bool = True  # any AMQP path opens as a link (else only the backend's own)
    cbs: bool = True  # a $cbs put-token gets a CBS reply
    deviations: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """One selectable backend."""

    name: str
    factory: str | BackendFactory  # "module:attribute" (imported on first use) or a callable
    description: str = "registered backend"
    settings: str | type | None = None  # its settings section model, or None: no section
    capabilities: Capabilities = field(default_factory=Capabilities)
    # False: not selectable with `backend = NAME` (the router is chosen by `routes`)
    selectable: bool = True

    def load_factory(self) -> BackendFactory:
        return _resolve(self.factory)  # type: ignore[no-any-return]

    def load_settings_model(self) -> type | None:
        if self.settings is None:
            return None
        model = _resolve(self.settings)
        if not isinstance(model, type):
            raise TypeError(f"backend {self.name!r}: settings must name a model class, "
                            f"got {model!r}")
        return model


# Built-in entries: "module:ENTRY", imported when the registry is first asked.
_BUILTIN: dict[str, str] = {
    "memory": "bridge.backends.memory:ENTRY",
    "mqtt": "bridge.backends.mqtt:ENTRY",
    "amqp": "bridge.backends.amqp:ENTRY",
    "iothub": "bridge.backends.iothub:ENTRY",
    "routed": "bridge.migration.routed:ENTRY",
}
BUILTIN_ORDER = tuple(_BUILTIN)
_registered: dict[str, BackendEntry] = {}
_cache: dict[str, BackendEntry] = {}


def register_backend(name: str, factory: str | BackendFactory, *,
                     description: str = "registered backend",
                     capabilities: Capabilities | None = None) -> None:
    """Register a backend by name: a factory, or a ``"module:attribute"`` string imported lazily.

    A backend with its own settings section is published through the entry-point group
    (`ENTRY_POINT_GROUP`) instead, so that the section exists before `Settings` is built.
    """
    if not name or not isinstance(name, str):
        raise ValueError("backend name must be a non-empty str")
    _registered[name] = BackendEntry(name, factory, description,
                                     capabilities=capabilities or Capabilities())
    _cache.pop(name, None)


def _from_entry_point(name: str, loaded: Any) -> BackendEntry:
    if isinstance(loaded, BackendEntry):
        return loaded
    if callable(loaded):  # a bare factory: no settings, default capabilities
        return BackendEntry(name, loaded)
    raise TypeError(f"entry point {name!r} in {ENTRY_POINT_GROUP} must be a BackendEntry or a "
                    f"backend factory, got {type(loaded).__name__}")


def _entry_point_names() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_entry(name: str) -> BackendEntry:
    """The entry for *name*; ``ValueError`` naming the known backends if there is none."""
    entry = _registered.get(name) or _cache.get(name)
    if entry is not None:
        return entry
    target = _BUILTIN.get(name)
    if target is not None:
        entry = _resolve(target)
    else:
        ep = _entry_point_names().get(name)
        if ep is None:
            raise ValueError(f"unknown backend {name!r}; known: {', '.join(backend_names())}")
        entry = _from_entry_point(name, ep.load())
    _cache[name] = entry
    return entry


def backend_names(*, selectable_only: bool = False) -> list[str]:
    """Every backend name: built-in (when importable), registered and from entry points."""
    names = {name for name, target in _BUILTIN.items() if _module_exists(target)}
    names.update(_registered)
    names.update(_entry_point_names())
    if selectable_only:
        names = {name for name in names if backend_entry(name).selectable}
    return sorted(names)


def backend_entries() -> list[BackendEntry]:
    return [backend_entry(name) for name in backend_names()]


def load_backend(name: str) -> BackendFactory:
    """The factory for *name*; ``ValueError`` naming the known backends if there is none."""
    return backend_entry(name).load_factory()


def _resolve(target: str | Callable[..., Any] | type) -> Any:
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _module_exists(target: str) -> bool:
    module_name = target.partition(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False
