// The Electric Imp AzureIoTHub library's AMQP client (v2.x) in Squirrel, and an agent: the
// Squirrel twin of examples/azure_iothub_agent.py (which is its line-by-line Python port).
//
// The classes follow the library's AMQP transport (AzureIoTHub.Client / ClientAMQP) call for
// call: the same objects opened in the same order, the same reactions to every event, the same
// $cbs put-token and the same token renewal paths (_senderTokenError on SENDER_ERROR
// "unauthorized-access", _receiverTokenError on RECEIVER_ERROR "Token Invalid"). The three
// deliberate differences of the Python port are kept, each marked: a configurable token
// lifetime (IOTHUB_SAS_TTL), the connection string split on the first "=", and a
// SESSION_CLOSED after disconnect() that no longer calls a dropped handler.
//
//     bridge run --param IOTHUB_CONNECTION_STRING examples/azure_iothub_agent.nut
//
// (a bare --param NAME takes the environment variable NAME, so the key stays off the command
// line). Other parameters: EVENT_COUNT (0: run until Ctrl-C), EVENT_INTERVAL, C2D_COUNT,
// IOTHUB_SAS_TTL, IOTHUB_DEBUG=1 (the library's own log lines). The agent sends EVENT_COUNT
// events, handles cloud-to-device messages (property action: abandon -> release, reject ->
// reject, else complete; an abandoned message is completed when it comes back) and stops once
// all are confirmed and C2D_COUNT were handled. A refused connect ends the run with status 1.

function param(name, fallback) {
    return (name in imp.configparams) ? imp.configparams[name] : fallback;
}

const AZURE_CLAIM_BASED_SECURITY_PATH = "$cbs";
// Differs from the library on purpose: its tokens always lived one hour (anHourFromNow).
SAS_TTL <- param("IOTHUB_SAS_TTL", "3600").tointeger();
DEBUG <- param("IOTHUB_DEBUG", "0") == "1";

class ConnectionString {
    // A table of the Key=Value pairs. (The library split each pair on every "=" and re-appended
    // one to SharedAccessKey; splitting on the first "=" gives the same for every real key.)
    static function Parse(connectionString) {
        local cn = {};
        if (typeof connectionString != "string") return cn;
        foreach (pair in split(strip(connectionString), ";")) {
            if (pair == "") continue;
            local at = pair.find("=");
            if (at == null) cn[pair] <- null;
            else cn[pair.slice(0, at)] <- pair.slice(at + 1);
        }
        foreach (mandatory in ["HostName", "DeviceId"]) {
            if (!(mandatory in cn)) cn[mandatory] <- null;
        }
        return cn;
    }
}

class Authorization {
    static function anHourFromNow() { return time() + SAS_TTL; }
    static function encodeUri(str) { return http.urlencode({s = str}).slice(2); }
    static function stringToSign(resourceUri, expiry) { return resourceUri + "\n" + expiry; }
    static function hmacHash(password, stringToSign) {
        return http.base64encode(http.hash.hmacsha256(stringToSign, http.base64decode(password)));
    }
}

class SharedAccessSignature {
    sr = null;
    sig = null;
    skn = null;
    se = null;

    static function create(resourceUri, keyName, key, expiry) {
        local sas = SharedAccessSignature();
        sas.sr = resourceUri;  // as given: the library never encoded the whole URI
        sas.sig = Authorization.encodeUri(Authorization.hmacHash(key,
            Authorization.stringToSign(resourceUri, expiry)));
        if (keyName) sas.skn = Authorization.encodeUri(keyName);
        sas.se = expiry;
        return sas;
    }

    function toString() {
        local parts = [];
        foreach (key in ["sr", "sig", "skn", "se"]) {
            if (this[key]) parts.append(key + "=" + this[key]);
        }
        local text = "";
        foreach (i, part in parts) text += (i ? "&" : "") + part;
        return "SharedAccessSignature " + text;
    }
}

class Endpoint {
    static function devicePath(deviceId) { return "/devices/" + deviceId; }
    static function eventPath(deviceId) { return Endpoint.devicePath(deviceId) + "/messages/events"; }
    static function messagePath(deviceId) { return Endpoint.devicePath(deviceId) + "/messages/devicebound"; }
}

class Message {
    static VALUE = "string";  // message type for auth requests
    static DATA = "binary";   // message type for stream analytics jobs
    _body = null;
    _properties = null;      // application properties, not Azure's

    constructor(body, properties = null) {
        _body = body;
        _properties = properties;
    }
    function getProperties() { return _properties; }
    function getBody() { return _body; }
    function createAMQPMessage(encoding = "binary") {
        // tables and arrays are JSON-encoded; binary by default
        if (typeof _body == "table" || typeof _body == "array") _body = http.jsonencode(_body);
        if (_properties == null) _properties = {};
        if (encoding == Message.DATA) return amqp.createbinarymessage(_body, _properties);
        return amqp.createmessage(_body, _properties);
    }
}

class Delivery {
    _delivery = null;
    constructor(amqpDelivery) { _delivery = amqpDelivery; }
    function complete() { _delivery.accept(); }
    function abandon() { _delivery.release(); }
    function reject() { _delivery.reject(); }
    function getMessage() {
        local msg = _delivery.message();
        return Message(msg.body(), msg.properties());
    }
}

function _isOpen(amqpObj) { return amqpObj != null && amqpObj.isopen(); }

class ClientAMQP {
    _config = null;
    _connection = null;
    _connecting = false;
    _senderTokenError = false;
    _receiverTokenError = false;
    _sessions = null;
    _transfers = null;
    _senders = null;
    _receivers = null;
    _msgQueue = null;
    _handlers = null;

    constructor(config) {
        _config = config;
        _resetConnectionTables();
    }

    // done has one param (error); onDisconnect has one param (error)
    function connect(done = null, onDisconnect = null) {
        _connecting = true;
        _handlers.onConnected <- done;
        _handlers.onDisconnect <- onDisconnect;
        // Don't open a connection if one is already open: open the first missing piece
        if (_isOpen(_connection)) {
            if (_isOpen(_sessions.auth)) {
                if (_isOpen(_receivers.auth)) {
                    if (_isOpen(_senders.auth)) {
                        if (_isOpen(_sessions.event)) {
                            if (_isOpen(_senders.event)) _connectionCallback(null);
                            else _openEventSender();
                        } else _openEventSession();
                    } else _openAuthSender();
                } else _openAuthReceiver();
            } else _openAuthSession();
        } else {
            _connection = amqp.openconnection("amqps://" + _config.host,
                                              _amqpConnectionStatusHandler.bindenv(this));
        }
    }

    function disconnect() {
        _connection.close();
        _resetConnectionTables();
    }

    // done params: (err)
    function sendEvent(message, done = null) {
        if (!_isOpen(_sessions.event)) {
            if (done) done("Cannot send while disconnected.");
        } else if (!_isOpen(_senders.event)) {
            _log("creating event sender");
            _msgQueue.append({msg = message, cb = done});
            _openEventSender();
        } else {
            _log("event sender open");
            _sendEvent(message, done);
        }
    }

    // done is called every time a message is available, params (error, delivery)
    function receive(done) {
        _handlers.onEvent <- done;
        if (done == null) {
            _receivers.event.close();
            return this;
        }
        if (!_isOpen(_sessions.event)) {
            _handlers.onEvent("Cannot receive while disconnected.", null);
        } else {
            if (_isOpen(_receivers.event)) _receivers.event.close();
            _openEventReceiver();
        }
        return this;
    }

    // -- open auth/event sessions, senders and receivers --------------------------------------
    function _openAuthSession() {
        _sessions.auth = _connection.opensession(_amqpAuthSessionStatusHandler.bindenv(this));
    }
    function _openAuthReceiver() {
        _receivers.auth = _sessions.auth.openreceiver(AZURE_CLAIM_BASED_SECURITY_PATH,
            _amqpAuthReceiverStatusHandler.bindenv(this), _authReceiverCB.bindenv(this));
    }
    function _openAuthSender() {
        _senders.auth = _sessions.auth.opensender(AZURE_CLAIM_BASED_SECURITY_PATH,
            _amqpAuthSenderStatusHandler.bindenv(this));
    }
    function _openEventSession() {
        _sessions.event = _connection.opensession(_amqpEventSessionStatusHandler.bindenv(this));
    }
    function _openEventSender() {
        _senders.event = _sessions.event.opensender(Endpoint.eventPath(_config.deviceId),
            _amqpEventSenderStatusHandler.bindenv(this));
    }
    function _openEventReceiver() {
        _receivers.event = _sessions.event.openreceiver(Endpoint.messagePath(_config.deviceId),
            _amqpEventReceiverStatusHandler.bindenv(this),
            function(deliveries) { _handleDeliveries(deliveries, _handlers.onEvent); }.bindenv(this));
    }

    // -- status handlers --------------------------------------------------------------------
    function _amqpConnectionStatusHandler(event, data) {
        _log("Connection event: " + event);
        switch (event) {
            case "CONNECTION_OPEN":
                if (_connecting) _openAuthSession();
                break;
            case "CONNECTION_CLOSED":
                break;
            case "CONNECTION_ERROR":
                if (_connecting) _connectionCallback(data != null ? data : event);
                else _log(data);
                // fall through, as the library's switch did
            default:
                _log(data);
        }
    }

    function _amqpAuthSessionStatusHandler(event, data) {
        _log("Auth Session event: " + event);
        switch (event) {
            case "SESSION_OPEN": _openAuthReceiver(); break;
            case "SESSION_CLOSED": break;
            case "SESSION_ERROR": _failConnectOrLog(event, data);
            default: _log(data);
        }
    }

    function _amqpAuthReceiverStatusHandler(event, data) {
        _log("Auth Receiver event: " + event);
        switch (event) {
            case "RECEIVER_OPEN":
                if (!_isOpen(_senders.auth)) _openAuthSender();
                else _getPutToken(function() { _log("put token request sent"); }.bindenv(this));
                break;
            case "RECEIVER_CLOSED": break;
            case "RECEIVER_ERROR": _failConnectOrLog(event, data);
            default: _log(data);
        }
    }

    // Note: the auth receiver opens the auth sender if needed
    function _amqpAuthSenderStatusHandler(event, data) {
        _log("Auth Sender event: " + event);
        switch (event) {
            case "SENDER_OPEN":
                _getPutToken(function() { _log("put token request sent"); }.bindenv(this));
                break;
            case "SENDER_CLOSED": break;
            case "SENDER_ERROR": _failConnectOrLog(event, data); break;
            default: _log(data);
        }
    }

    function _amqpEventSessionStatusHandler(event, data) {
        _log("Event Session event: " + event);
        switch (event) {
            case "SESSION_OPEN": _openEventSender(); break;
            case "SESSION_CLOSED":
                // Differs on purpose: the library called _handlers.onDisconnect unguarded and
                // threw when disconnect() had already emptied the handler table.
                local onDisconnect = "onDisconnect" in _handlers ? _handlers.onDisconnect : null;
                if (onDisconnect == null) break;
                if (_isOpen(_connection)) {  // different messages for debug purposes
                    onDisconnect("Event session closed. Please reconnect to send or receive events.");
                } else {
                    onDisconnect("Connection to IoT Hub closed. Please reconnect to send or receive events.");
                }
                break;
            case "SESSION_ERROR": _failConnectOrLog(event, data);
            default: _log(data);
        }
    }

    function _amqpEventSenderStatusHandler(event, data) {
        _log("Msg Sender event: " + event);
        switch (event) {
            case "SENDER_OPEN":
                if (_connecting) _connectionCallback(null);
                while (_msgQueue.len()) {
                    local item = _msgQueue.remove(0);
                    _sendEvent(item.msg, item.cb);
                }
                break;
            case "SENDER_CLOSED": break;
            case "SENDER_ERROR":
                if (_connecting) {
                    _connectionCallback(data != null ? data : event);
                } else if (_msgQueue.len()) {
                    while (_msgQueue.len()) {
                        local item = _msgQueue.remove(0);
                        if (item.cb) item.cb(event, item.msg);
                    }
                } else {
                    _log(data);
                    // Renew token
                    if (data.find("unauthorized-access") != null) {
                        _senderTokenError = true;
                        _updateConfigSASExpiry();
                        _getPutToken(function() { _log("renewing token"); }.bindenv(this));
                    }
                }
                break;
            default: _log(data);
        }
    }

    function _amqpEventReceiverStatusHandler(event, data) {
        _log("Msg Receiver event: " + event);
        switch (event) {
            case "RECEIVER_OPEN": break;
            case "RECEIVER_CLOSED":
                // Event session open and a handler registered: an unexpected disconnect
                if (_isOpen(_sessions.event) && ("onEvent" in _handlers) && _handlers.onEvent != null) {
                    _handlers.onEvent("Unexpected disconnect", null);
                }
                break;
            case "RECEIVER_ERROR":
                _log(data);
                if (data.find("Token Invalid") != null) {
                    _receiverTokenError = true;
                    _updateConfigSASExpiry();
                    _getPutToken(function() { _log("renewing token"); }.bindenv(this));
                }
                break;
            default: _log(data);
        }
    }

    function _failConnectOrLog(event, data) {
        if (_connecting) _connectionCallback(data != null ? data : event);
        else _log(data);
    }

    // -- authorization ------------------------------------------------------------------------
    function _authReceiverCB(deliveries) {
        _log("in auth receiver callback");
        local authorized = false;
        foreach (deliveryItem in deliveries) {
            deliveryItem.accept();
            local properties = deliveryItem.message().properties();
            if (("status-code" in properties) && properties["status-code"] == 200 &&
                ("status-description" in properties) && properties["status-description"] == "OK") {
                authorized = true;
                if (_senderTokenError) {
                    _openEventSender();
                    _senderTokenError = false;
                } else if (_receiverTokenError) {
                    if (("onEvent" in _handlers) && _handlers.onEvent != null) _openEventReceiver();
                    _receiverTokenError = false;
                } else {
                    // connected and authorized: check the event session
                    if (_isOpen(_sessions.event)) {
                        if (_isOpen(_senders.event)) {
                            if (_connecting) _connectionCallback(null);
                        } else {
                            _openEventSender();
                        }
                    } else {
                        _openEventSession();
                    }
                }
            }
        }
        if (_connecting && !authorized) _connectionCallback("Not authorised with Azure IOT Hub");
    }

    function _getPutToken(done) {
        _log("get put token");
        local properties = {
            operation = "put-token",
            type = "azure-devices.net:sastoken",
            name = _config.host + "/devices/" + _config.deviceId,
        };
        // the reply arrives on the auth receiver (_authReceiverCB)
        local msg = amqp.createmessage(_config.sharedAccessSignature, properties);
        _transfers.auth = _senders.auth.createtransfer(msg);
        _transfers.auth.sendasync(done);
    }

    function _updateConfigSASExpiry() {
        if (("sharedAccessExpiry" in _config) && ("connectionString" in _config)) {
            local cn = ConnectionString.Parse(_config.connectionString);
            local resourceUri = cn.HostName + "/devices/" + Authorization.encodeUri(cn.DeviceId);
            local sas = SharedAccessSignature.create(resourceUri, null, cn.SharedAccessKey,
                                                     Authorization.anHourFromNow());
            _config.sharedAccessSignature = sas.toString();
            _config.sharedAccessExpiry = sas.se;
        }
    }

    // -- helpers ----------------------------------------------------------------------------
    function _connectionCallback(error) {
        _connecting = false;
        local onConnected = "onConnected" in _handlers ? _handlers.onConnected : null;
        if (onConnected) imp.wakeup(0, function() { onConnected(error); });  // a later turn
    }

    function _resetConnectionTables() {
        _sessions = {event = null, auth = null};
        _transfers = {event = null, auth = null};
        _senders = {event = null, auth = null};
        _receivers = {event = null, auth = null};
        _msgQueue = [];
        _handlers = {};
    }

    function _sendEvent(message, done) {
        _transfers.event = _senders.event.createtransfer(message.createAMQPMessage());
        _log("send event transfer created");
        _transfers.event.sendasync(function() {
            _log("in send event transfer callback");
            if (done) done(null);
        }.bindenv(this));
    }

    function _handleDeliveries(deliveries, cb) {
        while (deliveries.len()) cb(null, Delivery(deliveries.remove(0)));
    }

    function _log(logMsg) {
        if (DEBUG) server.log(logMsg + "");
    }
}

class Client {
    _config = null;
    _transport = null;

    constructor(deviceConnectionString) {
        _config = fromConnectionString(deviceConnectionString);
        _transport = ClientAMQP(_config);
    }

    function fromConnectionString(deviceConnectionString) {
        local cn = ConnectionString.Parse(deviceConnectionString);
        local resourceUri = cn.HostName + "/devices/" + Authorization.encodeUri(cn.DeviceId);
        local sas = SharedAccessSignature.create(resourceUri, null, cn.SharedAccessKey,
                                                 Authorization.anHourFromNow());
        return {
            host = cn.HostName,
            deviceId = cn.DeviceId,
            hubName = split(cn.HostName, ".")[0],
            sharedAccessSignature = sas.toString(),
            sharedAccessExpiry = sas.se,
            connectionString = deviceConnectionString,
        };
    }

    function connect(done = null, onDisconnect = null) { _transport.connect(done, onDisconnect); return this; }
    function disconnect() { _transport.disconnect(); return this; }
    function sendEvent(message, done = null) { _transport.sendEvent(message, done); return this; }
    function receive(done) { _transport.receive(done); return this; }
}

// -- the agent -------------------------------------------------------------------------------
CONNECTION_STRING <- param("IOTHUB_CONNECTION_STRING", "");
EVENT_COUNT <- param("EVENT_COUNT", "5").tointeger();
EVENT_INTERVAL <- param("EVENT_INTERVAL", "1.0").tofloat();
C2D_COUNT <- param("C2D_COUNT", "0").tointeger();

state <- {sent = 0, confirmed = 0, failed = 0, received = 0, finished = false, abandoned = {}};

// A table as the Python example prints a dict ({'k': v}, keys sorted), so both log the same.
function repr(value) {
    switch (typeof value) {
        case "string": return "'" + value + "'";
        case "bool": return value ? "True" : "False";
        case "null": return "None";
        case "table":
            local keys = [];
            foreach (k, v in value) keys.append(k);
            keys.sort();
            local out = "";
            foreach (k in keys) out += (out == "" ? "" : ", ") + repr(k) + ": " + repr(value[k]);
            return "{" + out + "}";
        default: return value.tostring();
    }
}

function maybeFinish() {
    if (EVENT_COUNT && !state.finished && state.confirmed + state.failed >= EVENT_COUNT
            && state.received >= C2D_COUNT) {
        state.finished = true;
        server.log("done: " + state.confirmed + " events confirmed, " + state.failed + " failed, "
                   + state.received + " cloud-to-device messages handled");
        client.disconnect();
        agent.stop();
    }
}

function sendNext() {
    if (EVENT_COUNT && state.sent >= EVENT_COUNT) return;
    state.sent++;
    local n = state.sent;
    local reading = {seq = n, temperature = 20 + n / 10.0, ts = time()};
    // the library calls done(err) or, for queued sends, done(err, msg)
    client.sendEvent(Message(reading, {seq = n, kind = "reading"}), function(err, ...) {
        if (err == null) {
            state.confirmed++;
            server.log("event " + n + " confirmed");
        } else {
            state.failed++;
            server.error("event " + n + " failed: " + err);
        }
        maybeFinish();
    });
    imp.wakeup(EVENT_INTERVAL, sendNext);
}

function onC2D(err, delivery) {
    if (err != null) {
        server.error("receive: " + err);
        return;
    }
    local message = delivery.getMessage();
    local body = message.getBody();
    local text = typeof body == "blob" ? body.tostring() : body + "";
    local properties = message.getProperties();
    local action = "action" in properties ? properties.action : "complete";
    if (action == "abandon" && text in state.abandoned) action = "complete";  // it came back
    server.log("cloud-to-device message: " + text + " " + repr(properties) + " -> " + action);
    if (action == "abandon") {
        state.abandoned[text] <- true;
        delivery.abandon();
        return;  // it comes back: counted then
    }
    if (action == "reject") delivery.reject();
    else delivery.complete();
    state.received++;
    maybeFinish();
}

function onConnected(err) {
    if (err != null) {
        server.error("connect failed: " + err);
        agent.exit(1);
    }
    server.log("connected to Azure IoT Hub");
    client.receive(onC2D);
    sendNext();
}

function onDisconnect(err) {
    // The library also calls this when the agent itself disconnects (SESSION_CLOSED).
    if (state.finished) server.log("disconnected: " + err);
    else server.error("disconnected: " + err);
}

if (CONNECTION_STRING == "") {
    server.error("set IOTHUB_CONNECTION_STRING to the device's connection string");
    agent.exit(1);
}
client <- Client(CONNECTION_STRING);
client.connect(onConnected, onDisconnect);
