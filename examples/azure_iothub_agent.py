"""The Electric Imp AzureIoTHub library's AMQP client (v2.x) ported to Python, and an agent.

The classes below follow the library's AMQP transport (``AzureIoTHub.Client`` /
``AzureIoTHub.ClientAMQP``) call for call (spec imp-amqp-api.md §5): the same objects opened in
the same order, the same reactions to every event, the same ``$cbs`` put-token and the same token
renewal paths (``_senderTokenError`` on SENDER_ERROR "unauthorized-access",
``_receiverTokenError`` on RECEIVER_ERROR "Token Invalid"). Squirrel names are given in the
comments; Python names are snake_case. Three things differ on purpose, each marked below: the
token lifetime can be shortened (``IOTHUB_SAS_TTL``, default one hour as in the library) so the
renewal can be watched, the connection-string parser splits on the first ``=``, and a
SESSION_CLOSED after ``disconnect()`` no longer calls a handler the library had just dropped.

Run it on any backend that speaks IoT Hub (``bridge run`` provides ``amqp``, ``imp``,
``server`` and ``agent``)::

    IOTHUB_CONNECTION_STRING='HostName=...;DeviceId=...;SharedAccessKey=...' \\
    BRIDGE_CONFIG=config/iothub.toml bridge run examples/azure_iothub_agent.py

- ``backend = "iothub"`` (config/iothub.toml, config/iothub-local.toml): MQTT to IoT Hub, the
  put-token becomes the MQTT password;
- ``backend = "amqp"`` against IoT Hub's AMQP endpoint: the original protocol;
- ``backend = "memory"``: its ``$cbs`` node says 200 to everything.

The agent connects, sends ``EVENT_COUNT`` telemetry events every ``EVENT_INTERVAL`` seconds,
handles cloud-to-device messages (property ``action``: ``abandon`` -> release, ``reject`` ->
reject, anything else -> complete) and stops once every event was confirmed and ``C2D_COUNT``
messages were handled (``EVENT_COUNT=0``: run until Ctrl-C). A message with ``action=abandon`` is
released the first time and completed when it comes back. ``IOTHUB_DEBUG=1`` turns on the
library's own log lines. A refused connect ends the run with exit status 1.
"""

import base64
import hashlib
import hmac
import json
import os
import time
from urllib.parse import quote

AZURE_CLAIM_BASED_SECURITY_PATH = "$cbs"
# Differs from the library on purpose: its tokens always lived one hour (anHourFromNow).
SAS_TTL = int(os.environ.get("IOTHUB_SAS_TTL", "3600"))
DEBUG = os.environ.get("IOTHUB_DEBUG", "0") == "1"


class ConnectionString:
    @staticmethod
    def parse(connection_string):
        """``AzureIoTHub.ConnectionString.Parse``: a table of the ``Key=Value`` pairs.

        (The library split each pair on every ``=`` and re-appended one to SharedAccessKey;
        splitting on the first ``=`` gives the same result for every real key.)
        """
        cn = {}
        if not isinstance(connection_string, str):
            return cn
        connection_string = connection_string.strip()
        for pair in connection_string.split(";"):
            if not pair:
                continue
            key, sep, value = pair.partition("=")
            cn[key] = value if sep else None
        for mandatory in ("HostName", "DeviceId"):
            cn.setdefault(mandatory, None)
        return cn


class Authorization:
    @staticmethod
    def an_hour_from_now():
        # anHourFromNow(): time() + 3600 (SAS_TTL, see the module docstring)
        return int(time.time()) + SAS_TTL

    @staticmethod
    def encode_uri(text):
        # http.urlencode({s=str}).slice(2)
        return quote(text, safe="")

    @staticmethod
    def string_to_sign(resource_uri, expiry):
        return f"{resource_uri}\n{expiry}"

    @staticmethod
    def hmac_hash(password, string_to_sign):
        digest = hmac.new(base64.b64decode(password), string_to_sign.encode("utf-8"),
                          hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")


class SharedAccessSignature:
    def __init__(self):
        self.sr = None
        self.sig = None
        self.skn = None
        self.se = None

    @staticmethod
    def create(resource_uri, key_name, key, expiry):
        sas = SharedAccessSignature()
        sas.sr = resource_uri  # as given: the library never encoded the whole URI
        sas.sig = Authorization.encode_uri(
            Authorization.hmac_hash(key, Authorization.string_to_sign(resource_uri, expiry)))
        if key_name:
            sas.skn = Authorization.encode_uri(key_name)
        sas.se = expiry
        return sas

    def to_string(self):
        parts = [f"{key}={getattr(self, key)}" for key in ("sr", "sig", "skn", "se")
                 if getattr(self, key)]
        return "SharedAccessSignature " + "&".join(parts)


class Endpoint:
    @staticmethod
    def device_path(device_id):
        return "/devices/" + device_id

    @staticmethod
    def event_path(device_id):
        return Endpoint.device_path(device_id) + "/messages/events"

    @staticmethod
    def message_path(device_id):
        return Endpoint.device_path(device_id) + "/messages/devicebound"


class Message:
    VALUE = "string"  # message type for auth requests
    DATA = "binary"  # message type for stream analytics jobs

    def __init__(self, body, properties=None):
        self._body = body
        self._properties = properties  # application properties, not Azure's

    def get_properties(self):
        return self._properties

    def get_body(self):
        return self._body

    def create_amqp_message(self, encoding="binary"):
        # createAMQPMessage: tables and arrays are JSON-encoded; binary by default
        if isinstance(self._body, dict | list):
            self._body = json.dumps(self._body)
        if self._properties is None:
            self._properties = {}
        if encoding == Message.DATA:
            return amqp.createbinarymessage(self._body, self._properties)
        return amqp.createmessage(self._body, self._properties)


class Delivery:
    def __init__(self, amqp_delivery):
        self._delivery = amqp_delivery

    def complete(self):
        self._delivery.accept()

    def abandon(self):
        self._delivery.release()

    def reject(self):
        self._delivery.reject()

    def get_message(self):
        msg = self._delivery.message()
        return Message(msg.body(), msg.properties())


def _is_open(amqp_obj):
    return amqp_obj is not None and amqp_obj.isopen()


class ClientAMQP:
    """``AzureIoTHub.ClientAMQP``: one connection, an auth session with the ``$cbs`` links, an
    event session with the D2C sender and the C2D receiver."""

    def __init__(self, config):
        self._config = config
        self._connection = None
        self._connecting = False
        self._sender_token_error = False
        self._receiver_token_error = False
        self._reset_connection_tables()

    # done has one param (error); on_disconnect has one param (error)
    def connect(self, done=None, on_disconnect=None):
        self._connecting = True
        self._handlers["onConnected"] = done
        self._handlers["onDisconnect"] = on_disconnect
        # Don't open a connection if one is already open: open the first missing piece
        if _is_open(self._connection):
            if _is_open(self._sessions["auth"]):
                if _is_open(self._receivers["auth"]):
                    if _is_open(self._senders["auth"]):
                        if _is_open(self._sessions["event"]):
                            if _is_open(self._senders["event"]):
                                self._connection_callback(None)
                            else:
                                self._open_event_sender()
                        else:
                            self._open_event_session()
                    else:
                        self._open_auth_sender()
                else:
                    self._open_auth_receiver()
            else:
                self._open_auth_session()
        else:
            self._connection = amqp.openconnection("amqps://" + self._config["host"],
                                                   self._amqp_connection_status_handler)

    def disconnect(self):
        self._connection.close()
        self._reset_connection_tables()

    # done params: (err)
    def send_event(self, message, done=None):
        if not _is_open(self._sessions["event"]):
            if done:
                done("Cannot send while disconnected.")
        elif not _is_open(self._senders["event"]):
            self._log("creating event sender")
            self._msg_queue.append({"msg": message, "cb": done})
            self._open_event_sender()
        else:
            self._log("event sender open")
            self._send_event(message, done)

    # done is called every time a message is available, params (error, delivery)
    def receive(self, done):
        self._handlers["onEvent"] = done
        if done is None:
            self._receivers["event"].close()
            return self
        if not _is_open(self._sessions["event"]):
            self._handlers["onEvent"]("Cannot receive while disconnected.", None)
        else:
            if _is_open(self._receivers["event"]):
                self._receivers["event"].close()
            self._open_event_receiver()
        return self

    # -- open auth/event sessions, senders and receivers ---------------------------------------
    def _open_auth_session(self):
        self._sessions["auth"] = self._connection.opensession(
            self._amqp_auth_session_status_handler)

    def _open_auth_receiver(self):
        self._receivers["auth"] = self._sessions["auth"].openreceiver(
            AZURE_CLAIM_BASED_SECURITY_PATH, self._amqp_auth_receiver_status_handler,
            self._auth_receiver_cb)

    def _open_auth_sender(self):
        self._senders["auth"] = self._sessions["auth"].opensender(
            AZURE_CLAIM_BASED_SECURITY_PATH, self._amqp_auth_sender_status_handler)

    def _open_event_session(self):
        self._sessions["event"] = self._connection.opensession(
            self._amqp_event_session_status_handler)

    def _open_event_sender(self):
        self._senders["event"] = self._sessions["event"].opensender(
            Endpoint.event_path(self._config["deviceId"]), self._amqp_event_sender_status_handler)

    def _open_event_receiver(self):
        self._receivers["event"] = self._sessions["event"].openreceiver(
            Endpoint.message_path(self._config["deviceId"]),
            self._amqp_event_receiver_status_handler,
            lambda deliveries: self._handle_deliveries(deliveries, self._handlers["onEvent"]))

    # -- status handlers ------------------------------------------------------------------------
    def _amqp_connection_status_handler(self, event, data):
        self._log("Connection event: " + event)
        if event == "CONNECTION_OPEN":
            if self._connecting:
                self._open_auth_session()
        elif event == "CONNECTION_CLOSED":
            pass
        else:
            if event == "CONNECTION_ERROR":
                if self._connecting:
                    self._connection_callback(data if data is not None else event)
                else:
                    self._log(data)
            self._log(data)  # the Squirrel switch falls through to its default branch

    def _amqp_auth_session_status_handler(self, event, data):
        self._log("Auth Session event: " + event)
        if event == "SESSION_OPEN":
            self._open_auth_receiver()
        elif event == "SESSION_CLOSED":
            pass
        else:
            if event == "SESSION_ERROR":
                self._fail_connect_or_log(event, data)
            self._log(data)

    def _amqp_auth_receiver_status_handler(self, event, data):
        self._log("Auth Receiver event: " + event)
        if event == "RECEIVER_OPEN":
            if not _is_open(self._senders["auth"]):
                self._open_auth_sender()
            else:
                self._get_put_token(lambda: self._log("put token request sent"))
        elif event == "RECEIVER_CLOSED":
            pass
        else:
            if event == "RECEIVER_ERROR":
                self._fail_connect_or_log(event, data)
            self._log(data)

    # Note: the auth receiver opens the auth sender if needed
    def _amqp_auth_sender_status_handler(self, event, data):
        self._log("Auth Sender event: " + event)
        if event == "SENDER_OPEN":
            self._get_put_token(lambda: self._log("put token request sent"))
        elif event == "SENDER_CLOSED":
            pass
        elif event == "SENDER_ERROR":
            self._fail_connect_or_log(event, data)
        else:
            self._log(data)

    def _amqp_event_session_status_handler(self, event, data):
        self._log("Event Session event: " + event)
        if event == "SESSION_OPEN":
            self._open_event_sender()
        elif event == "SESSION_CLOSED":
            # Differs on purpose: the Squirrel code called _handlers.onDisconnect unguarded and
            # threw when disconnect() had already emptied the handler table.
            on_disconnect = self._handlers.get("onDisconnect")
            if on_disconnect is None:
                pass
            elif _is_open(self._connection):  # different messages for debug purposes
                on_disconnect("Event session closed. Please reconnect to send or receive events.")
            else:
                on_disconnect(
                    "Connection to IoT Hub closed. Please reconnect to send or receive events.")
        else:
            if event == "SESSION_ERROR":
                self._fail_connect_or_log(event, data)
            self._log(data)

    def _amqp_event_sender_status_handler(self, event, data):
        self._log("Msg Sender event: " + event)
        if event == "SENDER_OPEN":
            if self._connecting:
                self._connection_callback(None)
            while self._msg_queue:
                item = self._msg_queue.pop(0)
                self._send_event(item["msg"], item["cb"])
        elif event == "SENDER_CLOSED":
            pass
        elif event == "SENDER_ERROR":
            if self._connecting:
                self._connection_callback(data if data is not None else event)
            elif self._msg_queue:
                while self._msg_queue:
                    item = self._msg_queue.pop(0)
                    if item["cb"]:
                        item["cb"](event, item["msg"])
            else:
                self._log(data)
                # Renew token
                if "unauthorized-access" in data:
                    self._sender_token_error = True
                    self._update_config_sas_expiry()
                    self._get_put_token(lambda: self._log("renewing token"))
        else:
            self._log(data)

    def _amqp_event_receiver_status_handler(self, event, data):
        self._log("Msg Receiver event: " + event)
        if event == "RECEIVER_OPEN":
            pass
        elif event == "RECEIVER_CLOSED":
            # Event session open and a handler registered: an unexpected disconnect
            if _is_open(self._sessions["event"]) and self._handlers.get("onEvent") is not None:
                self._handlers["onEvent"]("Unexpected disconnect", None)
        elif event == "RECEIVER_ERROR":
            self._log(data)
            if "Token Invalid" in data:
                self._receiver_token_error = True
                self._update_config_sas_expiry()
                self._get_put_token(lambda: self._log("renewing token"))
        else:
            self._log(data)

    def _fail_connect_or_log(self, event, data):
        if self._connecting:
            self._connection_callback(data if data is not None else event)
        else:
            self._log(data)

    # -- authorization --------------------------------------------------------------------------
    def _auth_receiver_cb(self, deliveries):
        self._log("in auth receiver callback")
        authorized = False
        for delivery_item in deliveries:
            delivery_item.accept()
            properties = delivery_item.message().properties()
            if properties.get("status-code") == 200 and \
                    properties.get("status-description") == "OK":
                authorized = True
                if self._sender_token_error:
                    self._open_event_sender()
                    self._sender_token_error = False
                elif self._receiver_token_error:
                    if self._handlers.get("onEvent") is not None:
                        self._open_event_receiver()
                    self._receiver_token_error = False
                else:
                    # connected and authorized: check the event session
                    if _is_open(self._sessions["event"]):
                        if _is_open(self._senders["event"]):
                            if self._connecting:
                                self._connection_callback(None)
                        else:
                            self._open_event_sender()
                    else:
                        self._open_event_session()
        if self._connecting and not authorized:
            self._connection_callback("Not authorised with Azure IOT Hub")

    def _get_put_token(self, done):
        self._log("get put token")
        properties = {
            "operation": "put-token",
            "type": "azure-devices.net:sastoken",
            "name": self._config["host"] + "/devices/" + self._config["deviceId"],
        }
        # the reply arrives on the auth receiver (_auth_receiver_cb)
        msg = amqp.createmessage(self._config["sharedAccessSignature"], properties)
        self._transfers["auth"] = self._senders["auth"].createtransfer(msg)
        self._transfers["auth"].sendasync(done)

    def _update_config_sas_expiry(self):
        if "sharedAccessExpiry" in self._config and "connectionString" in self._config:
            cn = ConnectionString.parse(self._config["connectionString"])
            resource_uri = cn["HostName"] + "/devices/" + Authorization.encode_uri(cn["DeviceId"])
            sas = SharedAccessSignature.create(resource_uri, None, cn["SharedAccessKey"],
                                               Authorization.an_hour_from_now())
            self._config["sharedAccessSignature"] = sas.to_string()
            self._config["sharedAccessExpiry"] = sas.se

    # -- helpers --------------------------------------------------------------------------------
    def _connection_callback(self, error):
        self._connecting = False
        on_connected = self._handlers.get("onConnected")
        if on_connected:
            imp.wakeup(0, lambda: on_connected(error))  # always on a later turn

    def _reset_connection_tables(self):
        self._sessions = {"event": None, "auth": None}
        self._transfers = {"event": None, "auth": None}
        self._senders = {"event": None, "auth": None}
        self._receivers = {"event": None, "auth": None}
        self._msg_queue = []
        self._handlers = {}

    def _send_event(self, message, done):
        self._transfers["event"] = self._senders["event"].createtransfer(
            message.create_amqp_message())
        self._log("send event transfer created")

        def sent():
            self._log("in send event transfer callback")
            if done:
                done(None)

        self._transfers["event"].sendasync(sent)

    def _handle_deliveries(self, deliveries, cb):
        while len(deliveries):
            cb(None, Delivery(deliveries.pop(0)))

    def _log(self, log_msg):
        if DEBUG:
            server.log(str(log_msg))


class Client:
    """``AzureIoTHub.Client``."""

    def __init__(self, device_connection_string):
        self._config = self.from_connection_string(device_connection_string)
        self._transport = ClientAMQP(self._config)

    @staticmethod
    def from_connection_string(device_connection_string):
        cn = ConnectionString.parse(device_connection_string)
        resource_uri = cn["HostName"] + "/devices/" + Authorization.encode_uri(cn["DeviceId"])
        sas = SharedAccessSignature.create(resource_uri, None, cn["SharedAccessKey"],
                                           Authorization.an_hour_from_now())
        return {
            "host": cn["HostName"],
            "deviceId": cn["DeviceId"],
            "hubName": cn["HostName"].split(".")[0],
            "sharedAccessSignature": sas.to_string(),
            "sharedAccessExpiry": sas.se,
            "connectionString": device_connection_string,
        }

    def connect(self, done=None, on_disconnect=None):
        self._transport.connect(done, on_disconnect)
        return self

    def disconnect(self):
        self._transport.disconnect()
        return self

    def send_event(self, message, done=None):
        self._transport.send_event(message, done)
        return self

    def receive(self, done):
        self._transport.receive(done)
        return self


# -- the agent ---------------------------------------------------------------------------------
CONNECTION_STRING = os.environ.get("IOTHUB_CONNECTION_STRING", "")
EVENT_COUNT = int(os.environ.get("EVENT_COUNT", "5"))
EVENT_INTERVAL = float(os.environ.get("EVENT_INTERVAL", "1.0"))
C2D_COUNT = int(os.environ.get("C2D_COUNT", "0"))

state = {"sent": 0, "confirmed": 0, "failed": 0, "received": 0, "finished": False,
         "abandoned": set()}


def maybe_finish():
    if EVENT_COUNT and not state["finished"] and state["confirmed"] + state["failed"] \
            >= EVENT_COUNT and state["received"] >= C2D_COUNT:
        state["finished"] = True
        server.log(f"done: {state['confirmed']} events confirmed, {state['failed']} failed, "
                   f"{state['received']} cloud-to-device messages handled")
        client.disconnect()
        agent.stop()


def send_next():
    if EVENT_COUNT and state["sent"] >= EVENT_COUNT:
        return
    state["sent"] += 1
    n = state["sent"]
    reading = {"seq": n, "temperature": round(20 + n / 10, 2), "ts": time.time()}

    def done(err, *rest):  # the library calls (err) or, for queued sends, (err, msg)
        if err is None:
            state["confirmed"] += 1
            server.log(f"event {n} confirmed")
        else:
            state["failed"] += 1
            server.error(f"event {n} failed: {err}")
        maybe_finish()

    client.send_event(Message(reading, {"seq": n, "kind": "reading"}), done)
    imp.wakeup(EVENT_INTERVAL, send_next)


def on_c2d(err, delivery):
    if err is not None:
        server.error(f"receive: {err}")
        return
    message = delivery.get_message()
    body = message.get_body()
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    properties = message.get_properties()
    action = properties.get("action", "complete")
    if action == "abandon" and text in state["abandoned"]:
        action = "complete"  # it came back
    server.log(f"cloud-to-device message: {text} {properties} -> {action}")
    if action == "abandon":
        state["abandoned"].add(text)
        delivery.abandon()
        return  # it comes back: counted then
    if action == "reject":
        delivery.reject()
    else:
        delivery.complete()
    state["received"] += 1
    maybe_finish()


def on_connected(err):
    if err is not None:
        server.error(f"connect failed: {err}")
        raise SystemExit(1)
    server.log("connected to Azure IoT Hub")
    client.receive(on_c2d)
    send_next()


def on_disconnect(err):
    # The library also calls this when the agent itself disconnects (SESSION_CLOSED).
    (server.log if state["finished"] else server.error)(f"disconnected: {err}")


if not CONNECTION_STRING:
    raise SystemExit("set IOTHUB_CONNECTION_STRING to the device's connection string")
client = Client(CONNECTION_STRING)
client.connect(on_connected, on_disconnect)
