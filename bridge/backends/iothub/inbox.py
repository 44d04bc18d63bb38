"""`RetainingInbox`: the MQTT engine's inbox, plus what IoT Hub's token expiry needs.

When a SAS token the backend cannot renew expires, IoT Hub closes the MQTT connection and the
legacy code sees its cloud-to-device receiver fail (``RECEIVER_ERROR``); it opens a new one after
its next put-token. C2D messages that arrive meanwhile (or had not been delivered yet) must not
be lost or acknowledged: the subscription is *retained* without receivers and what arrives waits,
unacknowledged, for the next receiver opened on the same filter.
"""

from __future__ import annotations

from bridge.contract.backend import LinkHandle
from bridge.engines.mqtt.inbound import NO_RECEIVER, Inbox, Subscription, Token
from bridge.engines.mqtt.topics import topic_matches


class RetainingInbox(Inbox):
    """An `Inbox` whose subscriptions can outlive their receivers (driver thread only)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._retained: set[str] = set()  # topic filters kept without receivers

    def retain(self, link: LinkHandle) -> None:
        """The receiver *link* ended, but its subscription is kept: messages that arrive (or
        had not been delivered yet) wait, unacknowledged, for the next receiver opened on the
        same filter. Only when *link* was the filter's last receiver; otherwise as `close`."""
        sub = self._link_sub.get(link.id)
        if sub is None:
            return
        if len(sub.receivers) > 1:
            self.close(link)
            return
        del self._link_sub[link.id]
        sub.receivers.pop(link.id, None)
        sub.opened.discard(link.id)
        self._retained.add(sub.topic_filter)

    # -- the engine's hooks ------------------------------------------------------------------
    def _receiver_joined(self, sub: Subscription, link: LinkHandle) -> None:
        if sub.topic_filter in self._retained:
            self._retained.discard(sub.topic_filter)
            for token in sub.early:  # they waited for this receiver
                token.link = link

    def _waiting_for_receiver(self, sub: Subscription) -> bool:
        return sub.topic_filter in self._retained

    def _refused(self, sub: Subscription) -> None:
        if sub.topic_filter not in self._retained:
            return
        # nobody left to hand its waiting messages to
        self._retained.discard(sub.topic_filter)
        self.subs.pop(sub.topic_filter, None)
        if sub.sub_id is not None:
            self._by_id.pop(sub.sub_id, None)
        early, sub.early = sub.early, []
        for token in early:
            self.stats.discarded += 1
            self._finish(token)

    def _waiting_targets(self, subs: list[Subscription]
                         ) -> list[tuple[Subscription, LinkHandle | None]]:
        return [(sub, None) for sub in subs if sub.topic_filter in self._retained]

    def _hold_for_next_receiver(self, token: Token) -> bool:
        """A released message whose receiver is gone: wait on its retained subscription."""
        sub = next((s for s in self.subs.values() if s.topic_filter in self._retained
                    and topic_matches(s.topic_filter, token.inbound.topic)), None)
        if sub is None:
            return False
        token.link = NO_RECEIVER
        sub.early.append(token)
        return True
