"""The imp agent globals, in Python, for both Squirrel engines (the embedded VM and translated
code): ``imp`` (the agent's `bridge.agent.Imp`), ``server`` (`ImpServer`: log, error, save,
load), ``http`` (`Http`), ``crypto`` (`Crypto`) and ``device`` (`Device`: unsupported).

Values are plain Python: a table is a mapping, an array a sequence, a blob ``bytes``. Every
callback these objects take runs on the agent's dispatcher.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.agent import Imp, Server
from bridge.impenv import coding
from bridge.impenv.http import Http, HttpRequest
from bridge.impenv.jsoncodec import jsondecode, jsonencode
from bridge.impenv.storage import Storage

if TYPE_CHECKING:
    from bridge.agent import Agent


class ImpServer(Server):
    """imp's ``server``: `Server`'s ``log`` / ``error`` plus ``save`` / ``load`` (`Storage`)."""

    __slots__ = ("storage",)

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage if storage is not None else Storage(None)

    def save(self, table: Any) -> int:
        return self.storage.save(table)

    def load(self) -> Any:
        return self.storage.load()


Crypto = coding.Digests  # imp's ``crypto``


class Device:
    """imp's ``device``: there is no imp device behind a bridged agent, so both methods say so
    (``bridge scan`` reports them as unsupported)."""

    __slots__ = ()

    @staticmethod
    def on(name: Any, callback: Any) -> None:
        raise NotImplementedError("device.on is not supported by the bridge: there is no imp "
                                  "device behind this agent (carry device traffic over a "
                                  "backend address instead)")

    @staticmethod
    def send(name: Any, data: Any = None) -> None:
        raise NotImplementedError("device.send is not supported by the bridge: there is no imp "
                                  "device behind this agent (carry device traffic over a "
                                  "backend address instead)")

    @staticmethod
    def isconnected() -> bool:
        return False


@dataclass(frozen=True, slots=True)
class ImpEnv:
    """The globals of one agent, beside its ``amqp`` (``agent.amqp``)."""

    imp: Imp
    server: ImpServer
    http: Http
    crypto: Crypto
    device: Device


def make_env(agent: Agent, storage_path: str | os.PathLike[str] | None = None,
             agent_url: str = "") -> ImpEnv:
    """The imp globals for *agent*: its own ``imp`` (timers, configparams), a ``server`` whose
    ``save`` / ``load`` use *storage_path* (``None``: memory only), and ``http`` whose callbacks
    are posted to the agent's dispatcher."""
    return ImpEnv(imp=agent.imp, server=ImpServer(Storage(storage_path)),
                  http=Http(agent.call_soon, agent_url), crypto=Crypto(), device=Device())


__all__ = ["Crypto", "Device", "Http", "HttpRequest", "ImpEnv", "ImpServer", "Storage",
           "jsondecode", "jsonencode", "make_env"]
