"""The ``.nut`` side of ``bridge run``: the engine choice and the translated-Python run.

``--engine vm`` runs the agent on the embedded Squirrel VM (`bridge.squirrel.vm.run`);
``--engine translate`` translates it to Python in memory (``bridge.squirrel.port``) and runs that
as a Python agent script with the imp globals of `bridge.impenv`; ``auto`` is ``vm`` when the VM
package is installed, else ``translate``. Errors name the ``.nut`` file and line either way.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.agent import Agent
from bridge.impenv import make_env
from bridge.script import ScriptRun
from bridge.settings import Settings

ENGINES = ("auto", "vm", "translate")


class EngineUnavailable(RuntimeError):
    """The engine asked for cannot run here (a message for the user, no traceback)."""


def parse_params(pairs: Sequence[str],
                 environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``NAME=VALUE`` options as ``imp.configparams`` (values stay strings, as typed); a bare
    ``NAME`` takes the value of the environment variable NAME, so secrets (a connection
    string) need not appear on the command line."""
    environ = os.environ if environ is None else environ
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE or NAME")
        if not sep:
            if name not in environ:
                raise ValueError(f"--param {name}: no value given and no environment "
                                 f"variable {name} is set")
            value = environ[name]
        params[name] = value
    return params


def choose_engine(engine: str) -> str:
    from bridge.squirrel import vm
    if engine == "auto":
        return "vm" if vm.available() else "translate"
    if engine == "vm" and not vm.available():
        raise EngineUnavailable(
            "the embedded Squirrel VM is not installed: pip install 'amqp-mqtt-bridge[squirrel]' "
            "(it brings squirrel-lang-sq305), or use --engine translate")
    return engine


class TranslatedRun(ScriptRun):
    """The agent translated to Python, run as a script; tracebacks name the ``.nut`` lines."""

    def __init__(self, settings: Settings, script: Path, translation: Any,
                 timeout: float | None, *, configparams: Mapping[str, Any] | None,
                 storage: str | os.PathLike[str] | None, agent_url: str) -> None:
        self.translation = translation
        self.generated = f"{script}.py"  # the name the generated code's frames carry
        code = compile(translation.python, self.generated, "exec", dont_inherit=True)
        super().__init__(settings, script, code, [], timeout)
        self.configparams = dict(configparams or {})
        self.storage, self.agent_url = storage, agent_url

    def _make_agent(self) -> Agent:
        return Agent(self.settings, configparams=self.configparams)

    def _globals(self, agent: Agent) -> dict[str, Any]:
        env = make_env(agent, self.storage, self.agent_url)
        return {"amqp": agent.amqp, "imp": env.imp, "server": env.server, "http": env.http,
                "crypto": env.crypto, "device": env.device, "agent": agent}

    def _print_traceback(self, exc: BaseException) -> None:
        # frames of the generated code name the .nut file and line (a line the translator
        # added has none: it is shown as Python's)
        from bridge.squirrel.port import nut_traceback
        print(nut_traceback(exc, self.translation, self.generated), file=sys.stderr, end="")


def translate(script: Path, require_paths: Sequence[Path]) -> Any:
    try:
        port = importlib.import_module("bridge.squirrel.port")
    except ImportError as exc:
        raise EngineUnavailable(
            f"the Squirrel translator (bridge.squirrel.port) is not available in this build "
            f"({exc}); install the VM with pip install 'amqp-mqtt-bridge[squirrel]' and use "
            "--engine vm") from None
    # cached by the content of every file: a fleet translates its script once
    return port.cached_translate_file(script, list(require_paths))


def nut_files(script: Path, require_paths: Sequence[Path]) -> list[Path]:
    """*script* and the libraries it ``#require``s, dependencies first."""
    from bridge.squirrel.requires import resolve_all
    return resolve_all(script, list(require_paths))


def make_run(settings: Settings, script: Path, timeout: float | None, *, engine: str,
             require_paths: Sequence[Path], params: Sequence[str],
             storage: str | None, agent_url: str) -> ScriptRun:
    """The run for ``bridge run agent.nut`` (errors: `EngineUnavailable`, `ValueError`,
    `bridge.squirrel.errors.SquirrelError`)."""
    configparams = parse_params(params)
    chosen = choose_engine(engine)
    if chosen == "vm":
        from bridge.squirrel.vm.run import NutRun
        return NutRun(settings, nut_files(script, require_paths), timeout,
                      configparams=configparams, storage=storage, agent_url=agent_url)
    return TranslatedRun(settings, script, translate(script, require_paths), timeout,
                         configparams=configparams, storage=storage, agent_url=agent_url)
