"""The ``agent`` global of translated code: the script's `Agent` plus the VM engine's ``exit``.

Squirrel agents run by the bridge may call ``agent.exit(n)`` to end the run with status *n*
(the embedded VM binds it); Python scripts say ``sys.exit(n)``, which is what this does, so a
translated agent ends the same way under ``bridge run`` whichever engine ran it.
"""

from __future__ import annotations

from typing import Any


class ScriptAgent:
    """Everything of the wrapped agent, and ``exit``."""

    __slots__ = ("_agent",)

    def __init__(self, agent: Any) -> None:
        self._agent = agent.unwrap() if isinstance(agent, ScriptAgent) else agent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agent, name)

    def unwrap(self) -> Any:
        return self._agent

    @staticmethod
    def exit(status: int = 0) -> None:
        raise SystemExit(status)
