#require "AzureIoTHubLite.agent.lib.nut:2.2.0"

// The agent: reads its connection string from configuration, sends a reading every minute.
local settings = imp.configparams;
local client = AzureIoTHub.Client(settings.connectionString, { debug = true });
local saved = server.load();
local count = "count" in saved ? saved.count : 0;

function sendReading() {
    count++;
    local msg = AzureIoTHub.Message({ temperature = 21.5, count = count }, { "unit": "C" });
    client.sendEvent(msg, function(err) {
        if (err != null) server.error(err);
        else server.save({ count = count });
    });
    imp.wakeup(60, sendReading);
}

device.on("reading", function(data) {
    client.sendEvent(AzureIoTHub.Message(data));
});

http.onrequest(function(request, response) {
    response.send(200, "ok");
});

client.receive(function(body, props) {
    server.log("command: " + body);
    device.send("command", body);
});
client.connect(function(err) {
    if (err == null) sendReading();
});
