// One device's agent, for `bridge fleet`: the Squirrel twin of examples/fleet_agent.py, each
// device on its own embedded VM. imp.configparams is the device's row (deviceid is its
// device_id); the agent sends `count` readings, `interval` seconds apart, to its own telemetry
// address and accepts the commands on its own command address.
//
//     bridge fleet examples/fleet_agent.nut --devices examples/devices.csv --timeout 10

DEVICE <- imp.configparams.deviceid;
COUNT <- ("count" in imp.configparams) ? imp.configparams.count.tointeger() : 3;
INTERVAL <- ("interval" in imp.configparams) ? imp.configparams.interval.tofloat() : 1.0;
state <- {sent = 0, confirmed = 0, sender = null, receiver = null};

function onEvent(event, detail) {
    if (event.slice(-6) == "_ERROR") {
        server.error(event + ": " + detail);
    } else if (event == "CONNECTION_OPEN") {
        local session = connection.opensession();
        state.sender = session.opensender("/devices/" + DEVICE + "/messages/events");
        state.receiver = session.openreceiver("/devices/" + DEVICE + "/messages/devicebound",
                                              null, onCommands);
        imp.wakeup(0, send);
    }
}

function onCommands(deliveries) {
    foreach (delivery in deliveries) {
        local body = delivery.message().body();
        server.log("command: " + (typeof body == "blob" ? body.tostring() : body));
        delivery.accept();
    }
}

function send() {
    local sender = state.sender;
    if (state.sent >= COUNT || sender == null || !sender.isopen()) return;
    state.sent++;
    local seq = state.sent;
    local reading = amqp.createbinarymessage(http.jsonencode({device = DEVICE, seq = seq}),
                                             {seq = seq});
    sender.createtransfer(reading).sendasync(function() {
        state.confirmed++;
        if (state.confirmed == COUNT) server.log("all " + COUNT + " readings confirmed");
    });
    imp.wakeup(INTERVAL, send);
}

connection <- amqp.openconnection("amqps://fleet.example/" + DEVICE, onEvent);
