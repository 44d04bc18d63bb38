"""`MemoryBackend`: one connection of the contract to a `MemoryBroker` of this process.

The ``$cbs`` node answers put-token requests with 200/OK, per connection, so AzureIoTHub-style
code runs here too. Everything else is the broker's (`broker.py`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from bridge.backends.memory.broker import Consumer, get_broker
from bridge.backends.memory.settings import MemorySettings
from bridge.contract.backend import (
    BackendContext,
    LinkHandle,
    Outcome,
    SessionHandle,
    TransferHandle,
)
from bridge.contract.message import Message, PropertyValue

CBS_NODE = "$cbs"


class MemoryBackend:
    """One connection to a `MemoryBroker`."""

    def __init__(self, context: BackendContext) -> None:
        self.events = context.events
        self.wake = context.wake
        self.settings: MemorySettings = context.config or MemorySettings()
        self.url = context.url
        self.broker = get_broker(self.settings.broker)
        self.connection_id = context.connection_index
        self._links: dict[int, LinkHandle] = {}
        self._cbs_address = f"{CBS_NODE}#{context.agent_id}/{self.connection_id}/{id(self)}"

    def _address(self, link: LinkHandle) -> str:
        return self._cbs_address if link.path == CBS_NODE else link.path

    # -- connection -------------------------------------------------------------------------
    def open(self) -> None:
        problem = self._authenticate()
        if problem is not None:
            self.events.connection_error(problem)
        else:
            self.broker.connect(self)
            self.events.connection_opened()
        self.wake()

    def _authenticate(self) -> str | None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("amqp", "amqps", "memory"):
            return (f"amqp:connection:framing-error: unsupported URL scheme {parts.scheme!r}; "
                    f"use amqp://, amqps:// or memory://")
        users = self.settings.users
        if not users:
            return None
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
        expected = users.get(user)
        if expected is None or expected.get_secret_value() != password:
            return "amqp:unauthorized-access: SASL PLAIN authentication failed"
        return None

    def close(self) -> None:
        self.broker.disconnect(self)
        self._links.clear()

    def wait_closed(self, timeout: float) -> bool:
        return True

    # -- sessions: nothing to do on the broker ----------------------------------------------
    def open_session(self, session: SessionHandle) -> None:
        self.events.session_opened(session)
        self.wake()

    def close_session(self, session: SessionHandle) -> None:
        for link in [lk for lk in self._links.values() if lk.session is session]:
            self.close_link(link)

    # -- links ------------------------------------------------------------------------------
    def open_link(self, link: LinkHandle) -> None:
        self._links[link.id] = link
        self.broker.attach(self, self._address(link), link,
                           capacity=self.settings.queue_capacity, credit=self.settings.prefetch)

    def close_link(self, link: LinkHandle) -> None:
        self._links.pop(link.id, None)
        self.broker.detach_link(self, link)

    # -- transfers --------------------------------------------------------------------------
    def send(self, transfer: TransferHandle) -> None:
        if transfer.link.path == CBS_NODE and self.broker.attached(self, transfer.link):
            self._answer_cbs(transfer)
        else:
            self.broker.send(self, self._address(transfer.link), transfer)

    def _answer_cbs(self, transfer: TransferHandle) -> None:
        """Emulate the CBS node: every put-token is authorised."""
        self.events.transfer_settled(transfer)
        request = transfer.message.properties()
        reply: dict[str, PropertyValue]
        if request.get("operation") != "put-token":
            reply = {"status-code": 400, "status-description": "unsupported CBS operation"}
        else:
            reply = {"status-code": 200, "status-description": "OK"}
        self.broker.enqueue(self._cbs_address, Message("", reply))
        self.wake()

    def cancel(self, transfer: TransferHandle) -> None:
        self.broker.withdraw(self._address(transfer.link), transfer)

    def settle(self, link: LinkHandle, token: Any, outcome: Outcome) -> None:
        consumer = link.backend_state
        if isinstance(consumer, Consumer):
            self.broker.settle(self._address(link), consumer, token, outcome,
                               self.settings.max_delivery_count)


def create(context: BackendContext) -> MemoryBackend:
    return MemoryBackend(context)
