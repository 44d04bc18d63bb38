"""One ``$cbs`` link pair per multiplexed connection, shared by its members' put-tokens.

Legacy agent code opens its own ``$cbs`` sender and receiver. On a connection it shares with
other agents those would be several links with the same address, and which one a hub answers
on is the hub's choice (the IoT Hub stand-in answers on the first; the device SDKs never open
two): a reply could reach the wrong agent. So a member's ``$cbs`` links are virtual: they open
when the connection's one real pair is attached, each put-token goes out on the real sender with
a message id of the connection's, and the reply (``correlation-id`` = that id) is handed to the
member that asked, as a delivery of its own ``$cbs`` receiver, settled when it settles it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from proton import Connection, Delivery, Event, Link
from proton import Message as ProtonMessage

from bridge.backends.amqp import codec
from bridge.contract.backend import BackendEvents, LinkHandle, Outcome, TransferHandle


class MemberHandler(Protocol):
    """What this module needs of `multiplex.MemberHandler`."""

    member_id: int
    events: BackendEvents


class SharedConnection(Protocol):
    """What this module needs of `multiplex.SharedConnection`."""

    conn: Connection | None
    container_id: str

    @property
    def members(self) -> Mapping[int, MemberHandler]: ...

CBS_NODE = "$cbs"
CREDIT = 100  # replies the shared receiver takes at once

_OUTCOMES = {Outcome.ACCEPTED: Delivery.ACCEPTED, Outcome.REJECTED: Delivery.REJECTED,
             Outcome.RELEASED: Delivery.RELEASED}


@dataclass
class _MemberLinks:
    """One member's virtual ``$cbs`` links and the replies it holds."""

    senders: dict[int, LinkHandle] = field(default_factory=dict)
    receivers: dict[int, LinkHandle] = field(default_factory=dict)
    opened: set[int] = field(default_factory=set)  # link ids reported open
    unsettled: dict[int, Delivery] = field(default_factory=dict)
    tokens: Any = field(default_factory=lambda: itertools.count(1))


class SharedCBS:
    """The real ``$cbs`` pair of one `SharedConnection` (reactor thread)."""

    def __init__(self, group: SharedConnection) -> None:
        self.group = group
        self.sender: Link | None = None
        self.receiver: Link | None = None
        self.members: dict[int, _MemberLinks] = {}
        self._queue: list[tuple[MemberHandler, TransferHandle]] = []
        self._asked: dict[str, int] = {}  # request message id -> member id
        self._inflight: dict[int, tuple[int, TransferHandle]] = {}  # id(delivery) -> ...
        self._ids = itertools.count(1)
        self._tags = itertools.count(1)

    def _attach(self) -> None:
        conn = self.group.conn
        assert conn is not None
        session = conn.session()
        session.bridge_cbs = True
        session.open()
        name = self.group.container_id
        self.sender = session.sender(f"{name}-cbs-sender")
        self.sender.target.address = CBS_NODE
        self.sender.bridge_cbs = True
        self.receiver = session.receiver(f"{name}-cbs-receiver")
        self.receiver.source.address = CBS_NODE
        self.receiver.bridge_cbs = True
        self.sender.open()
        self.receiver.open()
        self.receiver.flow(CREDIT)

    # -- a member's commands ------------------------------------------------------------------
    def open_link(self, member: MemberHandler, handle: LinkHandle) -> None:
        links = self.members.setdefault(member.member_id, _MemberLinks())
        (links.senders if handle.role == "sender" else links.receivers)[handle.id] = handle
        if self.sender is None:
            self._attach()
        real = self.sender if handle.role == "sender" else self.receiver
        if real is not None and _attached(real):
            links.opened.add(handle.id)
            member.events.link_opened(handle)

    def owns(self, member: MemberHandler, link_id: int) -> bool:
        links = self.members.get(member.member_id)
        return links is not None and (link_id in links.senders or link_id in links.receivers)

    def close_link(self, member: MemberHandler, handle: LinkHandle) -> None:
        links = self.members.get(member.member_id)
        if links is not None:
            links.senders.pop(handle.id, None)
            links.receivers.pop(handle.id, None)
            links.opened.discard(handle.id)

    def session_ended(self, member: MemberHandler, session_id: int, detail: str) -> None:
        """The member's session ended: so did its ``$cbs`` links on it (an unanswered one
        with the session's error, as a refused attach would)."""
        links = self.members.get(member.member_id)
        if links is None:
            return
        for handle in [*links.senders.values(), *links.receivers.values()]:
            if handle.session.id == session_id:
                if detail and handle.id not in links.opened:
                    member.events.link_error(handle, detail)
                self.close_link(member, handle)

    def send(self, member: MemberHandler, transfer: TransferHandle) -> None:
        self._queue.append((member, transfer))
        self._pump()

    def settle(self, member: MemberHandler, token: int, outcome: Outcome) -> None:
        links = self.members.get(member.member_id)
        delivery = links.unsettled.pop(token, None) if links is not None else None
        if delivery is not None:
            delivery.update(_OUTCOMES[outcome])
            delivery.settle()
            if self.receiver is not None:
                self.receiver.flow(1)

    def leave(self, member: MemberHandler) -> None:
        links = self.members.pop(member.member_id, None)
        if links is not None:
            for delivery in links.unsettled.values():
                delivery.update(Delivery.ACCEPTED)  # a reply nobody will read any more
                delivery.settle()
        self._queue = [(m, t) for m, t in self._queue if m is not member]

    # -- the real links' events ----------------------------------------------------------------
    def on_link_remote_open(self, event: Event) -> None:
        link = event.link
        for member_id, links in self.members.items():
            member = self.group.members.get(member_id)
            if member is None:
                continue
            handles = links.senders if link is self.sender else links.receivers
            for handle in handles.values():
                if handle.id not in links.opened:
                    links.opened.add(handle.id)
                    member.events.link_opened(handle)
        self._pump()

    def on_link_flow(self, event: Event) -> None:
        self._pump()

    def on_link_remote_close(self, event: Event) -> None:
        """The hub detached the real pair: every member's ``$cbs`` link has ended."""
        detail = codec.condition_text(event.link.remote_condition if event.link else None,
                                      "amqp:link:detach-forced: the $cbs link was detached")
        for member_id, links in self.members.items():
            member = self.group.members.get(member_id)
            if member is not None:
                for handle in [*links.senders.values(), *links.receivers.values()]:
                    member.events.link_error(handle, detail)
            links.senders.clear()
            links.receivers.clear()

    def on_delivery(self, event: Event) -> None:
        link, delivery = event.link, event.delivery
        if link is None or delivery is None:
            return
        if link.is_sender:
            self._outcome(delivery)
        elif delivery.readable and not delivery.partial:
            self._reply(link, delivery)

    def _pump(self) -> None:
        sender = self.sender
        while self._queue and sender is not None and _attached(sender) and sender.credit > 0:
            member, transfer = self._queue.pop(0)
            if transfer.cancelled or member.member_id not in self.members:
                continue
            request: ProtonMessage = codec.message_to_proton(transfer.message)
            request_id = f"{self.group.container_id}-{next(self._ids)}"
            request.id = request_id
            if request.reply_to is None:
                request.reply_to = "cbs"
            delivery = sender.delivery(str(next(self._tags)))
            sender.stream(request.encode())
            sender.advance()
            self._asked[request_id] = member.member_id
            self._inflight[id(delivery)] = (member.member_id, transfer)
            delivery.bridge_cbs_key = id(delivery)

    def _outcome(self, delivery: Delivery) -> None:
        if not delivery.remote_state and not delivery.settled:
            return
        key = getattr(delivery, "bridge_cbs_key", None)
        delivery.settle()
        member_id, transfer = self._inflight.pop(key, (0, None))  # type: ignore[arg-type]
        member = self.group.members.get(member_id)
        if member is None or transfer is None:
            return
        outcome = delivery.remote_state
        if outcome == Delivery.ACCEPTED or not outcome:  # settled without one: taken
            member.events.transfer_settled(transfer)
        else:
            member.events.transfer_failed(transfer, codec.outcome_text(
                "rejected" if outcome == Delivery.REJECTED else "released"))

    def _reply(self, link: Link, delivery: Delivery) -> None:
        data = link.recv(delivery.pending) or b""
        link.advance()
        reply = ProtonMessage()
        try:
            reply.decode(data)
            message = codec.decode_message(data)
        except Exception:  # not a reply we can read: nobody to give it to
            delivery.update(Delivery.REJECTED)
            delivery.settle()
            link.flow(1)
            return
        member_id = self._asked.pop(str(reply.correlation_id), 0)
        member = self.group.members.get(member_id)
        links = self.members.get(member_id)
        if member is None or links is None or not links.receivers:
            delivery.update(Delivery.ACCEPTED)  # its agent left meanwhile
            delivery.settle()
            link.flow(1)
            return
        token = next(links.tokens)
        links.unsettled[token] = delivery
        for handle in links.receivers.values():
            member.events.delivery(handle, message, token)
            break  # one receiver takes it (an agent opens one)


def _attached(link: Link) -> bool:
    return bool(link.state & Link.REMOTE_ACTIVE)
