"""`IoTHubBackend`: AzureIoTHub-style AMQP agent code over IoT Hub's MQTT device surface.

One contract connection is one MQTT connection as one device (or module) identity, carried by
the MQTT engine's driver, inbox and outbound window (`bridge.engines.mqtt`); this module
adds IoT Hub's topics and property bags (`codec`), SAS tokens and the ``$cbs`` node (`cbs`).
docs/backends/iothub.md is the full description; in short:

- **Authentication, two paths.** With a key (or a pre-made token) in the settings the backend
  connects at once (CONNECTION_OPEN on CONNACK) and renews its own tokens by reconnecting before
  they expire. Without one, CONNECTION_OPEN comes at once with no MQTT connection ("pending
  auth"): the agent's ``$cbs`` put-token supplies the token, which becomes the MQTT password;
  the reply on the ``$cbs`` receiver is ``status-code`` 200 / ``status-description`` "OK" on
  CONNACK success, 401 (or 400/503) with the reason otherwise. A later put-token reconnects
  with the new token; the agent's objects stay open.
- **Token expiry** (a token the backend cannot renew itself): IoT Hub closes the MQTT connection
  at ``se``; the backend does so itself at that moment and reports what the legacy code reacts
  to: ``SENDER_ERROR`` "amqp:unauthorized-access: ..." on every event sender and
  ``RECEIVER_ERROR`` "amqp:unauthorized-access: Token Invalid ..." on every C2D receiver. The
  connection, sessions and ``$cbs`` links stay open; C2D messages that arrive meanwhile wait
  (unacknowledged) for the next receiver; a new put-token reconnects.
- **Addresses**: `topics.route_for_path` (D2C senders, C2D / module-input receivers, ``$cbs``).
  As on IoT Hub's AMQP surface the far end refuses, with an event: anything else ends in
  SENDER_ERROR / RECEIVER_ERROR "amqp:not-found: ..." naming the supported paths; another
  identity's path in "amqp:unauthorized-access: ..." when the link would attach.
- **Settlement**: accept = PUBACK; reject = PUBACK and a warning (IoT Hub over MQTT cannot
  reject); release = redelivered by the bridge with the PUBACK withheld (``iothub.release =
  "redeliver"``) or PUBACK and a warning (``"complete"``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import paho.mqtt.client as paho

from bridge.backends.iothub import cbs, codec, sas
from bridge.backends.iothub.identity import Identity, mqtt_username, plan_for
from bridge.backends.iothub.inbox import RetainingInbox
from bridge.backends.iothub.settings import IoTHubSettings
from bridge.backends.iothub.topics import HubRoute, RouteKind, route_for_path
from bridge.contract.backend import (
    BackendContext,
    LinkHandle,
    Outcome,
    SessionHandle,
    TransferHandle,
)
from bridge.contract.message import Message
from bridge.engines.mqtt import reasons
from bridge.engines.mqtt.client import build_client, tls_context
from bridge.engines.mqtt.connection import MQTTConnection, live_connections
from bridge.engines.mqtt.inbound import InboundOptions, Token
from bridge.engines.mqtt.outbound import Outgoing
from bridge.engines.mqtt.transport import DONE, UP, BrokerLimits, DriverOptions
from bridge.errors import AddressError
from bridge.loop.core import Timer

log = logging.getLogger("bridge.backends.iothub")

NOT_FOUND = "amqp:not-found"  # what IoT Hub's AMQP surface detaches an unknown address with

#: A connection lost this close to the token's expiry counts as the hub's expiry cut.
EXPIRY_SLACK = 5.0

def live_backends(agent_id: str | None = None) -> list[IoTHubBackend]:
    """IoT Hub connections of this process that are not closed (of one agent, if given)."""
    return [c for c in live_connections(agent_id) if isinstance(c, IoTHubBackend)]


class _CBSReply:
    """The delivery token of a CBS reply: settling it has no effect (the node is local)."""

    __slots__ = ()


class IoTHubBackend(MQTTConnection):
    inbox: RetainingInbox
    inbox_class = RetainingInbox

    def __init__(self, context: BackendContext) -> None:
        settings: IoTHubSettings = context.config or IoTHubSettings()
        self.settings = settings
        self._problem: str | None = None
        try:
            self.plan = plan_for(settings, context.url)
        except ValueError as exc:
            self._problem = f"{reasons.INVALID_FIELD}: {exc}"
            self.plan = plan_for(settings, "amqps://unknown.invalid")
        self.identity: Identity | None = self.plan.identity
        # driver-thread state
        self._password: str | None = None
        self._expiry: int | None = None
        self._fallback: tuple[str, int] | None = None  # token in use before a renewal
        self._authorized = False  # event links may attach (MQTT authenticated)
        self._opened = False
        self._dead = False  # CONNECTION_ERROR reported
        self._timer: Timer | None = None
        self._connecting: cbs.PutToken | None = None  # put-token awaiting its CONNACK
        self._put_queue: deque[cbs.PutToken] = deque()
        self._pending: dict[int, LinkHandle] = {}  # event links waiting for authorisation
        self._links: dict[int, LinkHandle] = {}  # attached event links
        self._cbs_receivers: dict[int, LinkHandle] = {}
        self._warned: set[str] = set()
        endpoint = self.plan.endpoint
        options = DriverOptions(
            endpoint=endpoint, keepalive=settings.keepalive, clean_start=settings.clean_session,
            v5=False, connect_timeout=settings.connect_timeout,
            reconnect=settings.reconnect == "auto", min_delay=settings.reconnect_min_delay,
            max_delay=settings.reconnect_max_delay,
            max_attempts=settings.reconnect_max_attempts)
        who = self.identity.client_id if self.identity else "cbs"
        super().__init__(
            context, name=f"bridge-iothub-{who}", broker=endpoint.describe(),
            driver_options=options,
            inbound_options=InboundOptions(v5=False, qos=1, release_delay=settings.release_delay,
                                           max_delivery_count=settings.max_delivery_count,
                                           dead_letter_topic=None),
            max_inflight=settings.max_inflight, buffer_limit=settings.buffer_limit,
            on_demand=True, before_attempt=self._before_attempt)

    def __repr__(self) -> str:
        who = self.identity.describe() if self.identity else "identity from put-token"
        return f"<IoTHubBackend {who} -> {self.plan.endpoint.describe()} {self.driver.state}>"

    # -- paho client (driver thread) ---------------------------------------------------------------
    def _make_client(self) -> paho.Client:
        ca_file = self.settings.ca_file
        tls = tls_context(str(ca_file) if ca_file else None, None, None, verify=True,
                          insecure=False)
        # The client id is set before each attempt: in the CBS path the identity is only
        # known once the first put-token arrived.
        placeholder = self.identity.client_id if self.identity else f"{self.agent_id}-pending"
        client = build_client(endpoint=self.plan.endpoint, client_id=placeholder, v5=False,
                              clean_start=self.settings.clean_session, username=None,
                              password=None, connect_timeout=self.settings.connect_timeout,
                              tls=tls)
        self._install_paho_callbacks(client)
        return client

    def _before_attempt(self, client: paho.Client) -> None:
        identity = self.identity
        if identity is None:  # restart() is only called once the identity is known
            raise RuntimeError("no IoT Hub identity to connect as")
        if self.plan.can_sign and (self._expiry is None or time.time() >= self._renew_at()):
            self._sign()
        # paho has no public setter for the client id; one identity per connection, so it is
        # set once (before the first CONNECT) and never changes.
        client._client_id = identity.client_id.encode("utf-8")
        client.username_pw_set(mqtt_username(identity, self.settings), self._password)

    def _sign(self) -> None:
        assert self.plan.key is not None and self.identity is not None
        expiry = int(time.time() + self.settings.token_ttl)
        self._password = sas.generate_token(self.identity.audience, self.plan.key, expiry,
                                            key_name=self.plan.key_name)
        self._expiry = expiry

    def _renew_at(self) -> float:
        """When a self-signed token is replaced: the SDK's 120 s before expiry, or 80 % of a
        short lifetime."""
        assert self._expiry is not None
        margin = min(sas.RENEW_MARGIN, self.settings.token_ttl / 5)
        return self._expiry - margin

    # -- codec ------------------------------------------------------------------------------------
    def _decode(self, msg: paho.MQTTMessage) -> Message:
        return codec.decode_c2d(msg.topic, msg.payload, self.identity,
                                type_hints=self.settings.type_hints)

    # -- addresses --------------------------------------------------------------------------------
    def route(self, role: str, path: str) -> HubRoute:
        """Where *path* goes for a ``"sender"`` or ``"receiver"``; `AddressError` (naming the
        supported paths) for anything IoT Hub does not serve. Which identity may use it is
        checked when the link attaches."""
        return route_for_path(role, path)

    # No validate_path: as on IoT Hub's AMQP surface, a path is refused by the far end (an
    # event: SENDER_ERROR / RECEIVER_ERROR), never by an exception at opensender/openreceiver.

    # -- Backend commands (any thread; never block) ------------------------------------------------
    def open(self) -> None:
        if self._problem is not None:
            self.events.connection_error(self._problem)
            self.wake()
            return
        self._start()
        if self.plan.self_auth:
            self.driver.call(self._connect_self)
        else:
            # Legacy code opens amqps://<hub> without credentials and authenticates with CBS.
            self._opened = True
            self.events.connection_opened()
            self.wake()

    def close_session(self, session: SessionHandle) -> None:
        self.driver.call(self._close_session, session)

    def open_link(self, link: LinkHandle) -> None:
        try:
            link.backend_state = self.route(link.role, link.path)
        except AddressError as exc:
            self.driver.call(self.events.link_error, link, f"{NOT_FOUND}: {exc}")
            return
        self.driver.call(self._open_link, link)

    def close_link(self, link: LinkHandle) -> None:
        self.driver.call(self._close_link, link)

    def send(self, transfer: TransferHandle) -> None:
        route: HubRoute = transfer.link.backend_state
        if route.kind is RouteKind.CBS:
            self.driver.call(self._put_token, transfer)
            return
        identity = self.identity
        assert identity is not None  # event links attach only once it is known
        try:
            publish = codec.encode_d2c(transfer.message, identity,
                                       type_hints=self.settings.type_hints)
        except codec.HubCodecError as exc:
            self.events.transfer_failed(transfer, f"{exc.condition}: {exc}")
            self.wake()
            return
        size = len(publish.payload) + len(publish.topic.encode("utf-8"))
        self.driver.call(self.outbound.submit,
                         Outgoing(publish.topic, publish.payload, None, 1, transfer=transfer,
                                  link_id=transfer.link.id, size=size))

    def settle(self, link: LinkHandle, token: Any, outcome: Outcome) -> None:
        if isinstance(token, Token):
            self.driver.call(self._settle, token, outcome)

    # -- links (driver thread) -------------------------------------------------------------------
    def _open_link(self, link: LinkHandle) -> None:
        route: HubRoute = link.backend_state
        if route.kind is RouteKind.CBS:
            if link.role == "receiver":
                self._cbs_receivers[link.id] = link
            self.events.link_opened(link)  # the $cbs node is the bridge's own
        elif self._authorized:
            self._attach(link)
        else:
            self._pending[link.id] = link  # attaches once a put-token authenticated

    def _attach(self, link: LinkHandle) -> None:
        route: HubRoute = link.backend_state
        identity = self.identity
        assert identity is not None
        if (route.device_id, route.module_id) != (identity.device_id, identity.module_id):
            # one identity per MQTT connection: another device's (or module's) path is not ours
            self.events.link_error(link, f"{reasons.UNAUTHORIZED}: IoT Hub path {link.path!r} "
                                         f"is not for {identity.describe()}, the identity this "
                                         f"connection authenticated as (one identity per MQTT "
                                         f"connection)")
            return
        self._links[link.id] = link
        if link.role == "sender":
            self.events.link_opened(link)  # a topic needs nothing from the hub
        else:
            self.inbox.open(link, route.topic)  # RECEIVER_OPEN on SUBACK

    def _close_link(self, link: LinkHandle) -> None:
        self._pending.pop(link.id, None)
        self._cbs_receivers.pop(link.id, None)
        if self._links.pop(link.id, None) is not None:
            if link.role == "receiver":
                self.inbox.close(link)
            else:
                self.outbound.drop_link(link.id)

    def _close_session(self, session: SessionHandle) -> None:
        for table in (self._pending, self._cbs_receivers, self._links):
            for link in [lk for lk in table.values() if lk.session is session]:
                self._close_link(link)

    # -- settlement (driver thread) --------------------------------------------------------------
    def _settle(self, token: Token, outcome: Outcome) -> None:
        if outcome is Outcome.REJECTED:
            self._warn_once("reject", "reject() of a cloud-to-device message: IoT Hub over MQTT "
                                      "cannot reject; the message is completed (PUBACK) and the "
                                      "service's feedback will say Success")
        elif outcome is Outcome.RELEASED:
            if self.settings.release == "complete":
                self._warn_once("release", "release() of a cloud-to-device message: IoT Hub "
                                           "over MQTT cannot abandon; the message is completed "
                                           "(PUBACK, iothub.release = 'complete')")
                self.stats.released += 1
                outcome = Outcome.ACCEPTED
            elif token.deliveries >= self.settings.max_delivery_count:
                self._warn_once("release-max", f"a released cloud-to-device message reached "
                                               f"{self.settings.max_delivery_count} deliveries "
                                               f"(iothub.max_delivery_count): completed (PUBACK)")
        self.inbox.settle(token, outcome)

    def _warn_once(self, key: str, text: str) -> None:
        if key in self._warned:
            log.debug("%s", text)
            return
        self._warned.add(key)
        log.warning("%s (logged once per connection)", text)

    # -- authentication (driver thread) ----------------------------------------------------------
    def _connect_self(self) -> None:
        """Self-auth: a key (tokens signed here) or a pre-made token from the settings."""
        if self.plan.token is not None and not self.plan.can_sign:
            text = self.plan.token.get_secret_value()
            try:
                parsed = sas.parse_token(text)
            except sas.SASTokenError as exc:
                self._fail_connection(f"{reasons.UNAUTHORIZED}: iothub.connection_string's "
                                      f"SharedAccessSignature: {exc.reason}")
                return
            if parsed.expired():
                self._fail_connection(f"{reasons.UNAUTHORIZED}: the SharedAccessSignature in "
                                      f"iothub.connection_string expired at "
                                      f"{cbs.iso_time(parsed.expiry)}")
                return
            self._password, self._expiry = text, parsed.expiry
        self.driver.restart()

    def _put_token(self, transfer: TransferHandle) -> None:
        self.events.transfer_settled(transfer)  # the node took the request; the reply follows
        if self._dead:
            return
        try:
            put = cbs.parse_put_token(transfer.message, host=self.plan.host)
        except cbs.CBSError as exc:
            self._reply(exc.status, exc.description)
            return
        if self.identity is not None and not _same(put.identity, self.identity):
            self._reply(cbs.UNAUTHORIZED, f"Unauthorized: the token is for "
                                          f"{put.identity.describe()}; this connection is "
                                          f"{self.identity.describe()} (one identity per MQTT "
                                          f"connection: open another connection)")
            return
        if self.plan.can_sign:
            # Already authenticated with the configured key: check the token against it.
            assert self.plan.key is not None and self.identity is not None
            try:
                sas.verify_token(put.text, self.plan.key, audience=self.identity.audience,
                                 key_name=self.plan.key_name)
            except sas.SASTokenError as exc:
                self._reply(cbs.UNAUTHORIZED, f"Unauthorized: {exc.reason}")
                return
            self._reply(cbs.OK, "OK")
            return
        self._put_queue.append(put)
        self._next_put()

    def _next_put(self) -> None:
        while self._put_queue and self._connecting is None and not self._dead:
            put = self._put_queue.popleft()
            if self.identity is not None and not _same(put.identity, self.identity):
                self._reply(cbs.UNAUTHORIZED, f"Unauthorized: this connection is "
                                              f"{self.identity.describe()}")
                continue
            if put.text == self._password and self.driver.state == UP:
                self._reply(cbs.OK, "OK")  # the connection already uses this token
                continue
            if self.identity is None:
                self.identity = put.identity
                log.info("IoT Hub connection authenticates as %s (from the put-token)",
                         put.identity.describe())
            if self._authorized and self._password is not None and self._expiry is not None:
                self._fallback = (self._password, self._expiry)
            self._password, self._expiry = put.text, put.expiry
            self._connecting = put
            self._cancel_timer()
            self.driver.restart()  # CONNECT (again) with the token as password

    def _reply(self, status: int, description: str) -> None:
        """Answer a put-token on every open ``$cbs`` receiver."""
        if status != cbs.OK:
            log.warning("CBS put-token refused: %d %s", status, description)
        if not self._cbs_receivers:
            log.warning("CBS reply %d dropped: no $cbs receiver is open", status)
            return
        for link in list(self._cbs_receivers.values()):
            self.events.delivery(link, cbs.reply(status, description), _CBSReply())

    def _schedule_token_timer(self) -> None:
        self._cancel_timer()
        expiry = self._expiry
        if expiry is None:
            return
        if self.plan.can_sign:
            delay, callback = self._renew_at() - time.time(), self._renew_self
        else:
            delay, callback = expiry - time.time(), lambda: self._expire(expiry)
        self._timer = self.driver.call_later(max(0.0, delay), callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _renew_self(self) -> None:
        if self._dead or self._closing:
            return
        self._sign()
        log.info("renewing the SAS token of %s (reconnecting)",
                 self.identity.describe() if self.identity else "?")
        self.driver.restart()

    def _expire(self, expiry: int) -> None:
        if self._dead or self._closing or self._expiry != expiry or not self._authorized:
            return
        detail = f"the SAS token expired at {cbs.iso_time(expiry)}"
        log.warning("IoT Hub connection of %s: %s; the hub closes the MQTT connection: event "
                    "links end until a new put-token", self._who(), detail)
        self.driver.park()
        self._down(detail)
        self._lose_authorization(detail)

    def _down(self, detail: str) -> None:
        self.inbox.on_down()
        self.outbound.on_down(f"{reasons.FORCED}: {detail}")

    def _lose_authorization(self, why: str) -> None:
        """What IoT Hub's AMQP surface did when a token expired: detach the event links with
        amqp:unauthorized-access (the receiver text carries the legacy 'Token Invalid')."""
        self._authorized = False
        self._cancel_timer()
        sender_detail = (f"{reasons.UNAUTHORIZED}: {why}; IoT Hub closed the MQTT connection. "
                         f"Send a new put-token on $cbs to continue")
        receiver_detail = (f"{reasons.UNAUTHORIZED}: Token Invalid: {why}; IoT Hub closed the "
                           f"MQTT connection. Send a new put-token on $cbs to continue")
        for link in list(self._links.values()):
            del self._links[link.id]
            if link.role == "receiver":
                self.inbox.retain(link)  # C2D that arrives meanwhile waits for a new receiver
                self.events.link_error(link, receiver_detail)
            else:
                self.outbound.drop_link(link.id)
                self.events.link_error(link, sender_detail)

    def _fail_pending(self, detail: str) -> None:
        for link in list(self._pending.values()):
            del self._pending[link.id]
            self.events.link_error(link, detail)

    def _fail_connection(self, detail: str) -> None:
        if self._dead or self._closing:
            return
        self._dead = True
        self._cancel_timer()
        self._forget()
        self.events.connection_error(detail)

    def _token_expired(self) -> bool:
        return self._expiry is not None and time.time() >= self._expiry - EXPIRY_SLACK

    def _who(self) -> str:
        return self.identity.describe() if self.identity else "(no identity yet)"

    # -- DriverHooks (driver thread) -------------------------------------------------------------
    def on_up(self, session_present: bool, limits: BrokerLimits) -> None:
        client = self.driver.client
        assert client is not None
        if self._opened and self._authorized:
            self.stats.reconnects += 1
        self.inbox.on_up(client, session_present)
        self.outbound.on_up(client, None, None)
        self._authorized = True
        self._fallback = None
        self._schedule_token_timer()
        if not self._opened:
            self._opened = True
            self.events.connection_opened()
        put, self._connecting = self._connecting, None
        if put is not None:
            self._reply(cbs.OK, "OK")
        for link in list(self._pending.values()):
            del self._pending[link.id]
            self._attach(link)
        self._next_put()

    def on_down(self, detail: str) -> None:
        self._down(detail)
        if not self.plan.can_sign and self._authorized and self._connecting is None \
                and self._token_expired():
            # the hub cut the connection because the token expired: no reconnect with it
            self.driver.park()
            self._lose_authorization(f"the SAS token expired at {cbs.iso_time(self._expiry or 0)}")

    def on_failed(self, detail: str) -> None:
        """A connect attempt failed or the connection was lost (parked or, if the driver is
        done, terminal)."""
        self._down(detail)
        if self._closing or self._dead:
            return
        code = self.driver.refused_code
        refused = code is not None
        put, self._connecting = self._connecting, None
        if self.driver.state == DONE:
            self._fail_connection(detail)
        elif put is not None:  # the connect a put-token asked for
            if not refused:
                self._fail_connection(detail)  # the hub cannot be reached at all
                return
            self._reply(cbs.status_for_connack(code), f"Unauthorized: {detail}"
                        if cbs.status_for_connack(code) == cbs.UNAUTHORIZED else detail)
            fallback, self._fallback = self._fallback, None
            if fallback is not None and fallback[1] > time.time() + EXPIRY_SLACK:
                # As on AMQP, a refused renewal leaves the previous token in force.
                self._password, self._expiry = fallback
                self.driver.restart()
            else:
                self._lose_authorization(f"the put-token was refused ({detail})")
                self._fail_pending(f"{reasons.UNAUTHORIZED}: not authorised: {detail}")
            self._next_put()
        elif not self._opened:
            self._fail_connection(detail)  # self-auth: the first connect failed
        elif not self.plan.can_sign and (refused or self._token_expired()):
            why = f"the SAS token expired at {cbs.iso_time(self._expiry or 0)}" \
                if self._token_expired() else f"IoT Hub refused the token ({detail})"
            self._lose_authorization(why)
        else:
            self._fail_connection(detail)


def _same(a: Identity, b: Identity) -> bool:
    return (a.host.lower(), a.device_id, a.module_id) == (b.host.lower(), b.device_id,
                                                          b.module_id)


def create(context: BackendContext) -> IoTHubBackend:
    return IoTHubBackend(context)
