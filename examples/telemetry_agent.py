"""A legacy imp agent, ported line by line: telemetry out with properties, commands in, accepted.

Run it with ``bridge run examples/telemetry_agent.py`` (any backend: BRIDGE_BACKEND=mqtt, amqp ...).
``amqp``, ``imp``, ``server`` and ``agent`` are globals provided by ``bridge run``, as the imp
agent environment provided them.

The script also plays a small "cloud side" on a second connection (it reads the telemetry and
sends a command back) so it shows both directions on its own; set EXAMPLE_CLOUD=0 when a real
cloud application is on the other end. Addresses come from the environment so they suit the
broker: TELEMETRY_PATH, COMMAND_PATH (RabbitMQ wants e.g. /queue/telemetry). It stops by itself
after TELEMETRY_COUNT confirmed messages and one accepted command (TELEMETRY_COUNT=0: run until
Ctrl-C).
"""

import json
import os

DEVICE_ID = os.environ.get("DEVICE_ID", "demo-device")
BROKER_URL = os.environ.get("BROKER_URL", "amqps://demo-hub.example")
TELEMETRY_PATH = os.environ.get("TELEMETRY_PATH", f"/devices/{DEVICE_ID}/messages/events")
COMMAND_PATH = os.environ.get("COMMAND_PATH", f"/devices/{DEVICE_ID}/messages/devicebound")
TELEMETRY_COUNT = int(os.environ.get("TELEMETRY_COUNT", "5"))
TELEMETRY_INTERVAL = float(os.environ.get("TELEMETRY_INTERVAL", "0.2"))
WITH_CLOUD = os.environ.get("EXAMPLE_CLOUD", "1") != "0"

# -- the device agent (what the Squirrel code did) -------------------------------------------
device = {"connection": None, "session": None, "sender": None, "receiver": None,
          "sent": 0, "confirmed": 0, "commands": 0}


def maybe_finish():
    if TELEMETRY_COUNT and device["confirmed"] >= TELEMETRY_COUNT and device["commands"] >= 1:
        server.log(f"done: {device['confirmed']} telemetry confirmed, "
                   f"{device['commands']} command(s) accepted")
        agent.stop()


def send_telemetry():
    if not (device["sender"] and device["sender"].isopen()):
        return
    device["sent"] += 1
    n = device["sent"]
    reading = {"device": DEVICE_ID, "seq": n, "temperature": 20.0 + n / 10}
    message = amqp.createbinarymessage(json.dumps(reading),
                                       {"seq": n, "unit": "celsius", "alert": n % 5 == 0})

    def on_sent():
        device["confirmed"] += 1
        server.log(f"telemetry #{n} confirmed: {reading}")
        maybe_finish()

    device["sender"].createtransfer(message).sendasync(on_sent)
    if not TELEMETRY_COUNT or n < TELEMETRY_COUNT:
        imp.wakeup(TELEMETRY_INTERVAL, send_telemetry)


def on_commands(deliveries):
    while len(deliveries):
        delivery = deliveries.pop(0)
        message = delivery.message()
        body = message.body()
        text = body.decode() if isinstance(body, bytes) else body
        server.log(f"command received: {text} properties={message.properties()}")
        delivery.accept()
        device["commands"] += 1
        server.log("command accepted")
    maybe_finish()


def on_device_event(event, detail):
    if event == "CONNECTION_OPEN":
        device["session"] = device["connection"].opensession(on_device_event)
    elif event == "SESSION_OPEN":
        device["receiver"] = device["session"].openreceiver(COMMAND_PATH, on_device_event,
                                                            on_commands)
    elif event == "RECEIVER_OPEN":
        device["sender"] = device["session"].opensender(TELEMETRY_PATH, on_device_event)
    elif event == "SENDER_OPEN":
        server.log(f"device ready: telemetry -> {TELEMETRY_PATH}, commands <- {COMMAND_PATH}")
        if WITH_CLOUD:
            start_cloud()
        else:
            send_telemetry()
    elif event.endswith("_ERROR"):
        server.error(f"device {event}: {detail}")
    else:
        server.log(f"device {event}")


# -- a stand-in cloud application ------------------------------------------------------------
cloud = {"connection": None, "session": None, "sender": None, "receiver": None, "seen": 0}


def on_telemetry(deliveries):
    for delivery in deliveries:
        cloud["seen"] += 1
        delivery.accept()
        if cloud["seen"] == 2:  # answer the second reading with a command
            command = amqp.createmessage(json.dumps({"action": "set-interval", "seconds": 30}),
                                         {"command-id": 1})
            cloud["sender"].createtransfer(command).sendasync(
                lambda: server.log("cloud: command confirmed by the broker"))


def on_cloud_event(event, detail):
    if event == "CONNECTION_OPEN":
        cloud["session"] = cloud["connection"].opensession(on_cloud_event)
    elif event == "SESSION_OPEN":
        cloud["receiver"] = cloud["session"].openreceiver(TELEMETRY_PATH, on_cloud_event,
                                                          on_telemetry)
    elif event == "RECEIVER_OPEN":
        cloud["sender"] = cloud["session"].opensender(COMMAND_PATH, on_cloud_event)
    elif event == "SENDER_OPEN":
        send_telemetry()  # both sides are ready
    elif event.endswith("_ERROR"):
        server.error(f"cloud {event}: {detail}")


def start_cloud():
    cloud["connection"] = amqp.openconnection(BROKER_URL, on_cloud_event)


device["connection"] = amqp.openconnection(BROKER_URL, on_device_event)
