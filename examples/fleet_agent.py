"""One device's agent, for ``bridge fleet``: run once per row of a devices file.

``imp.configparams`` is the device's row (``deviceid`` is its device_id); the script sends
``count`` readings, ``interval`` seconds apart, to its own telemetry address and accepts the
commands on its own command address. Every device runs this same code in its own namespace.

    bridge fleet examples/fleet_agent.py --devices examples/devices.csv --timeout 10
"""

DEVICE = imp.configparams["deviceid"]
COUNT = int(imp.configparams.get("count", 3))
INTERVAL = float(imp.configparams.get("interval", 1))
state = {"sent": 0, "confirmed": 0, "sender": None}


def on_event(event, detail):
    if event.endswith("_ERROR"):
        server.error(f"{event}: {detail}")
    elif event == "CONNECTION_OPEN":
        session = connection.opensession()
        state["sender"] = session.opensender(f"/devices/{DEVICE}/messages/events")
        state["receiver"] = session.openreceiver(f"/devices/{DEVICE}/messages/devicebound",
                                                 None, on_commands)
        imp.wakeup(0, send)


def on_commands(deliveries):
    for delivery in deliveries:
        server.log(f"command: {delivery.message().body()!r}")
        delivery.accept()


def send():
    sender = state["sender"]
    if state["sent"] >= COUNT or sender is None:
        return
    if not sender.isopen():  # not open yet (its SENDER_OPEN is on the way): try again later
        imp.wakeup(INTERVAL, send)
        return
    state["sent"] += 1
    seq = state["sent"]
    reading = amqp.createbinarymessage(f'{{"device": "{DEVICE}", "seq": {seq}}}', {"seq": seq})

    def confirmed():
        state["confirmed"] += 1
        if state["confirmed"] == COUNT:
            server.log(f"all {COUNT} readings confirmed")

    sender.createtransfer(reading).sendasync(confirmed)
    imp.wakeup(INTERVAL, send)


connection = amqp.openconnection(f"amqps://fleet.example/{DEVICE}", on_event)
