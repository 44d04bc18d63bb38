"""`NutProgram`: ``bridge fleet agent.nut``: the agent on its own embedded VM per device, with
that device's row as ``imp.configparams`` (the same ``start(agent)`` as a ``.py`` program)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.agent import Agent
from bridge.impenv import make_env
from bridge.squirrel.vm.engine import AgentExit, SquirrelVM, read_sources


class NutProgram:
    """The ``.nut`` files (required libraries first, the agent last), read once, loaded into a
    new VM per device start; a device's previous VM (before a restart) is released first."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.sources = read_sources([Path(f) for f in files])
        self._vms: dict[str, SquirrelVM] = {}

    def start(self, agent: Agent) -> dict[str, Any]:
        """Run the top level for *agent*; raises what it raises (SystemExit for agent.exit)."""
        key = agent.settings.agent_id
        previous = self._vms.pop(key, None)
        if previous is not None:
            previous.release()
        vm = SquirrelVM(agent, make_env(agent))
        self._vms[key] = vm
        try:
            vm.load(self.sources)
        except AgentExit as exc:
            raise SystemExit(exc.status) from None
        return {"vm": vm}
