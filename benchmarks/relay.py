"""Benchmark: `bridge relay` against the raw clients doing one hop on the same brokers.

    python benchmarks/relay.py              # full run (about six minutes)
    python benchmarks/relay.py --quick      # smaller counts, for a smoke check
    python benchmarks/relay.py --profile    # also: the relay in-process, stacks sampled per thread

Both directions, 256 B and 16 KiB bodies, side by side in one run, each measurement repeated
(``--repeat``, default 3) and interleaved with the baselines; the table shows medians and the
range of the per-run ratio:

- AMQP -> MQTT: the relay drains a pre-filled RabbitMQ queue (127.0.0.1:5672) into a topic of a
  private Mosquitto where a raw paho subscriber counts arrivals. Baseline: raw proton sending
  and receiving the same number of messages through one queue of the same RabbitMQ.
- MQTT -> AMQP: the relay drains its persistent MQTT session (pre-filled while it was away, as
  after a restart) into a RabbitMQ queue a bridge agent consumes. Baseline: raw paho
  publishing and subscribing at QoS 1 on the same private Mosquitto.

The relay runs as a separate process (``bridge --config PROFILE relay``, what users run): its
rate is the messages per second between the first and the last arrival at the target
consumer, and its CPU per message is the relay process's user+system time over the same span
(read from /proc), so filling the source and the consumer are not counted.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from benchmarks.run import (  # noqa: E402
    AMQP_URL,
    SIZES,
    paho_throughput_stock,
    proton_throughput,
    table,
)
from bridge import Agent, Settings  # noqa: E402
from bridge.testing.mosquitto import PrivateMosquitto  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def numbered_body(n: int, size: int) -> bytes:
    """A body of *size* bytes that starts with its number: every message is distinct."""
    head = f"{n:010d}".encode()
    return head + (b"0123456789abcdef" * (size // 16 + 1))[:max(size - len(head), 0)]


def process_cpu(pid: int) -> float:
    """User + system seconds a process spent so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Arrivals:
    """Counts arrivals at the target; notes the time (and relay CPU) of the first and last."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.received = 0
        self.first = self.last = 0.0
        self.cpu_first = self.cpu_last = 0.0
        self.pid: int | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def arrived(self, how_many: int = 1) -> None:
        with self.lock:
            if self.received == 0:
                self.first = time.perf_counter()
                self.cpu_first = self._cpu()
            self.received += how_many
            if self.received >= self.count and not self.done.is_set():
                self.last = time.perf_counter()
                self.cpu_last = self._cpu()
                self.done.set()

    def wait(self, stall: float = 30.0) -> None:
        """Until all arrived; RuntimeError when nothing arrives for *stall* seconds."""
        seen = -1
        while not self.done.wait(stall):
            if self.received == seen:
                raise RuntimeError(f"stalled: {self.received} of {self.count} arrived")
            seen = self.received

    def _cpu(self) -> float:
        return process_cpu(self.pid) if self.pid is not None else time.process_time()

    def figures(self) -> tuple[float, float]:
        """messages/s and relay CPU µs per message, first to last arrival."""
        span = self.last - self.first
        intervals = max(self.received - 1, 1)
        return intervals / span, (self.cpu_last - self.cpu_first) / intervals * 1e6


# -- filling sources and counting at targets -------------------------------------------------


def fill_amqp(address: str, count: int, size: int) -> None:
    with Agent(Settings(backend="amqp", agent_id=f"fill-{uuid.uuid4().hex[:6]}",
                        amqp={"url": AMQP_URL})) as agent:
        sender = agent.amqp.openconnection(AMQP_URL, lambda e, d: None).opensession() \
            .opensender(address)
        confirmed = [0]

        def done() -> None:
            confirmed[0] += 1

        for n in range(count):
            message = agent.amqp.createbinarymessage(numbered_body(n, size), {"seq": n})
            sender.createtransfer(message).sendasync(done)
        if not agent.run_until(lambda: confirmed[0] == count, 300):
            raise RuntimeError(f"filling {address}: {confirmed[0]} of {count} accepted")


def precreate_session(port: int, client_id: str, topic: str, receive_maximum: int) -> None:
    """A persistent session for the relay's client id, subscribed to *topic*: what is published
    next waits there for the relay."""
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_subscribe = lambda *args: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = receive_maximum
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    client.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("could not pre-create the relay's MQTT session")
    client.disconnect()
    client.loop_stop()


def fill_mqtt(port: int, topic: str, count: int, size: int) -> None:
    done = threading.Event()
    acked = [0]

    def on_publish(*args: Any) -> None:
        acked[0] += 1
        if acked[0] == count:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fill-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    for n in range(count):
        client.publish(topic, numbered_body(n, size), qos=1)
    ok = done.wait(300)
    client.disconnect()
    client.loop_stop()
    if not ok:
        raise RuntimeError(f"filling {topic}: {acked[0]} of {count} PUBACKs")


def mqtt_counter(port: int, topic: str, arrivals: Arrivals) -> paho.Client:
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"count-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv5)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda *args: arrivals.arrived()
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 1000
    client.connect("127.0.0.1", port, properties=props)
    client.loop_start()
    client.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise RuntimeError("the counting subscriber could not subscribe")
    return client


def amqp_counter(address: str, arrivals: Arrivals) -> tuple[Agent, threading.Thread]:
    agent = Agent(Settings(backend="amqp", agent_id=f"count-{uuid.uuid4().hex[:6]}",
                           amqp={"url": AMQP_URL, "prefetch": 1000}))

    def on_messages(deliveries: list[Any]) -> None:
        for delivery in deliveries:
            delivery.accept()
        arrivals.arrived(len(deliveries))

    receiver = agent.amqp.openconnection(AMQP_URL, lambda e, d: None).opensession() \
        .openreceiver(address, None, on_messages)
    if not agent.run_until(receiver.isopen, 15):
        raise RuntimeError(f"the counting consumer could not attach to {address}")
    def run() -> None:
        agent.run_until(arrivals.done.is_set, 600)
        receiver.close()  # held here until then: a dropped receiver closes

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return agent, thread


# -- the relay ---------------------------------------------------------------------------------


EXTRA_ENV: dict[str, str] = {}  # settings of the relay process (--set)


def profile_text(agent_id: str, source: str, target: str, mqtt_url: str, window: int) -> str:
    return f"""
agent_id = "{agent_id}"
log_level = "WARNING"

[relay]
window = {window}
status_interval = 0
drain_timeout = 10

[[relay.rules]]
source = "{source}"
target = "{target}"

[mqtt]
url = "{mqtt_url}"
clean_start = false
session_expiry = 600
"""


def bridge_command() -> list[str]:
    script = Path(sys.executable).with_name("bridge")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bridge"]


def run_relay_process(directory: Path, profile: str, arrivals: Arrivals) -> None:
    path = directory / f"relay-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(profile)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    environment["BRIDGE_AMQP__URL"] = AMQP_URL
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(EXTRA_ENV)
    process = subprocess.Popen([*bridge_command(), "--config", str(path), "relay"],
                               env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    arrivals.pid = process.pid
    try:
        arrivals.wait()
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
        if process.returncode != 0:
            print(errors, file=sys.stderr)


def run_relay_inprocess(profile: str, arrivals: Arrivals, directory: Path) -> None:
    """The relay on this process's threads, sampled: where each thread spends its time."""
    from bridge.migration.relay import Relay

    path = directory / f"relay-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(profile)
    relay = Relay(Settings(config=str(path), amqp={"url": AMQP_URL}))
    sampler = Sampler()
    relay.start()
    sampler.start()
    relay.agent.run_until(arrivals.done.is_set, 120)
    sampler.stop()
    print(relay.status_line())
    relay.drain()
    relay._drain()
    sampler.report()


class Sampler:
    """A sampling profiler: every millisecond, the innermost frames of every thread."""

    def __init__(self) -> None:
        self.samples: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        self.totals: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        names = {}
        while not self._stop.wait(0.001):
            for thread in threading.enumerate():
                names[thread.ident] = thread.name
            for ident, frame in sys._current_frames().items():
                if ident == self._thread.ident:
                    continue
                name = names.get(ident, str(ident))
                stack = traceback.extract_stack(frame)[-3:]
                key = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                 for f in reversed(stack))
                self.samples[name][key] += 1
                self.totals[name] += 1

    def report(self) -> None:
        for name, total in self.totals.most_common():
            print(f"\n-- thread {name}: {total} samples")
            for key, hits in self.samples[name].most_common(8):
                print(f"  {hits * 100 / total:5.1f}%  {key}")


# -- one measurement per direction -------------------------------------------------------------


def amqp_to_mqtt(broker: PrivateMosquitto, directory: Path, count: int, size: int,
                 window: int, inprocess: bool = False) -> tuple[float, float]:
    source = f"/queue/bench-relay-{uuid.uuid4().hex[:10]}"
    topic = f"bench/relay/{uuid.uuid4().hex[:10]}"
    fill_amqp(source, count, size)
    arrivals = Arrivals(count)
    counter = mqtt_counter(broker.port, topic, arrivals)
    profile = profile_text(f"bench-{uuid.uuid4().hex[:6]}", f"amqp:{source}", f"mqtt:/{topic}",
                           broker.url, window)
    try:
        if inprocess:
            run_relay_inprocess(profile, arrivals, directory)
        else:
            run_relay_process(directory, profile, arrivals)
    finally:
        counter.disconnect()
        counter.loop_stop()
    return arrivals.figures()


def mqtt_to_amqp(broker: PrivateMosquitto, directory: Path, count: int, size: int,
                 window: int, inprocess: bool = False) -> tuple[float, float]:
    topic = f"bench/relay/{uuid.uuid4().hex[:10]}"
    target = f"/queue/bench-relay-{uuid.uuid4().hex[:10]}"
    agent_id = f"bench-{uuid.uuid4().hex[:6]}"
    precreate_session(broker.port, f"{agent_id}-mqtt-source", topic,
                      Settings().mqtt.receive_maximum)
    fill_mqtt(broker.port, topic, count, size)
    arrivals = Arrivals(count)
    agent, thread = amqp_counter(target, arrivals)
    profile = profile_text(agent_id, f"mqtt:/{topic}", f"amqp:{target}", broker.url, window)
    try:
        if inprocess:
            run_relay_inprocess(profile, arrivals, directory)
        else:
            run_relay_process(directory, profile, arrivals)
    finally:
        thread.join(30)
        agent.close()
    return arrivals.figures()


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median rate and the median CPU of some runs."""
    return (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--profile", action="store_true",
                        help="run the relay in this process and print sampled stacks")
    parser.add_argument("--window", type=int, default=Settings().relay.window,
                        help="relay.window (default: the setting's default)")
    parser.add_argument("--directions", default="a2m,m2a")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each measurement, interleaved (medians are shown)")
    parser.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                        help="an environment setting of the relay process, e.g. "
                             "BRIDGE_AMQP__PREFETCH=500 (repeatable)")
    args = parser.parse_args()
    EXTRA_ENV.update(item.split("=", 1) for item in args.set)
    scale = 0.2 if args.quick else 1.0
    counts = {256: int(20_000 * scale), 16 * 1024: int(5_000 * scale)}
    wanted = set(args.directions.split(","))
    print(f"# bridge relay benchmark\n\n{os.cpu_count()} cores; relay.window {args.window}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp, PrivateMosquitto(Path(tmp) / "mqtt") as broker:
        directory = Path(tmp)
        for label, size in SIZES.items():
            count = counts[size]
            if args.profile:
                for name, key, measure in (("AMQP->MQTT", "a2m", amqp_to_mqtt),
                                           ("MQTT->AMQP", "m2a", mqtt_to_amqp)):
                    if key in wanted:
                        print(f"\n## profile {name} {label}")
                        measure(broker, directory, count, size, args.window, inprocess=True)
                continue
            # both one-hop baselines: the relay does one hop on each broker, so the slower
            # of the two bounds it (the baseline for a direction is its source's).
            # Repeated, interleaved, medians: on shared cores one run varies by +-30 %.
            runs: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
            for _ in range(args.repeat):
                rate, _, cpu = proton_throughput(count, size)
                runs["proton"].append((rate, cpu))
                rate, _, cpu = paho_throughput_stock(broker.port, count, size, 1)
                runs["paho"].append((rate, cpu))
                if "a2m" in wanted:
                    runs["a2m"].append(amqp_to_mqtt(broker, directory, count, size,
                                                    args.window))
                if "m2a" in wanted:
                    runs["m2a"].append(mqtt_to_amqp(broker, directory, count, size,
                                                    args.window))
            proton, proton_cpu = median_pair(runs["proton"])
            paho_rate, paho_cpu = median_pair(runs["paho"])
            for key, name, baseline_key in (("a2m", "AMQP -> MQTT", "proton"),
                                            ("m2a", "MQTT -> AMQP", "paho")):
                if key not in wanted:
                    continue
                rate, cpu = median_pair(runs[key])
                baseline = proton if baseline_key == "proton" else paho_rate
                ratios = [r / b for (r, _), (b, _) in zip(runs[key], runs[baseline_key],
                                                           strict=True)]
                rows.append([name, label, f"{count} x {args.repeat}", f"{rate:,.0f}",
                             f"{proton:,.0f}", f"{paho_rate:,.0f}", f"{rate / baseline:.2f}",
                             f"{min(ratios):.2f}-{max(ratios):.2f}",
                             f"{rate / min(proton, paho_rate):.2f}", f"{cpu:.0f}",
                             f"{proton_cpu:.0f} / {paho_cpu:.0f}"])
    if rows:
        print(table("Relay throughput (msg/s) vs the raw clients' one hop on each broker, "
                    "and CPU per message (µs)",
                    ["direction", "body", "messages", "relay", "raw proton (RabbitMQ)",
                     "raw paho (Mosquitto)", "relay/source's raw", "per run",
                     "relay/slower raw", "relay CPU", "raw CPU proton / paho"], rows))

if __name__ == "__main__":
    main()
