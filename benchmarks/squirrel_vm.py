"""The embedded Squirrel VM (``bridge run agent.nut``): memory per agent and the send path,
each beside the hand-ported Python agent measured in the same run.

    python benchmarks/squirrel_vm.py                   # 1,000 agents, 5,000 messages
    python benchmarks/squirrel_vm.py --agents 200 --messages 5000

Rows (docs/benchmarks.md records a run):

- ``memory``: RSS growth per agent over N agents on the memory backend, each with the telemetry
  agent loaded and its connection opened: examples/telemetry_agent.nut on its own VM, then
  examples/telemetry_agent.py (its Python port) in its own namespace; a bare VM alone too;
- ``send``: µs per message of the telemetry agent's send path (reading -> JSON ->
  createbinarymessage with three properties -> createtransfer -> sendasync -> the confirmation
  callback, which logs) on the memory backend: the Squirrel agent on the VM and the same agent
  hand-ported to Python, best of three rounds each, and the ratio (target <= 1.5).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
import types
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.agent import Agent  # noqa: E402
from bridge.impenv import make_env  # noqa: E402
from bridge.settings import Settings  # noqa: E402
from bridge.squirrel.vm.engine import SquirrelVM, read_sources  # noqa: E402

SEND_NUT = """
confirmed <- 0;
N <- imp.configparams.N.tointeger();
sender <- null;
function onConfirmed() {
    confirmed++;
    server.log("telemetry confirmed");
    if (confirmed == N) agent.stop();
}
function sendTelemetry(n) {
    if (!(sender && sender.isopen())) return;
    local reading = {device = "bench", seq = n, temperature = 20.0 + n / 10.0};
    local message = amqp.createbinarymessage(http.jsonencode(reading),
                                             {seq = n, unit = "celsius", alert = n % 5 == 0});
    sender.createtransfer(message).sendasync(onConfirmed);
}
function burst() { for (local n = 1; n <= N; n++) sendTelemetry(n); }
"""

SEND_PY = """
import json
state = {"confirmed": 0, "sender": None}
def on_confirmed():
    state["confirmed"] += 1
    server.log("telemetry confirmed")
    if state["confirmed"] == N:
        agent.stop()
def send_telemetry(n):
    sender = state["sender"]
    if not (sender and sender.isopen()):
        return
    reading = {"device": "bench", "seq": n, "temperature": 20.0 + n / 10}
    message = amqp.createbinarymessage(json.dumps(reading),
                                       {"seq": n, "unit": "celsius", "alert": n % 5 == 0})
    sender.createtransfer(message).sendasync(on_confirmed)
def burst():
    for n in range(1, N + 1):
        send_telemetry(n)
"""


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def settings(name: str) -> Settings:
    return Settings(backend="memory", agent_id=name)


def open_sender(agent: Agent) -> Any:
    """A sender on the memory backend, open (its events dispatched)."""
    done: dict[str, Any] = {}
    conn = agent.amqp.openconnection("amqps://bench.example", lambda e, d: None)
    agent.run_until(conn.isopen, 5)
    session = conn.opensession()
    agent.run_until(session.isopen, 5)
    # a queue of its own: nobody consumes, and a full queue would stop confirming
    done["sender"] = session.opensender(f"/queue/bench-{uuid.uuid4().hex}")
    agent.run_until(done["sender"].isopen, 5)
    done["keep"] = (conn, session)
    return done


def send_round_vm(messages: int) -> float:
    agent = Agent(settings("bench-vm"), configparams={"N": str(messages)})
    vm = SquirrelVM(agent, make_env(agent))
    vm.load([("bench.nut", SEND_NUT)])
    opened = open_sender(agent)
    root = vm._vm.get_roottable()
    wrap = vm._vm.execute("return function(h) { ::sender = AmqpSender(h); }")
    vm.call(wrap, opened["sender"])
    burst = root["burst"]
    started = time.perf_counter()
    vm.call(burst)
    agent.run(60)
    elapsed = time.perf_counter() - started
    confirmed = root["confirmed"]
    agent.close()
    vm.release()
    assert confirmed == messages, f"VM round confirmed {confirmed} of {messages}"
    return elapsed / messages * 1e6


def send_round_py(messages: int) -> float:
    agent = Agent(settings("bench-py"))
    namespace: dict[str, Any] = {"amqp": agent.amqp, "imp": agent.imp, "server": agent.server,
                                 "agent": agent, "N": messages}
    exec(compile(SEND_PY, "bench.py", "exec"), namespace)
    opened = open_sender(agent)
    namespace["state"]["sender"] = opened["sender"]
    started = time.perf_counter()
    namespace["burst"]()
    agent.run(60)
    elapsed = time.perf_counter() - started
    confirmed = namespace["state"]["confirmed"]
    agent.close()
    assert confirmed == messages, f"Python round confirmed {confirmed} of {messages}"
    return elapsed / messages * 1e6


def memory_row(agents: int) -> None:
    nut = read_sources([ROOT / "examples" / "telemetry_agent.nut"])
    py_code = compile((ROOT / "examples" / "telemetry_agent.py").read_text(),
                      "telemetry_agent.py", "exec")
    import squirrel
    gc.collect()
    before = rss_kib()
    bare = [squirrel.SQVM() for _ in range(agents)]
    bare_kib = (rss_kib() - before) / agents
    del bare
    gc.collect()

    kept: list[Any] = []
    before = rss_kib()
    for i in range(agents):
        agent = Agent(settings(f"vm-{i}"), configparams={"DEVICE_ID": f"d{i}",
                                                         "EXAMPLE_CLOUD": "0"})
        vm = SquirrelVM(agent, make_env(agent))
        vm.load(nut)
        kept.append((agent, vm))
    vm_kib = (rss_kib() - before) / agents
    before = rss_kib()
    for i in range(agents):
        agent = Agent(settings(f"py-{i}"))
        os.environ["DEVICE_ID"], os.environ["EXAMPLE_CLOUD"] = f"d{i}", "0"
        module = types.ModuleType("__main__")
        module.__dict__.update({"amqp": agent.amqp, "imp": agent.imp,
                                "server": agent.server, "agent": agent})
        exec(py_code, module.__dict__)
        kept.append((agent, module))
    py_kib = (rss_kib() - before) / agents
    print(f"memory ({agents} agents, telemetry agent loaded, connection opened)")
    print("| agent | RSS per agent (KiB) |")
    print("|---|---|")
    print(f"| telemetry_agent.nut on its own VM | {vm_kib:.1f} |")
    print(f"| telemetry_agent.py (hand-ported) | {py_kib:.1f} |")
    print(f"| a bare VM (squirrel.SQVM()) | {bare_kib:.1f} |")
    for agent, _ in kept:
        agent.begin_close()


def send_row(messages: int) -> None:
    vm = min(send_round_vm(messages) for _ in range(3))
    py = min(send_round_py(messages) for _ in range(3))
    print(f"send path, memory backend ({messages} messages, best of 3)")
    print("| agent | µs per message | ratio |")
    print("|---|---|---|")
    print(f"| Squirrel agent on the VM | {vm:.1f} | {vm / py:.2f} |")
    print(f"| hand-ported Python agent | {py:.1f} | 1.00 |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=5000,
                        help="per round (at most 10,000: an unread memory queue holds that many)")
    parser.add_argument("--rows", default="send,memory")
    args = parser.parse_args()
    logging.getLogger("bridge.agent").setLevel(logging.WARNING)  # both sides: log calls, no I/O
    rows = args.rows.split(",")
    if "send" in rows:
        send_row(args.messages)
    if "memory" in rows:
        memory_row(args.agents)


if __name__ == "__main__":
    main()
