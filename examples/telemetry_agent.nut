// A legacy imp agent in Squirrel: telemetry out with properties, commands in, accepted.
// The Squirrel twin of examples/telemetry_agent.py (same objects, same order, same log lines).
//
// Run it with `bridge run examples/telemetry_agent.nut` (any backend: BRIDGE_BACKEND=mqtt,
// amqp ...). amqp, imp, server and http are imp's globals; `agent.stop()` is the bridge's own
// (imp agents never stopped). Settings come from imp.configparams (`--param NAME=VALUE`, or a
// bare `--param NAME` to take the environment variable NAME): DEVICE_ID, BROKER_URL,
// TELEMETRY_PATH, COMMAND_PATH (RabbitMQ wants e.g. /queue/telemetry), TELEMETRY_COUNT
// (0: run until Ctrl-C), TELEMETRY_INTERVAL, EXAMPLE_CLOUD (0: no stand-in cloud side).
//
// The script also plays a small "cloud side" on a second connection (it reads the telemetry
// and sends a command back) so it shows both directions on its own.

function param(name, fallback) {
    return (name in imp.configparams) ? imp.configparams[name] : fallback;
}

const TELEMETRY_UNIT = "celsius";
DEVICE_ID <- param("DEVICE_ID", "demo-device");
BROKER_URL <- param("BROKER_URL", "amqps://demo-hub.example");
TELEMETRY_PATH <- param("TELEMETRY_PATH", "/devices/" + DEVICE_ID + "/messages/events");
COMMAND_PATH <- param("COMMAND_PATH", "/devices/" + DEVICE_ID + "/messages/devicebound");
TELEMETRY_COUNT <- param("TELEMETRY_COUNT", "5").tointeger();
TELEMETRY_INTERVAL <- param("TELEMETRY_INTERVAL", "0.2").tofloat();
WITH_CLOUD <- param("EXAMPLE_CLOUD", "1") != "0";

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

// -- the device agent (`deviceAgent`: imp's own `device` global is another thing) --------
deviceAgent <- {connection = null, session = null, sender = null, receiver = null,
                sent = 0, confirmed = 0, commands = 0};

function maybeFinish() {
    if (TELEMETRY_COUNT && deviceAgent.confirmed >= TELEMETRY_COUNT && deviceAgent.commands >= 1) {
        server.log("done: " + deviceAgent.confirmed + " telemetry confirmed, " + deviceAgent.commands
                   + " command(s) accepted");
        agent.stop();
    }
}

function sendTelemetry() {
    if (!(deviceAgent.sender && deviceAgent.sender.isopen())) return;
    deviceAgent.sent++;
    local n = deviceAgent.sent;
    local reading = {device = DEVICE_ID, seq = n, temperature = 20.0 + n / 10.0};
    local message = amqp.createbinarymessage(http.jsonencode(reading),
                                             {seq = n, unit = TELEMETRY_UNIT, alert = n % 5 == 0});
    deviceAgent.sender.createtransfer(message).sendasync(function() {
        deviceAgent.confirmed++;
        server.log("telemetry #" + n + " confirmed: " + http.jsonencode(reading));
        maybeFinish();
    });
    if (!TELEMETRY_COUNT || n < TELEMETRY_COUNT) imp.wakeup(TELEMETRY_INTERVAL, sendTelemetry);
}

function onCommands(deliveries) {
    while (deliveries.len()) {
        local delivery = deliveries.remove(0);
        local message = delivery.message();
        local body = message.body();
        local text = typeof body == "blob" ? body.tostring() : body;
        server.log("command received: " + text + " properties=" + repr(message.properties()));
        delivery.accept();
        deviceAgent.commands++;
        server.log("command accepted");
    }
    maybeFinish();
}

function onDeviceEvent(event, detail) {
    if (event == "CONNECTION_OPEN") {
        deviceAgent.session = deviceAgent.connection.opensession(onDeviceEvent);
    } else if (event == "SESSION_OPEN") {
        deviceAgent.receiver = deviceAgent.session.openreceiver(COMMAND_PATH, onDeviceEvent, onCommands);
    } else if (event == "RECEIVER_OPEN") {
        deviceAgent.sender = deviceAgent.session.opensender(TELEMETRY_PATH, onDeviceEvent);
    } else if (event == "SENDER_OPEN") {
        server.log("device ready: telemetry -> " + TELEMETRY_PATH + ", commands <- " + COMMAND_PATH);
        if (WITH_CLOUD) startCloud();
        else sendTelemetry();
    } else if (event.slice(-6) == "_ERROR") {
        server.error("device " + event + ": " + detail);
    } else {
        server.log("device " + event);
    }
}

// -- a stand-in cloud application -----------------------------------------------------------
cloud <- {connection = null, session = null, sender = null, receiver = null, seen = 0};

function onTelemetry(deliveries) {
    foreach (delivery in deliveries) {
        cloud.seen++;
        delivery.accept();
        if (cloud.seen == 2) {  // answer the second reading with a command
            local command = amqp.createmessage(http.jsonencode({action = "set-interval", seconds = 30}),
                                               {["command-id"] = 1});
            cloud.sender.createtransfer(command).sendasync(function() {
                server.log("cloud: command confirmed by the broker");
            });
        }
    }
}

function onCloudEvent(event, detail) {
    if (event == "CONNECTION_OPEN") {
        cloud.session = cloud.connection.opensession(onCloudEvent);
    } else if (event == "SESSION_OPEN") {
        cloud.receiver = cloud.session.openreceiver(TELEMETRY_PATH, onCloudEvent, onTelemetry);
    } else if (event == "RECEIVER_OPEN") {
        cloud.sender = cloud.session.opensender(COMMAND_PATH, onCloudEvent);
    } else if (event == "SENDER_OPEN") {
        sendTelemetry();  // both sides are ready
    } else if (event.slice(-6) == "_ERROR") {
        server.error("cloud " + event + ": " + detail);
    }
}

function startCloud() {
    cloud.connection = amqp.openconnection(BROKER_URL, onCloudEvent);
}

deviceAgent.connection = amqp.openconnection(BROKER_URL, onDeviceEvent);
