"""Benchmarks: the adapter against the raw clients, doing the same work against the same broker.

    python benchmarks/run.py            # full run (about a minute)
    python benchmarks/run.py --quick    # smaller counts, for a smoke check

Prints one table per measurement:

1. throughput end to end (send -> receive -> settle), messages/s, adapter vs raw client and the
   ratio: MQTT at QoS 1 and 0 (paho-mqtt raw), AMQP 1.0 (proton raw, RabbitMQ), memory (no raw);
   256 B and 16 KiB bodies; with the CPU time the client process spent per message (all its
   threads, the broker not counted), which varies much less from run to run than the rate;
2. added latency p50/p99 at a fixed rate (1,000 msg/s);
3. peak memory for 10,000 messages buffered while the MQTT broker is unreachable;
4. concurrent agents/connections one process holds.

MQTT runs against a private Mosquitto started here (no per-client queue limit, so nothing is
dropped); AMQP against the local RabbitMQ (127.0.0.1:5672, AMQP 1.0 plugin). Raw paho runs at its
default in-flight window of 20, its fastest QoS 1 setting.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from bridge import Agent, Settings  # noqa: E402
from bridge.demo import percentile as pct  # noqa: E402
from bridge.testing.mosquitto import PrivateMosquitto as Mosquitto  # noqa: E402

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
SIZES = {"256 B": 256, "16 KiB": 16 * 1024}


def body_of(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


# --------------------------------------------------------------------------------------------
# adapter side: one agent, a sender and a receiver on the same address
# --------------------------------------------------------------------------------------------


Throughput = tuple[float, int, float]  # messages/s, messages received, CPU µs per message


def adapter_throughput(settings: Settings, path: str, count: int, size: int,
                       confirm: bool = True, connections: int = 2) -> Throughput:
    """messages/s from the first send to the last receive+accept (and send confirmation), and
    the CPU this process spent per message meanwhile (all its threads).

    With ``connections=2`` the receiver and the sender use one connection each, as the raw
    baselines use one client (one socket, one network thread) per side.
    """
    agent = Agent(settings)
    conn = agent.amqp.openconnection("amqps://bench.example", lambda e, d: None)
    session = conn.opensession()
    if connections == 2:
        send_conn = agent.amqp.openconnection("amqps://bench.example", lambda e, d: None)
        send_session = send_conn.opensession()
    else:
        send_session = session
    received = [0]

    def on_messages(deliveries: list[Any]) -> None:
        for delivery in deliveries:
            delivery.accept()
        received[0] += len(deliveries)

    receiver = session.openreceiver(path, None, on_messages)
    if not agent.run_until(receiver.isopen, 15):
        agent.close()
        raise RuntimeError(f"adapter could not open a receiver on {settings.backend}")
    sender = send_session.opensender(path)
    if not agent.run_until(sender.isopen, 15):
        agent.close()
        raise RuntimeError(f"adapter could not open a sender on {settings.backend}")
    confirmed = [0]

    def done() -> None:
        confirmed[0] += 1

    message = agent.amqp.createbinarymessage(body_of(size), {"bench": 1})
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(count):
        sender.createtransfer(message).sendasync(done)
    agent.run_until(lambda: received[0] >= count and (not confirm or confirmed[0] >= count), 120)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    agent.close()
    return received[0] / elapsed, received[0], cpu / count * 1e6


# --------------------------------------------------------------------------------------------
# raw paho
# --------------------------------------------------------------------------------------------


def _paho_client(port: int, client_id: str, on_message: Callable[..., None] | None = None
                 ) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    if on_message is not None:
        client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError("raw paho could not connect")
    return client


def _paho_subscriber(port: int, topic: str, qos: int,
                     on_message: Callable[..., None]) -> paho.Client:
    """A raw paho client subscribed to *topic* (SUBACK received)."""
    subscriber = _paho_client(port, f"raw-sub-{uuid.uuid4().hex[:8]}", on_message)
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscriber.subscribe(topic, qos)
    if not subscribed.wait(10):
        raise RuntimeError("raw paho could not subscribe")
    return subscriber


def paho_throughput_stock(port: int, count: int, size: int, qos: int) -> Throughput:
    """`paho_throughput` in a fresh interpreter: stock paho, without the adapter's speedups
    (the MQTT backend speeds up paho's property lookups process-wide when it loads)."""
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.run import "
            f"paho_throughput; print(*paho_throughput({port}, {count}, {size}, {qos}))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=300).stdout.split()
    return float(out[0]), int(out[1]), float(out[2])


def paho_throughput(port: int, count: int, size: int, qos: int) -> Throughput:
    topic = f"bench/raw/{uuid.uuid4().hex}"
    received = [0]
    all_in = threading.Event()

    def on_message(client: paho.Client, userdata: Any, message: Any) -> None:
        received[0] += 1
        if received[0] >= count:
            all_in.set()

    subscriber = _paho_subscriber(port, topic, qos, on_message)
    publisher = _paho_client(port, f"raw-pub-{uuid.uuid4().hex[:8]}")
    published = [0]
    all_out = threading.Event()

    def on_publish(*args: Any) -> None:
        published[0] += 1
        if published[0] >= count:
            all_out.set()

    publisher.on_publish = on_publish
    payload = body_of(size)
    # the same application property the adapter's messages carry: the same work on the wire
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = ("bench", "1")
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(count):
        publisher.publish(topic, payload, qos, properties=properties)
    all_in.wait(120)
    all_out.wait(120)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    for client in (publisher, subscriber):
        client.disconnect()
        client.loop_stop()
    return received[0] / elapsed, received[0], cpu / count * 1e6


# --------------------------------------------------------------------------------------------
# raw proton
# --------------------------------------------------------------------------------------------


def proton_throughput(count: int, size: int) -> Throughput:
    from proton import Message
    from proton.handlers import MessagingHandler
    from proton.reactor import Container

    address = f"/queue/bench-raw-{uuid.uuid4().hex[:10]}"
    payload = body_of(size)
    result: dict[str, float] = {}

    class Bench(MessagingHandler):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(prefetch=100, auto_accept=False)
            self.sent = self.confirmed = self.received = 0
            self.start = self.cpu_start = 0.0

        def on_start(self, event: Any) -> None:
            conn = event.container.connect(AMQP_URL)
            self.receiver = event.container.create_receiver(conn, address)
            self.sender = event.container.create_sender(conn, address)

        def on_sendable(self, event: Any) -> None:
            if not self.start:
                self.start, self.cpu_start = time.perf_counter(), time.process_time()
            while event.sender.credit and self.sent < count:
                event.sender.send(Message(body=payload, inferred=True,
                                          properties={"bench": 1}))
                self.sent += 1

        def on_accepted(self, event: Any) -> None:
            self.confirmed += 1
            self._maybe_done(event)

        def on_message(self, event: Any) -> None:
            self.accept(event.delivery)
            self.received += 1
            self._maybe_done(event)

        def _maybe_done(self, event: Any) -> None:
            if self.received >= count and self.confirmed >= count:
                result["elapsed"] = time.perf_counter() - self.start
                result["cpu"] = time.process_time() - self.cpu_start
                result["received"] = self.received
                event.connection.close()

    Container(Bench()).run()
    return (result["received"] / result["elapsed"], int(result["received"]),
            result["cpu"] / count * 1e6)


# --------------------------------------------------------------------------------------------
# latency at a fixed rate
# --------------------------------------------------------------------------------------------


def adapter_latency(settings: Settings, path: str, rate: int, seconds: float) -> list[float]:
    agent = Agent(settings)
    conn = agent.amqp.openconnection("amqps://bench.example", lambda e, d: None)
    session = conn.opensession()
    samples: list[float] = []

    def on_messages(deliveries: list[Any]) -> None:
        now = time.perf_counter()
        for delivery in deliveries:
            samples.append((now - delivery.message().properties()["t"]) * 1000)
            delivery.accept()

    receiver = session.openreceiver(path, None, on_messages)
    sender = session.opensender(path)
    agent.run_until(lambda: sender.isopen() and receiver.isopen(), 15)
    total = int(rate * seconds)
    start = time.perf_counter()
    sent = [0]

    def tick() -> None:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while sent[0] < due:
            sent[0] += 1
            message = agent.amqp.createbinarymessage(body_of(256), {"t": time.perf_counter()})
            sender.createtransfer(message).sendasync()
        if sent[0] < total:
            agent.imp.wakeup(0.001, tick)

    tick()
    agent.run_until(lambda: len(samples) >= total, seconds + 30)
    agent.close()
    return samples


def paho_latency(port: int, rate: int, seconds: float, qos: int = 1) -> list[float]:
    topic = f"bench/lat/{uuid.uuid4().hex}"
    samples: list[float] = []
    total = int(rate * seconds)
    done = threading.Event()

    def on_message(client: paho.Client, userdata: Any, message: Any) -> None:
        samples.append((time.perf_counter() - float(message.payload[:32])) * 1000)
        if len(samples) >= total:
            done.set()

    subscriber = _paho_subscriber(port, topic, qos, on_message)
    publisher = _paho_client(port, f"lat-pub-{uuid.uuid4().hex[:8]}")
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load generator, not synchronising a test
        publisher.publish(topic, f"{time.perf_counter():<32}".encode() + body_of(224), qos)
    done.wait(seconds + 30)
    for client in (publisher, subscriber):
        client.disconnect()
        client.loop_stop()
    return samples


# --------------------------------------------------------------------------------------------
# memory while disconnected, and connections per process
# --------------------------------------------------------------------------------------------


def buffered_memory(count: int, directory: Path) -> tuple[float, int, int]:
    """MB allocated (tracemalloc peak) to hold *count* sends while the broker is down, and how
    many were then delivered once it came back (all of them, or the buffer failed)."""
    with Mosquitto(directory) as broker:
        settings = Settings(backend="mqtt", agent_id=f"buf{uuid.uuid4().hex[:6]}",
                            mqtt={"url": broker.url, "reconnect": "auto",
                                  "buffer_limit": count + 10, "reconnect_min_delay": 0.2,
                                  "reconnect_max_delay": 1})
        agent = Agent(settings)
        conn = agent.amqp.openconnection("amqps://bench.example", lambda e, d: None)
        sender = conn.opensession().opensender("/bench/buffered")
        if not agent.run_until(sender.isopen, 15):
            raise RuntimeError("could not open the sender")
        broker.stop()
        confirmed = [0]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            message = agent.amqp.createbinarymessage(body_of(256), {"i": i})
            sender.createtransfer(message).sendasync(lambda: confirmed.__setitem__(
                0, confirmed[0] + 1))
        agent.run(timeout=0.5)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        broker.start()
        agent.run_until(lambda: confirmed[0] >= count, 60)
        agent.close()
        return (peak - before) / 1e6, count, confirmed[0]


def _rss_mb() -> float:
    """Current resident set size (not the peak: earlier runs raised that already)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def connections_held(port: int, agents: int) -> tuple[int, float]:
    """How many agents (one MQTT connection each) open in one process, and the RSS growth."""
    rss_before = _rss_mb()
    opened: list[Agent] = []
    events: list[str] = []
    conns = []
    for i in range(agents):
        agent = Agent(Settings(backend="mqtt", agent_id=f"many{i}-{uuid.uuid4().hex[:6]}",
                               mqtt={"url": f"mqtt://127.0.0.1:{port}"}))
        agent.start()
        conns.append(agent.amqp.openconnection("amqps://bench.example",
                                               lambda e, d: events.append(e)))
        opened.append(agent)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(c.isopen() for c in conns) < agents:
        time.sleep(0.05)  # polling a count from the outside of many agents
    ok = sum(c.isopen() for c in conns)
    rss_after = _rss_mb()
    for agent in opened:
        agent.close()
    return ok, rss_after - rss_before


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths,  # noqa: E731
                                                                             strict=False)) + " |"
    out = [f"\n### {title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in rows]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--backends", default="memory,mqtt,amqp")
    args = parser.parse_args()
    # The memory measurement stops the broker on purpose: its reconnect warnings are expected.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    wanted = set(args.backends.split(","))
    scale = 0.2 if args.quick else 1.0
    counts = {256: int(20_000 * scale), 16 * 1024: int(5_000 * scale)}
    print(f"# amqp-mqtt-bridge benchmarks\n\nmachine: {platform.platform()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp)) as broker:
        port = int(broker.url.rsplit(":", 1)[1])
        mqtt = {"url": broker.url}
        for label, size in SIZES.items():
            count = counts[size]
            if "memory" in wanted:
                rate, got, cpu = adapter_throughput(
                    Settings(memory={"broker": uuid.uuid4().hex}), "/bench", count, size,
                    connections=1)
                rows.append(["memory", "-", label, f"{count}", f"{rate:,.0f}", "-", "-",
                             f"{cpu:.0f}", "-"])
            if "mqtt" in wanted:
                for qos in (1, 0):
                    raw, raw_got, raw_cpu = paho_throughput_stock(port, count, size, qos)
                    settings = Settings(backend="mqtt", agent_id=f"b{uuid.uuid4().hex[:6]}",
                                        mqtt={**mqtt, "qos": qos})
                    rate, got, cpu = adapter_throughput(settings, f"/bench/{uuid.uuid4().hex}",
                                                        count, size)
                    rows.append(["mqtt", str(qos), label, f"{count} ({got}/{raw_got} in)",
                                 f"{rate:,.0f}", f"{raw:,.0f}", f"{rate / raw:.2f}",
                                 f"{cpu:.0f}", f"{raw_cpu:.0f}"])
            if "amqp" in wanted:
                raw, raw_got, raw_cpu = proton_throughput(count, size)
                settings = Settings(backend="amqp", amqp={"url": AMQP_URL},
                                    agent_id=f"b{uuid.uuid4().hex[:6]}")
                rate, got, cpu = adapter_throughput(  # one connection, as the raw proton peer
                    settings, f"/queue/bench-{uuid.uuid4().hex[:10]}", count, size,
                    connections=1)
                rows.append(["amqp", "-", label, f"{count} ({got}/{raw_got} in)",
                             f"{rate:,.0f}", f"{raw:,.0f}", f"{rate / raw:.2f}", f"{cpu:.0f}",
                             f"{raw_cpu:.0f}"])
        print(table("Throughput, end to end (msg/s), and client CPU per message (µs)",
                    ["backend", "qos", "body", "messages", "adapter", "raw client",
                     "adapter/raw", "adapter CPU", "raw CPU"], rows))
        if "mqtt" in wanted:
            seconds = 3.0 * scale if args.quick else 5.0
            raw = paho_latency(port, 1000, seconds)
            settings = Settings(backend="mqtt", agent_id=f"l{uuid.uuid4().hex[:6]}", mqtt=mqtt)
            adapted = adapter_latency(settings, f"/bench/lat/{uuid.uuid4().hex}", 1000, seconds)
            lat_rows = [[name, f"{len(s)}", f"{pct(s, .5):.3f}", f"{pct(s, .99):.3f}",
                         f"{statistics.fmean(s) if s else float('nan'):.3f}"]
                        for name, s in (("raw paho", raw), ("adapter", adapted))]
            lat_rows.append(["added by the adapter", "-",
                             f"{pct(adapted, .5) - pct(raw, .5):.3f}",
                             f"{pct(adapted, .99) - pct(raw, .99):.3f}", "-"])
            print(table("Latency at 1,000 msg/s, MQTT QoS 1, 256 B (ms)",
                        ["path", "samples", "p50", "p99", "mean"], lat_rows))
            megabytes, held, delivered = buffered_memory(10_000, Path(tmp) / "buffer")
            print(table("Memory for 10,000 messages buffered while disconnected",
                        ["messages sent while down", "peak allocated (MB)",
                         "confirmed after the broker came back"],
                        [[f"{held}", f"{megabytes:.1f}", f"{delivered}"]]))
            agents = 50 if args.quick else 200
            ok, rss = connections_held(port, agents)
            print(table("Concurrent agents in one process (one MQTT connection each)",
                        ["agents started", "connections open", "RSS growth (MB)"],
                        [[f"{agents}", f"{ok}", f"{rss:.0f}"]]))


if __name__ == "__main__":
    main()
