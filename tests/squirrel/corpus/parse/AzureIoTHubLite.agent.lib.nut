// A condensed AzureIoTHub-style AMQP client, written for the bridge's tests (not Electric Imp's
// library): connection string parsing, SAS tokens over $cbs, an event sender with a queue for
// messages sent before it opened, a cloud-to-device receiver, and retry with back-off.

const AZURE_API_VERSION = "2016-11-14";
const AZURE_TOKEN_TTL = 86400;
const AZURE_RETRY_MAX = 5;

enum AzureState {
    DISCONNECTED,
    CONNECTING,
    CONNECTED,
    FAILED
}

class AzureIoTHub {
    static VERSION = "2.2.0";
}

class AzureIoTHub.ConnectionString {

    static function parse(connectionString) {
        local parsed = {};
        local parts = split(connectionString, ";");
        foreach (part in parts) {
            local eq = part.find("=");
            if (eq == null) {
                throw "invalid connection string part: " + part;
            }
            local key = strip(part.slice(0, eq)).tolower();
            local value = strip(part.slice(eq + 1));
            switch (key) {
                case "hostname":
                    parsed.HostName <- value;
                    break;
                case "deviceid":
                    parsed.DeviceId <- value;
                    break;
                case "sharedaccesskeyname":
                    parsed.SharedAccessKeyName <- value;
                    break;
                case "sharedaccesskey":
                    parsed.SharedAccessKey <- value;
                    break;
                default:
                    server.log("ignoring connection string key " + key);
            }
        }
        if (!("HostName" in parsed)) throw "HostName missing";
        return parsed;
    }
}

class AzureIoTHub.SharedAccessSignature {

    _resource = null;
    _key = null;
    _keyName = null;
    _expiry = 0;

    constructor(resource, key, keyName = null, ttl = AZURE_TOKEN_TTL) {
        _resource = resource;
        _key = key;
        _keyName = keyName;
        _expiry = time() + ttl;
    }

    function token() {
        local toSign = http.urlencode({ "sr": _resource }).slice(3) + "\n" + _expiry;
        local signature = http.base64encode(crypto.hmacsha256(toSign, http.base64decode(_key)));
        local parts = {
            "sr": _resource,
            "sig": signature,
            "se": _expiry
        };
        if (_keyName != null) parts.skn <- _keyName;
        return "SharedAccessSignature " + http.urlencode(parts);
    }

    function expired(margin = 60) {
        return time() + margin >= _expiry;
    }

    function _tostring() {
        return "SAS(" + _resource + ", expires " + _expiry + ")";
    }
}

class AzureIoTHub.Message {
    _body = null;
    _props = null;

    constructor(body, props = null) {
        _body = body;
        _props = props == null ? {} : props;
    }

    function getBody() { return _body; }
    function getProperties() { return _props; }
}

class AzureIoTHub.Client {

    _config = null;
    _state = AzureState.DISCONNECTED;
    _connection = null;
    _session = null;
    _cbsSender = null;
    _cbsReceiver = null;
    _eventSender = null;
    _commandReceiver = null;
    _transfers = null;
    _queue = null;
    _handlers = null;
    _retries = 0;
    _debug = false;

    constructor(connectionString, options = {}) {
        _config = AzureIoTHub.ConnectionString.parse(connectionString);
        _transfers = {};
        _queue = [];
        _handlers = { connected = null, disconnected = null, command = null };
        if ("debug" in options) _debug = options.debug;
    }

    function connect(onConnected = null) {
        if (_state == AzureState.CONNECTING || _state == AzureState.CONNECTED) return;
        _handlers.connected = onConnected;
        _state = AzureState.CONNECTING;
        local url = format("amqps://%s/", _config.HostName);
        _log("connecting to " + url);
        _connection = amqp.openconnection(url, _onConnectionEvent.bindenv(this));
    }

    function disconnect() {
        if (_connection != null) {
            _connection.close();
            _connection = null;
        }
        _state = AzureState.DISCONNECTED;
        _session = null;
        _eventSender = null;
        _commandReceiver = null;
    }

    function isConnected() {
        return _state == AzureState.CONNECTED && _eventSender != null && _eventSender.isopen();
    }

    function sendEvent(message, done = null) {
        if (!isConnected()) {
            _queue.push({ msg = message, cb = done });
            return;
        }
        local body = message.getBody();
        if (typeof body != "string") body = http.jsonencode(body);
        local amqpMessage = amqp.createbinarymessage(body, message.getProperties());
        local id = _nextTransferId();
        _transfers[id] <- _eventSender.createtransfer(amqpMessage);
        _transfers[id].sendasync(function() {
            delete _transfers[id];
            if (done) done(null);
        }.bindenv(this));
    }

    function sendText(text, done = null) {
        local msg = amqp.createmessage(text, { "content-type": "text/plain", "priority": 1 });
        local transfer = _eventSender.createtransfer(msg);
        transfer.sendasync(@() done ? done(null) : null);
    }

    function receive(onCommand) {
        _handlers.command = onCommand;
        if (_session != null && _session.isopen()) _openReceiver();
    }

    // --- internals ---------------------------------------------------------------------

    function _onConnectionEvent(event, detail) {
        _log("connection event " + event);
        switch (event) {
            case "CONNECTION_OPEN":
                _retries = 0;
                _session = _connection.opensession(_onSessionEvent.bindenv(this));
                break;
            case "CONNECTION_ERROR":
                if (detail == null) detail = event;
                _fail("connection failed: " + detail);
                // fall through: a failed connection is also closed
            case "CONNECTION_CLOSED":
                _state = AzureState.DISCONNECTED;
                _scheduleRetry();
                break;
        }
    }

    function _onSessionEvent(event, detail) {
        if (event == "SESSION_OPEN") {
            _openCbs();
        } else if (event == "SESSION_ERROR" || event == "SESSION_CLOSED") {
            _fail("session: " + (detail == null ? event : detail));
        }
    }

    function _openCbs() {
        _cbsSender = _session.opensender("$cbs", _onLinkEvent.bindenv(this));
        _cbsReceiver = _session.openreceiver("$cbs", _onLinkEvent.bindenv(this),
            _onCbsReply.bindenv(this));
    }

    function _putToken() {
        local resource = _config.HostName + "/devices/" + _config.DeviceId;
        local sas = AzureIoTHub.SharedAccessSignature(resource, _config.SharedAccessKey);
        local props = {
            "operation": "put-token",
            "type": "azure-devices.net:sastoken",
            "name": "amqp://" + resource
        };
        local msg = amqp.createmessage(sas.token(), props);
        _transfers.cbs <- _cbsSender.createtransfer(msg);
        _transfers.cbs.sendasync(function() {
            _log("token sent");
        }.bindenv(this));
    }

    function _onCbsReply(deliveries) {
        foreach (delivery in deliveries) {
            local props = delivery.message().properties();
            local status = "status-code" in props ? props["status-code"] : 0;
            if (status == 200) {
                delivery.accept();
                _openEventLinks();
            } else {
                delivery.reject();
                _fail("put-token refused: " + status);
            }
        }
    }

    function _openEventLinks() {
        local prefix = "/devices/" + _config.DeviceId;
        _eventSender = _session.opensender(prefix + "/messages/events", _onLinkEvent.bindenv(this));
        if (_handlers.command != null) _openReceiver();
    }

    function _openReceiver() {
        local path = "/devices/" + _config.DeviceId + "/messages/devicebound";
        _commandReceiver = _session.openreceiver(path, _onLinkEvent.bindenv(this),
            function(deliveries) {
                while (deliveries.len() > 0) {
                    local delivery = deliveries.remove(0);
                    local message = delivery.message();
                    local body = message.body();
                    try {
                        _handlers.command(body.tostring(), message.properties());
                        delivery.accept();
                    } catch (err) {
                        server.error("command handler failed: " + err);
                        delivery.release();
                    }
                }
            }.bindenv(this));
    }

    function _onLinkEvent(event, detail) {
        switch (event) {
            case "SENDER_OPEN":
                if (_cbsSender != null && _cbsSender.isopen() && _eventSender == null) {
                    _putToken();
                } else if (_eventSender != null && _eventSender.isopen()) {
                    _state = AzureState.CONNECTED;
                    _flushQueue();
                    if (_handlers.connected) _handlers.connected(null);
                }
                break;
            case "RECEIVER_OPEN":
                _log("receiver open");
                break;
            case "SENDER_ERROR":
            case "RECEIVER_ERROR":
                if (detail == null) detail = event;
                if (detail.find("token") != null) {
                    _log("token problem, reconnecting");
                    disconnect();
                    _scheduleRetry();
                } else {
                    _fail(event + ": " + detail);
                }
                break;
            case "SENDER_CLOSED":
            case "RECEIVER_CLOSED":
                break;
            default:
                _log("unexpected link event " + event);
        }
    }

    function _flushQueue() {
        local pending = _queue;
        _queue = [];
        foreach (i, item in pending) {
            sendEvent(item.msg, item.cb);
        }
    }

    function _scheduleRetry() {
        if (++_retries > AZURE_RETRY_MAX) {
            _state = AzureState.FAILED;
            if (_handlers.disconnected) _handlers.disconnected("giving up after " + _retries);
            return;
        }
        local delay = math.pow(2, _retries) * 0.5;
        imp.wakeup(delay, function() {
            connect(_handlers.connected);
        }.bindenv(this));
    }

    function _fail(reason) {
        server.error("AzureIoTHub: " + reason);
        _state = AzureState.FAILED;
        if (_handlers.disconnected) _handlers.disconnected(reason);
    }

    function _nextTransferId() {
        local id = 0;
        while (id in _transfers) id++;
        return id;
    }

    function _log(text) {
        if (_debug) server.log("[AzureIoTHub] " + text);
    }
}
