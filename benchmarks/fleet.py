"""Fleet benchmarks: thousands of agents in one process, beside the clients users run today.

    python benchmarks/fleet.py                 # every row at full size (several minutes)
    python benchmarks/fleet.py --agents 2000   # smaller
    python benchmarks/fleet.py --rows mqtt,load

Rows (docs/benchmarks.md records a run):

- ``mqtt``: N MQTT agents (one connection each) against a private Mosquitto: time until all are
  connected, RSS growth per agent, threads, CPU of the idle fleet;
- ``iothub``: N IoT Hub agents over TLS with SAS (connection strings, self-signed tokens)
  against a private TLS Mosquitto, connects paced at ``--iothub-rate`` per second;
- ``amqp``: N/5 AMQP agents against a private RabbitMQ node; ``amqp-mux``: the same with
  ``amqp.multiplex = 500`` (physical connections counted by the broker);
- ``load``: N MQTT agents each sending a 256 B QoS 1 message every 10 s for 60 s: confirmed,
  p50/p99 send -> confirm;
- ``throughput``: one agent flat out, then 1,000 agents flat out, in the same run (confirmed
  sends per second; the ratio is the fleet's);
- ``restart``: N connected MQTT agents (reconnect auto), the broker restarted (SIGTERM, start):
  time until all are back, and a send made by every agent while it was down must arrive at a
  raw subscriber (persistent session), nothing confirmed or queued lost;
- ``raw``: raw paho clients, one ``loop_start`` each (the usual pattern), added until one fails
  or 2,000: how many one process holds, RSS and threads per client (``fleet_baselines.py``);
- ``sdk``: azure-iot-device clients in their own venv (``.sdk-venv``), same measurement.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from bridge import Agent, Settings  # noqa: E402
from bridge.loop.heap import freeze_heap  # noqa: E402
from bridge.loop.pacing import connect_pacer  # noqa: E402
from bridge.testing.fleet import HUB, TLSMosquitto, bridge_threads  # noqa: E402
from bridge.testing.fleet import AgentFleet as Fleet  # noqa: E402
from bridge.testing.mosquitto import PrivateMosquitto  # noqa: E402
from bridge.testing.rabbitmq import RabbitNode  # noqa: E402


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
    return 0


def tcp_connections_to(port: int) -> int:
    """Established TCP connections of this machine to 127.0.0.1:*port* (/proc/net/tcp)."""
    remote = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[2] == remote and line.split()[3] == "01")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@contextmanager
def mosquitto(tls: bool = False, persistence: bool = False) -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as directory:
        kind = TLSMosquitto if tls else PrivateMosquitto
        broker = kind(Path(directory), persistence=persistence,
                      extra=["max_connections -1", "max_inflight_messages 0"])
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


def row(name: str, **figures: Any) -> None:
    shown = "  ".join(f"{k}={v}" for k, v in figures.items())
    print(f"{name:<28} {shown}", flush=True)


def measure_fleet(name: str, make: Callable[[], Fleet], timeout: float) -> Fleet:
    gc.collect()
    before = rss()
    fleet = make()
    took = fleet.wait_open(timeout)
    gc.collect()
    grown = rss() - before
    cpu = cpu_seconds()
    time.sleep(5)  # the idle fleet (keep-alives only)
    idle = (cpu_seconds() - cpu) / 5 * 100
    count = len(fleet.agents)
    row(name, agents=count, connected_in=f"{took:.1f}s",
        rss_per_agent=f"{grown / count / 1024:.1f}KB", threads=bridge_threads(),
        idle_cpu=f"{idle:.1f}%", errors=len(fleet.errors))
    return fleet


def bench_mqtt(count: int) -> None:
    with mosquitto() as broker:
        base = Settings(backend="mqtt", mqtt={"url": broker.url})
        fleet = measure_fleet("mqtt agents", lambda: Fleet(
            lambda n: base.model_copy(update={"agent_id": f"m{n}"}), count,
            "amqps://fleet.example"), 120)
        fleet.close()


def bench_iothub(count: int, rate: float) -> None:
    with mosquitto(tls=True) as broker:
        key = base64.b64encode(os.urandom(32)).decode()
        base = Settings(backend="iothub", iothub={"gateway_host": "localhost",
                                                  "port": broker.tls_port,
                                                  "ca_file": str(broker.tls.ca_file)})
        connect_pacer().configure(rate)

        def settings(n: int) -> Settings:
            text = f"HostName={HUB};DeviceId=d{n};SharedAccessKey={key}"
            return base.model_copy(update={"agent_id": f"d{n}", "iothub": base.iothub.model_copy(
                update={"connection_string": SecretStr(text)})})

        try:
            fleet = measure_fleet(f"iothub agents (TLS, {rate:g}/s)",
                                  lambda: Fleet(settings, count, f"amqps://{HUB}"),
                                  count / rate + 120)
        finally:
            connect_pacer().configure(None)
        fleet.close()


def bench_amqp(count: int, multiplex: int = 0) -> None:
    with tempfile.TemporaryDirectory() as directory:
        node = RabbitNode(Path(directory)).start()
        try:
            base = Settings(backend="amqp", amqp={"url": node.url, "multiplex": multiplex})
            name = f"amqp multiplex {multiplex}" if multiplex else "amqp agents (RabbitMQ)"
            fleet = measure_fleet(name, lambda: Fleet(
                lambda n: base.model_copy(update={"agent_id": f"a{n}"}), count,
                "amqp://fleet.example"), 120)
            fleet.open_senders(lambda n: f"/topic/fleet.{n}")
            physical = tcp_connections_to(node.port)
            row(f"  {name}: senders", agents=count, physical_connections=physical)
            fleet.close()
        finally:
            node.stop()


def bench_load(count: int, period: float = 10.0, duration: float = 60.0) -> None:
    with mosquitto() as broker:
        base = Settings(backend="mqtt", mqtt={"url": broker.url})
        fleet = Fleet(lambda n: base.model_copy(update={"agent_id": f"l{n}"}), count,
                      "amqps://fleet.example")
        fleet.wait_open(120)
        fleet.open_senders(lambda n: f"/load/{n}")
        frozen = freeze_heap()  # what `bridge fleet` does once its agents are up
        latencies: list[float] = []
        lateness: list[float] = []
        lock = threading.Lock()
        sent = [0]
        body = b"x" * 256
        begins = time.monotonic() + 1.0
        ends = begins + duration

        def tick(agent: Agent, sender: Any, due: float) -> None:
            started = time.monotonic()
            if started >= ends:
                return
            sent[0] += 1

            def confirmed() -> None:
                with lock:
                    latencies.append(time.monotonic() - started)

            sender.createtransfer(agent.amqp.createbinarymessage(body)).sendasync(confirmed)
            with lock:
                lateness.append(started - due)
            # The next tick is due a period after this one was *due*, not after it ran: a late
            # tick (start-up, a collection) does not shift every later one into a bunch.
            then = due + period
            agent.imp.wakeup(max(0.0, then - time.monotonic()),
                             lambda: tick(agent, sender, then))

        for n, (agent, sender) in enumerate(zip(fleet.agents, fleet.senders, strict=True)):
            due = begins + period * n / count  # spread evenly over the period
            agent.call_soon(lambda a=agent, s=sender, d=due: a.imp.wakeup(
                max(0.0, d - time.monotonic()), lambda: tick(a, s, d)))
        time.sleep(ends - time.monotonic() + 5)
        with lock:
            done = sorted(latencies)
            late = sorted(lateness)
        row("load 256B every 10s", agents=count, sent=sent[0], confirmed=len(done),
            p50=f"{_quantile(done, 0.5):.1f}ms", p99=f"{_quantile(done, 0.99):.1f}ms",
            timer_late_p99=f"{_quantile(late, 0.99):.1f}ms", freeze=f"{frozen * 1000:.0f}ms",
            threads=bridge_threads())
        fleet.close()


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of *ordered* seconds, in milliseconds."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered \
        else float("nan")


def _flat_out(fleet: Fleet, per_agent: int) -> float:
    """Every agent sends *per_agent* messages as fast as its window allows; confirmed/s."""
    remaining = threading.Semaphore(0)
    body = b"y" * 256
    started = time.monotonic()
    for agent, sender in zip(fleet.agents, fleet.senders, strict=True):
        def burst(agent: Agent = agent, sender: Any = sender) -> None:
            for _ in range(per_agent):
                sender.createtransfer(agent.amqp.createbinarymessage(body)).sendasync(
                    remaining.release)
        agent.call_soon(burst)
    for _ in range(per_agent * len(fleet.agents)):
        remaining.acquire(timeout=120)
    return per_agent * len(fleet.agents) / (time.monotonic() - started)


def bench_throughput(total: int = 50_000, many: int = 1000) -> None:
    with mosquitto() as broker:
        base = Settings(backend="mqtt", mqtt={"url": broker.url})
        rates: dict[int, float] = {}
        for count in (1, many):
            fleet = Fleet(lambda n, c=count: base.model_copy(update={"agent_id": f"t{c}-{n}"}),
                          count, "amqps://fleet.example")
            fleet.wait_open(120)
            fleet.open_senders(lambda n: f"/flat/{n}")
            rates[count] = _flat_out(fleet, total // count)
            fleet.close()
        row("throughput flat out", one_agent=f"{rates[1]:.0f}/s",
            fleet=f"{rates[many]:.0f}/s ({many} agents)", ratio=f"{rates[many] / rates[1]:.2f}")


def bench_restart(count: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    with mosquitto(persistence=True) as broker:
        received: set[str] = set()
        lock = threading.Lock()
        subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id="restart-watch",
                                 clean_session=False, protocol=paho.MQTTv311)

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with lock:
                received.add(msg.payload.decode())

        subscriber.on_message = on_message
        subscriber.connect("127.0.0.1", broker.port)
        subscriber.subscribe("restart/#", qos=1)
        subscriber.loop_start()
        base = Settings(backend="mqtt", mqtt={"url": broker.url, "reconnect": "auto",
                                              "reconnect_max_delay": 5})
        fleet = Fleet(lambda n: base.model_copy(update={"agent_id": f"r{n}"}), count,
                      "amqps://fleet.example")
        fleet.wait_open(120)
        fleet.open_senders(lambda n: f"/restart/{n}")
        confirmed: set[str] = set()

        def send_all(tag: str) -> None:
            for n, (agent, sender) in enumerate(zip(fleet.agents, fleet.senders, strict=True)):
                body = f"{tag}-{n}"
                agent.call_soon(lambda a=agent, s=sender, b=body: s.createtransfer(
                    a.amqp.createmessage(b)).sendasync(lambda b=b: _add(confirmed, lock, b)))

        send_all("before")
        broker.stop()
        down = time.monotonic()
        send_all("during")  # held by every agent until its connection is back
        broker.start()
        statuses: list[str] = []
        while time.monotonic() - down < 120:
            statuses = [agent.status() for agent in fleet.agents]
            if all(s == "connected" for s in statuses) and len(confirmed) >= 2 * count:
                break
            time.sleep(0.5)
        back = time.monotonic() - down
        time.sleep(2)
        with lock:
            lost = sorted(confirmed - received)
        row("broker restart", agents=count, all_back_in=f"{back:.1f}s",
            connected=statuses.count("connected"), confirmed=len(confirmed),
            confirmed_lost=len(lost), errors=len(fleet.errors))
        subscriber.loop_stop()
        fleet.close()


def _add(into: set[str], lock: threading.Lock, value: str) -> None:
    with lock:
        into.add(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--rows",
                        default="mqtt,iothub,amqp,amqp-mux,load,throughput,restart,raw,sdk")
    parser.add_argument("--iothub-rate", type=float, default=250.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = set(args.rows.split(","))
    cores = len(os.sched_getaffinity(0))
    print(f"# fleet benchmarks: {cores} cores, open-files limit {hard}, "
          f"python {sys.version.split()[0]} ({uuid.uuid4().hex[:6]})", flush=True)
    count = args.agents
    if "mqtt" in rows:
        bench_mqtt(count)
    if "iothub" in rows:
        bench_iothub(count, args.iothub_rate)
    if "amqp" in rows:
        bench_amqp(max(1, count // 5))
    if "amqp-mux" in rows:
        bench_amqp(max(1, count // 5), multiplex=500)
    if "load" in rows:
        bench_load(count)
    if "throughput" in rows:
        bench_throughput(many=min(1000, count))
    if "restart" in rows:
        bench_restart(count)
    if "raw" in rows or "sdk" in rows:
        from benchmarks.fleet_baselines import bench_raw_paho, bench_sdk

        if "raw" in rows:
            bench_raw_paho(min(2000, count))
        if "sdk" in rows:
            bench_sdk(min(2000, count))
    print(f"# thread limit for the bridge's rows: 2 x cores + 8 = {2 * cores + 8}", flush=True)


if __name__ == "__main__":
    main()
