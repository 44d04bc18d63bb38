"""`NutRun`: ``bridge run agent.nut`` on the embedded VM (the ``vm`` engine).

The same run as a Python script's (`bridge.script.ScriptRun`: signals, dispatching on a worker
thread, clean shutdown, exit statuses), with the top level being the ``.nut`` files (required
libraries first) loaded into one `SquirrelVM` bound to the agent.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.agent import Agent
from bridge.impenv import make_env
from bridge.script import ScriptRun
from bridge.settings import Settings
from bridge.squirrel.errors import SquirrelError
from bridge.squirrel.vm.engine import AgentExit, SquirrelVM, read_sources


class NutRun(ScriptRun):
    """One ``bridge run`` of *files* (dependencies first, the agent last) on the VM."""

    engine_name = "the embedded Squirrel VM"

    def __init__(self, settings: Settings, files: Sequence[Path], timeout: float | None, *,
                 configparams: Mapping[str, Any] | None = None,
                 storage: str | os.PathLike[str] | None = None, agent_url: str = "") -> None:
        agent_file = Path(files[-1])
        super().__init__(settings, agent_file, compile("", str(agent_file), "exec"), [], timeout)
        self.files = [Path(f) for f in files]
        self.configparams = dict(configparams or {})
        self.storage = storage
        self.agent_url = agent_url
        self.vm: SquirrelVM | None = None

    def _make_agent(self) -> Agent:
        agent = Agent(self.settings, configparams=self.configparams)
        self.vm = SquirrelVM(agent, make_env(agent, self.storage, self.agent_url))
        return agent

    def _globals(self, agent: Agent) -> dict[str, Any]:
        return {}

    def _top_level(self, agent: Agent, namespace: dict[str, Any]) -> None:
        assert self.vm is not None
        try:
            self.vm.load(read_sources(self.files))
        except AgentExit as exc:  # agent.exit(n) at the top level
            raise SystemExit(exc.status) from None

    def _print_traceback(self, exc: BaseException) -> None:
        if isinstance(exc, SquirrelError):
            text = exc.traceback() if hasattr(exc, "traceback") else str(exc)
            print(f"bridge: {text}", file=sys.stderr)
            return
        super()._print_traceback(exc)
