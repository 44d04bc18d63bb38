"""The ``memory`` backend: an in-process AMQP-like broker, the default (nothing to install).

Addresses are queues that hold messages until a receiver attaches; receivers on one address
compete (round robin); a sender gets credit only while its queue is below capacity, so a transfer
can wait for credit; a receiver holds at most ``prefetch`` unsettled deliveries; *released*
messages are redelivered (until ``max_delivery_count``), *rejected* ones are dead-lettered and
counted. The ``$cbs`` node answers put-token requests with 200/OK, per connection, so
AzureIoTHub-style code runs here too.

Brokers are named (``memory.broker``): agents in one process that name the same broker share
queues. `get_broker` gives tests and demos the hub-side view (stats, injected failures).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from bridge.backends.base import BackendContext, LinkHandle, Outcome, SessionHandle, TransferHandle
from bridge.contract.message import BodyKind, Message, received_properties, received_value

CBS_NODE = "$cbs"


@dataclass
class QueueStats:
    """Counters of one address, for tests and the hub-side view."""

    depth: int = 0
    enqueued: int = 0
    accepted: int = 0
    rejected: int = 0
    released: int = 0
    dead_lettered: list[Message] = field(default_factory=list)


class _Entry:
    __slots__ = ("delivery_count", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.delivery_count = 0


class _Consumer:
    __slots__ = ("backend", "credit", "link", "unsettled")

    def __init__(self, backend: MemoryBackend, link: LinkHandle, credit: int) -> None:
        self.backend = backend
        self.link = link
        self.credit = credit
        self.unsettled: dict[int, _Entry] = {}


class _Queue:
    __slots__ = ("address", "blocked", "capacity", "consumers", "messages", "next_consumer",
                 "stats")

    def __init__(self, address: str, capacity: int) -> None:
        self.address = address
        self.capacity = capacity
        self.messages: deque[_Entry] = deque()
        self.consumers: list[_Consumer] = []
        self.next_consumer = 0
        self.blocked: deque[tuple[MemoryBackend, TransferHandle]] = deque()
        self.stats = QueueStats()


class MemoryBroker:
    """One in-process broker. Thread-safe; never calls user code."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()
        self._queues: dict[str, _Queue] = {}
        self._connections: set[MemoryBackend] = set()
        self._delivery_ids = itertools.count(1)

    # -- hub-side API (tests, demos) --------------------------------------------------------
    def stats(self, address: str) -> QueueStats:
        """A snapshot of the counters of *address*."""
        with self.lock:
            queue = self._queues.get(address)
            if queue is None:
                return QueueStats()
            snapshot = QueueStats(**{**queue.stats.__dict__})
            snapshot.dead_lettered = list(queue.stats.dead_lettered)
            snapshot.depth = len(queue.messages)
            return snapshot

    def publish(self, address: str, message: Message) -> None:
        """Put *message* on *address* as another application would (ignores capacity).

        The body and properties go through the same conversions a wire protocol would apply.
        """
        message = Message(received_value(message.body()) if message.kind is BodyKind.VALUE
                          else message.body(), received_properties(message._properties),
                          message.kind)
        with self.lock:
            queue = self._queue(address, capacity=None)
            queue.messages.append(_Entry(message))
            queue.stats.enqueued += 1
            self._pump(queue)

    def drop_connections(self, detail: str = "amqp:connection:forced: connection dropped") -> int:
        """Fail every open connection as if the network went away; returns how many."""
        with self.lock:
            victims = list(self._connections)
            for backend in victims:
                backend._detach_all()
        for backend in victims:
            backend.events.connection_error(detail)
        return len(victims)

    def detach(self, address: str, condition: str, description: str) -> int:
        """Detach every link on *address* with an error, as a broker does; returns how many."""
        detail = f"{condition}: {description}"
        with self.lock:
            victims = [(b, link) for b in self._connections for link in list(b.links.values())
                       if b._address(link) == address]
            for backend, link in victims:
                backend._detach(link)
        for backend, link in victims:
            backend.events.link_error(link, detail)
        return len(victims)

    # -- broker internals (lock held) -------------------------------------------------------
    def _queue(self, address: str, capacity: int | None) -> _Queue:
        queue = self._queues.get(address)
        if queue is None:
            queue = _Queue(address, capacity or 10_000)
            self._queues[address] = queue
        elif capacity is not None:
            queue.capacity = capacity
        return queue

    def _pump(self, queue: _Queue) -> None:
        consumers = queue.consumers
        messages = queue.messages
        while messages and consumers:
            for _ in range(len(consumers)):
                index = queue.next_consumer % len(consumers)
                queue.next_consumer = index + 1
                consumer = consumers[index]
                if consumer.credit > 0:
                    break
            else:
                break  # nobody has credit
            entry = messages.popleft()
            entry.delivery_count += 1
            consumer.credit -= 1
            token = next(self._delivery_ids)
            consumer.unsettled[token] = entry
            consumer.backend.events.delivery(consumer.link, entry.message, token)
        # Senders waiting for credit get it as the queue drains.
        while queue.blocked and len(messages) < queue.capacity:
            backend, transfer = queue.blocked.popleft()
            self._accept_transfer(queue, backend, transfer)

    def _accept_transfer(self, queue: _Queue, backend: MemoryBackend,
                         transfer: TransferHandle) -> None:
        queue.messages.append(_Entry(transfer.message))
        queue.stats.enqueued += 1
        backend.events.transfer_settled(transfer)
        if queue.consumers:
            self._pump(queue)

    def _settle(self, queue: _Queue, consumer: _Consumer, token: int, outcome: Outcome,
                max_delivery_count: int) -> None:
        entry = consumer.unsettled.pop(token, None)
        if entry is None:
            return
        consumer.credit += 1
        stats = queue.stats
        if outcome is Outcome.ACCEPTED:
            stats.accepted += 1
        elif outcome is Outcome.REJECTED:
            stats.rejected += 1
            stats.dead_lettered.append(entry.message)
        else:
            stats.released += 1
            if entry.delivery_count >= max_delivery_count:
                stats.dead_lettered.append(entry.message)
            else:
                queue.messages.appendleft(entry)
        self._pump(queue)


_brokers: dict[str, MemoryBroker] = {}
_brokers_lock = threading.Lock()


def get_broker(name: str = "default") -> MemoryBroker:
    """The process-wide broker called *name* (created on first use)."""
    with _brokers_lock:
        broker = _brokers.get(name)
        if broker is None:
            broker = _brokers[name] = MemoryBroker(name)
        return broker


class MemoryBackend:
    """One connection to a `MemoryBroker`."""

    def __init__(self, context: BackendContext) -> None:
        self.events = context.events
        self.settings = context.settings.memory
        self.url = context.url
        self.broker = get_broker(self.settings.broker)
        self.connection_id = context.connection_index
        self.links: dict[int, LinkHandle] = {}
        self._cbs_address = f"{CBS_NODE}#{context.agent_id}/{self.connection_id}/{id(self)}"

    # -- connection -------------------------------------------------------------------------
    def open(self) -> None:
        problem = self._authenticate()
        if problem is not None:
            self.events.connection_error(problem)
            return
        with self.broker.lock:
            self.broker._connections.add(self)
        self.events.connection_opened()

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
        with self.broker.lock:
            self._detach_all()
            self.broker._connections.discard(self)

    def wait_closed(self, timeout: float) -> bool:
        return True

    # -- sessions: nothing to do on the broker ----------------------------------------------
    def open_session(self, session: SessionHandle) -> None:
        self.events.session_opened(session)

    def close_session(self, session: SessionHandle) -> None:
        with self.broker.lock:
            for link in [lk for lk in self.links.values() if lk.session is session]:
                self._detach(link)

    # -- links ------------------------------------------------------------------------------
    def _address(self, link: LinkHandle) -> str:
        return self._cbs_address if link.path == CBS_NODE else link.path

    def open_link(self, link: LinkHandle) -> None:
        with self.broker.lock:
            self.links[link.id] = link
            queue = self.broker._queue(self._address(link), self.settings.queue_capacity)
            if link.role == "receiver":
                consumer = _Consumer(self, link, self.settings.prefetch)
                link.backend_state = consumer
                queue.consumers.append(consumer)
        self.events.link_opened(link)
        if link.role == "receiver":
            with self.broker.lock:
                self.broker._pump(queue)

    def close_link(self, link: LinkHandle) -> None:
        with self.broker.lock:
            self._detach(link)

    def _detach(self, link: LinkHandle) -> None:
        """Lock held. Unsettled deliveries go back to the front of the queue, in order."""
        if self.links.pop(link.id, None) is None:
            return
        queue = self.broker._queue(self._address(link), None)
        if link.role == "receiver":
            consumer: _Consumer = link.backend_state
            if consumer in queue.consumers:
                queue.consumers.remove(consumer)
            for token in sorted(consumer.unsettled, reverse=True):
                queue.messages.appendleft(consumer.unsettled.pop(token))
            self.broker._pump(queue)
        else:
            queue.blocked = deque((b, t) for b, t in queue.blocked if t.link is not link)

    def _detach_all(self) -> None:
        for link in list(self.links.values()):
            self._detach(link)

    # -- transfers --------------------------------------------------------------------------
    def send(self, transfer: TransferHandle) -> None:
        link = transfer.link
        with self.broker.lock:
            if link.id not in self.links:
                self.events.transfer_failed(transfer, "amqp:link:detach-forced: link closed")
                return
            address = self._address(link)
            if link.path == CBS_NODE:
                self._answer_cbs(transfer)
                return
            queue = self.broker._queue(address, None)
            if queue.blocked or len(queue.messages) >= queue.capacity:
                queue.blocked.append((self, transfer))  # no credit: wait
            else:
                self.broker._accept_transfer(queue, self, transfer)

    def _answer_cbs(self, transfer: TransferHandle) -> None:
        """Lock held. Emulate the CBS node: every put-token is authorised."""
        self.events.transfer_settled(transfer)
        request = transfer.message.properties()
        if request.get("operation") != "put-token":
            reply = {"status-code": 400, "status-description": "unsupported CBS operation"}
        else:
            reply = {"status-code": 200, "status-description": "OK"}
        queue = self.broker._queue(self._cbs_address, None)
        queue.messages.append(_Entry(Message("", reply)))
        queue.stats.enqueued += 1
        self.broker._pump(queue)

    def cancel(self, transfer: TransferHandle) -> None:
        with self.broker.lock:
            queue = self.broker._queues.get(self._address(transfer.link))
            if queue is not None:
                queue.blocked = deque((b, t) for b, t in queue.blocked if t is not transfer)

    def settle(self, link: LinkHandle, token: Any, outcome: Outcome) -> None:
        with self.broker.lock:
            consumer = link.backend_state
            if not isinstance(consumer, _Consumer):
                return
            queue = self.broker._queue(self._address(link), None)
            self.broker._settle(queue, consumer, token, outcome, self.settings.max_delivery_count)


def create(context: BackendContext) -> MemoryBackend:
    return MemoryBackend(context)
