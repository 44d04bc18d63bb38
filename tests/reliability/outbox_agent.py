"""Agent script for test_outbox_kill.py, run with ``bridge run outbox_agent.py START COUNT PATH``.

Sends ``m<START>`` ... ``m<COUNT-1>`` to *PATH* in batches of 200 (one batch per dispatcher turn,
every 10 ms), with the durable outbox configured by the environment (``BRIDGE_OUTBOX__*``).
Prints ``queued <n>`` after each batch - every message below *n* is then stored in the outbox -
and ``confirmed <k>`` every 100 ``sendasync`` callbacks, so the test can kill it mid-stream.
``amqp``, ``imp`` and ``server`` are predefined by ``bridge run``, as on imp.
"""

# ruff: noqa: F821  (amqp, imp: predefined by `bridge run`)
import sys

START, COUNT, PATH = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
BATCH = 200

state = {"next": START, "confirmed": 0}


def on_event(event, detail):
    print(f"event {event} {detail}", flush=True)


def on_confirmed():
    state["confirmed"] += 1
    if state["confirmed"] % 100 == 0:
        print(f"confirmed {state['confirmed']}", flush=True)


def send_batch():
    end = min(state["next"] + BATCH, COUNT)
    for n in range(state["next"], end):
        sender.createtransfer(amqp.createmessage(f"m{n:05d}")).sendasync(on_confirmed)
    state["next"] = end
    print(f"queued {end}", flush=True)
    if end < COUNT:
        imp.wakeup(0.01, send_batch)


conn = amqp.openconnection("amqps://hub.example", on_event)
sender = conn.opensession().opensender(PATH, on_event)
imp.wakeup(0, send_batch)
