"""A raw proton AMQP 1.0 peer (a listener) for what RabbitMQ 3.10 cannot do.

RabbitMQ never detaches a link with an error, never settles a transfer as rejected, released or
modified, never withholds link credit, and has no ``$cbs`` node. `AmqpPeer` is a plain
python-qpid-proton server on 127.0.0.1 (optionally TLS) that does all of these on request, so the
backend's handling of those real frames is tested over a real socket. It also stands in for Azure
IoT Hub's CBS node: a put-token on ``$cbs`` is answered with ``status-code`` 200 (an AMQP int) and
``status-description`` "OK" on the peer's ``$cbs`` sender.

Test threads talk to the peer's reactor through proton's own `EventInjector` and
`ApplicationEvent`; what the peer saw is recorded under a condition variable.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proton import Condition, Delivery, Endpoint, Event, SSLDomain, Terminus
from proton import Message as ProtonMessage
from proton.reactor import ApplicationEvent, Container, EventInjector

Outcome = str | tuple[str, str, str]  # "accepted" | "released" | "modified" | ("rejected", c, d)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Seen:
    """What the peer observed, for assertions."""

    connections: list[dict[str, Any]] = field(default_factory=list)
    attaches: list[tuple[str, str | None]] = field(default_factory=list)  # (our role, address)
    messages: dict[str, list[ProtonMessage]] = field(default_factory=dict)
    detaches: list[str | None] = field(default_factory=list)
    dispositions: list[tuple[str | None, int]] = field(default_factory=list)


class AmqpPeer:
    """An AMQP 1.0 listener with scripted behaviour. Use as a context manager."""

    def __init__(self, *, tls: tuple[Path, Path] | None = None, credit: int = 100,
                 refuse: dict[str, tuple[str, str]] | None = None,
                 outcomes: dict[str, Callable[[ProtonMessage], Outcome]] | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.credit = credit  # initial credit the peer grants each of our senders
        self.refuse = dict(refuse or {})
        self.outcomes = dict(outcomes or {})
        self.seen = Seen()
        self.changed = threading.Condition()
        self._commands: deque[Callable[[], None]] = deque()
        self._injector = EventInjector()
        self._handler = _PeerHandler(self)
        self._container = Container(self._handler)
        self._container.selectable(self._injector)
        self._thread = threading.Thread(target=self._container.run, name=f"amqp-peer-{self.port}",
                                        daemon=True)
        self._listening = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> AmqpPeer:
        self._thread.start()
        assert self._listening.wait(5), "peer did not start listening"
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self._handler.shutdown)
        self._injector.close()
        self._thread.join(5)

    def url(self, userinfo: str | None = None, host: str = "127.0.0.1") -> str:
        scheme = "amqps" if self.tls else "amqp"
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}{host}:{self.port}"

    # -- test thread -> reactor ---------------------------------------------------------------
    def call(self, fn: Callable[[], None]) -> None:
        """Run *fn* on the peer's reactor thread (proton's EventInjector + ApplicationEvent)."""
        self._commands.append(fn)
        self._injector.trigger(ApplicationEvent("peer_command"))

    def detach(self, address: str, condition: str, description: str) -> None:
        """Detach (close) our link(s) on *address* with an error, as a broker does."""
        self.call(lambda: self._handler.detach(address, Condition(condition, description)))

    def grant(self, address: str, credit: int) -> None:
        """Give our sender(s) on *address* *credit* more link credit."""
        self.call(lambda: self._handler.grant(address, credit))

    def send(self, address: str, message: ProtonMessage) -> None:
        """Deliver *message* to our receiver(s) on *address*."""
        self.call(lambda: self._handler.send(address, message))

    def close_connections(self, condition: str, description: str) -> None:
        self.call(lambda: self._handler.close_all(Condition(condition, description)))

    def wait_for(self, predicate: Callable[[Seen], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.seen), timeout)

    def messages(self, address: str) -> list[ProtonMessage]:
        with self.changed:
            return list(self.seen.messages.get(address, []))

    def _record(self, fn: Callable[[Seen], None]) -> None:
        with self.changed:
            fn(self.seen)
            self.changed.notify_all()


class _PeerHandler:
    """Reactor-thread side of `AmqpPeer` (proton event methods)."""

    def __init__(self, peer: AmqpPeer) -> None:
        self.peer = peer
        self.links: list[Any] = []
        self.connections: list[Any] = []
        self.acceptor: Any = None

    def on_reactor_init(self, event: Event) -> None:
        ssl_domain = None
        if self.peer.tls is not None:
            cert, key = self.peer.tls
            ssl_domain = SSLDomain(SSLDomain.MODE_SERVER)
            ssl_domain.set_credentials(str(cert), str(key), None)
        scheme = "amqps" if ssl_domain else "amqp"
        self.acceptor = event.container.listen(f"{scheme}://127.0.0.1:{self.peer.port}",
                                               ssl_domain=ssl_domain)
        self.peer._listening.set()

    def on_peer_command(self, event: Event) -> None:
        commands = self.peer._commands
        while commands:
            commands.popleft()()

    def shutdown(self) -> None:
        for conn in self.connections:
            if conn.state & Endpoint.LOCAL_ACTIVE:
                conn.close()
        if self.acceptor is not None:
            self.acceptor.close()

    # -- connection / session ---------------------------------------------------------------
    def on_connection_bound(self, event: Event) -> None:
        # Acceptor transports have no SASL layer until asked; offer what IoT Hub offers.
        event.transport.sasl().allowed_mechs("ANONYMOUS")

    def on_connection_remote_open(self, event: Event) -> None:
        conn = event.connection
        transport = event.transport
        info = {"mech": transport.sasl().mech, "user": transport.user,
                "hostname": conn.remote_hostname, "container": conn.remote_container}
        self.peer._record(lambda seen: seen.connections.append(info))
        self.connections.append(conn)
        conn.open()

    def on_session_remote_open(self, event: Event) -> None:
        event.session.open()

    def on_session_remote_close(self, event: Event) -> None:
        event.session.close()

    def on_connection_remote_close(self, event: Event) -> None:
        event.connection.close()

    # -- links --------------------------------------------------------------------------------
    def on_link_remote_open(self, event: Event) -> None:
        link = event.link
        # role seen from the bridge: the peer's receiver is the bridge's sender
        role = "sender" if link.is_receiver else "receiver"
        address = (link.remote_target if link.is_receiver else link.remote_source).address
        self.peer._record(lambda seen: seen.attaches.append((role, address)))
        refusal = self.peer.refuse.get(address or "")
        if refusal is not None:
            # the AMQP way to refuse: attach with a null terminus, then detach with the error
            link.source.type = Terminus.UNSPECIFIED
            link.target.type = Terminus.UNSPECIFIED
            link.open()
            link.condition = Condition(*refusal)
            link.close()
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.peer_address = address
        self.links.append(link)
        link.open()
        if link.is_receiver and self.peer.credit:
            link.flow(self.peer.credit)

    def on_link_remote_close(self, event: Event) -> None:
        link = event.link
        address = getattr(link, "peer_address", None)
        self.peer._record(lambda seen: seen.detaches.append(address))
        if link in self.links:
            self.links.remove(link)
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.close()

    def _links(self, address: str, bridge_role: str) -> list[Any]:
        want_receiver = bridge_role == "sender"
        return [link for link in self.links
                if getattr(link, "peer_address", None) == address
                and link.is_receiver == want_receiver and link.state & Endpoint.LOCAL_ACTIVE]

    def detach(self, address: str, condition: Condition) -> None:
        for link in [*self._links(address, "sender"), *self._links(address, "receiver")]:
            link.condition = condition
            link.close()
            self.links.remove(link)

    def grant(self, address: str, credit: int) -> None:
        for link in self._links(address, "sender"):
            link.flow(credit)

    def send(self, address: str, message: ProtonMessage) -> None:
        for link in self._links(address, "receiver"):
            link.send(message)

    def close_all(self, condition: Condition) -> None:
        for conn in self.connections:
            if conn.state & Endpoint.LOCAL_ACTIVE:
                conn.condition = condition
                conn.close()

    # -- deliveries ---------------------------------------------------------------------------
    def on_delivery(self, event: Event) -> None:
        link = event.link
        delivery = event.delivery
        address = getattr(link, "peer_address", None)
        if link.is_sender:  # the bridge settled something we sent it
            if delivery.remote_state or delivery.settled:
                state = delivery.remote_state
                self.peer._record(lambda seen: seen.dispositions.append((address, state)))
                delivery.settle()
            return
        if not delivery.readable or delivery.partial:
            return
        message = ProtonMessage()
        message.decode(link.recv(delivery.pending))
        link.advance()
        self.peer._record(lambda seen: seen.messages.setdefault(address or "", []).append(
            message))
        self._settle(delivery, self.peer.outcomes.get(address or "", _accept)(message))
        if address == "$cbs":
            self._answer_cbs(message)

    @staticmethod
    def _settle(delivery: Delivery, outcome: Outcome) -> None:
        if isinstance(outcome, tuple):
            _, condition, description = outcome
            delivery.local.condition = Condition(condition, description)
            delivery.update(Delivery.REJECTED)
        elif outcome == "released":
            delivery.update(Delivery.RELEASED)
        elif outcome == "modified":
            delivery.local.failed = True
            delivery.local.undeliverable = True
            delivery.update(Delivery.MODIFIED)
        elif outcome == "accepted":
            delivery.update(Delivery.ACCEPTED)
        else:
            return  # "none": leave it unsettled
        delivery.settle()

    def _answer_cbs(self, request: ProtonMessage) -> None:
        properties = request.properties or {}
        ok = properties.get("operation") == "put-token" and str(
            request.body).startswith("SharedAccessSignature ")
        reply = ProtonMessage(
            body=None, correlation_id=request.id,
            properties={"status-code": 200 if ok else 401,
                        "status-description": "OK" if ok else "Unauthorized"})
        self.send("$cbs", reply)


def _accept(message: ProtonMessage) -> Outcome:
    return "accepted"
