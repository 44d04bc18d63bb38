"""Conformance profile of the router (``routed``): the memory backend behind a route.

``routed`` runs whenever ``routes`` are set; here every conformance address is routed to the
memory backend (and everything else - ``$cbs``, device paths - falls through to the default,
memory too), so each statement is checked through the router's handle proxies and event
coherence, with the memory profile's fault hooks on the broker behind it.
"""

from __future__ import annotations

from typing import Any

from bridge import Settings

from .memory import MemoryProfile


class RoutedProfile(MemoryProfile):
    name = "routed"
    backend = "memory"  # the default backend; the routes below put the router in front of it

    def settings(self, **overrides: Any) -> Settings:
        routes = overrides.pop("routes", None) or [
            {"match": "/conformance/{label}/{id}", "backend": "memory"}]
        return Settings(backend="memory", routes=routes, **overrides)


PROFILE = RoutedProfile()
