"""The ``amqp`` global: the factory for connections and messages."""

from __future__ import annotations

from typing import Any

from bridge.contract.message import Message
from bridge.contract.objects import Connection, ConnectionCore, EventCallback, _check_callback
from bridge.contract.runtime import Runtime
from bridge.errors import FeatureDisabledError


class AMQP:
    """What imp agent code knew as ``amqp``."""

    __slots__ = ("_rt",)

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def _gate(self, method: str) -> None:
        if not self._rt.options.amqp_enabled:
            raise FeatureDisabledError(
                f"amqp.{method}: AMQP is not enabled for this agent (set amqp_enabled = true)")

    def openconnection(self, url: str, callback: EventCallback) -> Connection:
        """Open a connection to *url*; ``CONNECTION_OPEN`` or ``CONNECTION_ERROR`` follows.

        Which broker is really reached is decided by the settings of the selected backend; *url*
        is the logical endpoint the legacy code names (its userinfo may carry credentials).
        """
        return self.open_with(url, callback, None)

    def open_with(self, url: str, callback: EventCallback, variant: Any) -> Connection:
        """`openconnection` on other backend settings: *variant* is handed to the agent's
        backend opener (the relay runs its source and target connections this way)."""
        self._gate("openconnection")
        if not isinstance(url, str):
            raise TypeError(f"url must be str, got {type(url).__name__}")
        if not url:
            raise ValueError("url must not be empty")
        _check_callback(callback, "callback", required=True)
        rt = self._rt
        with rt.lock:
            rt.limits.take("connection", "openconnection")
            try:
                core = ConnectionCore(rt, url, callback, variant)
            except BaseException:
                rt.limits.give_back("connection")
                raise
            rt.connections[core.id] = core
            core._request_open()
        return Connection(core)

    def createmessage(self, body: str, properties: dict[str, Any] | None = None) -> Message:
        """A message with an AMQP value (string) body."""
        self._gate("createmessage")
        return Message.value(body, properties)

    def createbinarymessage(self, body: bytes | str,
                            properties: dict[str, Any] | None = None) -> Message:
        """A message with an AMQP data (binary) body."""
        self._gate("createbinarymessage")
        return Message.data(body, properties)
