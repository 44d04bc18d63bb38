"""Echo: a sender's transfers are confirmed and delivered to the receivers of the same path."""

from typing import Any

from bridge.contract.backend import BackendContext, Outcome
from bridge.contract.message import Message


class EchoBackend:
    def __init__(self, context: BackendContext) -> None:
        self.events = context.events
        self.wake = context.wake
        self.greeting = context.config.greeting
        self.receivers: dict[int, Any] = {}

    def open(self) -> None:
        self.events.connection_opened()
        self.wake()

    def close(self) -> None:
        self.receivers.clear()

    def wait_closed(self, timeout: float) -> bool:
        return True

    def open_session(self, session: Any) -> None:
        self.events.session_opened(session)
        self.wake()

    def close_session(self, session: Any) -> None:
        pass

    def open_link(self, link: Any) -> None:
        if link.role == "receiver":
            self.receivers[link.id] = link
        self.events.link_opened(link)
        self.wake()

    def close_link(self, link: Any) -> None:
        self.receivers.pop(link.id, None)

    def send(self, transfer: Any) -> None:
        self.events.transfer_settled(transfer)
        message = transfer.message
        echoed = Message(message.body(), {**message.properties(), "greeting": self.greeting},
                         message.kind)
        for link in self.receivers.values():
            if link.path == transfer.link.path:
                self.events.delivery(link, echoed, None)
        self.wake()

    def cancel(self, transfer: Any) -> None:
        pass

    def settle(self, link: Any, token: Any, outcome: Outcome) -> None:
        pass


def create(context: BackendContext) -> EchoBackend:
    return EchoBackend(context)
