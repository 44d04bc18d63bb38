"""Backend contexts for unit tests that build a backend by hand (no agent, no dispatcher)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.contract.backend import BackendContext


def backend_context(settings: Any, *, url: str, events: Any, agent_id: str = "unit",
                    connection_index: int = 1, wake: Callable[[], None] | None = None
                    ) -> BackendContext:
    """What `bridge.agent.BackendSelection` would give the backend ``settings.backend``."""
    return BackendContext(url=url, events=events, agent_id=agent_id,
                          connection_index=connection_index, wake=wake or (lambda: None),
                          close_timeout=settings.close_timeout,
                          config=settings.section(settings.backend), settings=settings)
