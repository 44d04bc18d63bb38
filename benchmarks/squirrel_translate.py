"""`bridge port`: translating a 1,200-line library (target: at most 1 s), and the translated
telemetry agent's send path per message beside the hand-ported Python example's (target: at
most 1.5x), measured side by side in the same run.

    python benchmarks/squirrel_translate.py              # 2,000 messages, best of 3
    python benchmarks/squirrel_translate.py --messages 5000 --runs 5

Translation: the library of benchmarks/squirrel_scan.py (tests/squirrel/corpus/parse/
AzureIoTHubLite.agent.lib.nut repeated with renamed classes to at least 1,200 lines), beside
the real Squirrel 3.0.5 compiler compiling the same text.

Send path: examples/telemetry_agent.py (hand-ported) and examples/telemetry_agent.nut
translated, each run on its own memory-backend agent with the cloud side off, a long interval
(so no timer fires) and no count limit; once the sender is open, the script's own send function
(``send_telemetry`` / ``sendTelemetry``: build the reading, JSON, message, transfer,
``sendasync``) is called N times and the agent dispatched until every send is confirmed. Per
message = that time / N. Logging is off in both (server.log would dominate both equally).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from squirrel_scan import library  # noqa: E402

from bridge.agent import Agent  # noqa: E402
from bridge.impenv import make_env  # noqa: E402
from bridge.settings import Settings  # noqa: E402
from bridge.squirrel.parser import parse  # noqa: E402
from bridge.squirrel.port import translate_file, translate_source  # noqa: E402
from bridge.squirrel.translate import translate_programs  # noqa: E402

TRANSLATE_TARGET = 1.0
SEND_TARGET = 1.5
SETTINGS = {"TELEMETRY_COUNT": "0", "EXAMPLE_CLOUD": "0", "TELEMETRY_INTERVAL": "3600"}


def best(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def translation_rows(runs: int) -> tuple[int, list[tuple[str, float]]]:
    source = library()
    lines = source.count("\n") + 1
    tree = parse(source, "lib.nut")
    rows = [
        ("bridge port: parse + translate (translate_source)",
         best(lambda: translate_source(source, "lib.nut"), runs)),
        ("  of which translate (tree -> Python)", best(lambda: translate_programs([tree]), runs)),
        ("  compile the generated Python (CPython)",
         best(lambda: compile(translate_source(source, "lib.nut").python, "lib.py", "exec"),
              runs)),
    ]
    try:
        import squirrel

        rows.append(("baseline: Squirrel 3.0.5 compiler (C++), same text",
                     best(lambda: squirrel.compile(source, "lib.nut"), runs)))
    except ImportError:
        rows.append(("baseline: squirrel-lang-sq305 not installed", float("nan")))
    return lines, rows


_RUNS = iter(range(1, 1 << 30))


def _device_id() -> str:
    # the memory broker is one per process: each run gets its own queues
    return f"bench-{next(_RUNS)}"


def _python_agent() -> tuple[Agent, dict[str, Any], Callable[[], None], Callable[[], int]]:
    os.environ.update(SETTINGS, DEVICE_ID=_device_id())
    agent = Agent(Settings(backend="memory"))
    path = ROOT / "examples" / "telemetry_agent.py"
    namespace: dict[str, Any] = {"__name__": "telemetry_py", "amqp": agent.amqp,
                                 "imp": agent.imp, "server": agent.server, "agent": agent}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    device = namespace["device"]
    namespace["state"] = device
    return agent, namespace, namespace["send_telemetry"], lambda: device["confirmed"]


class _JsonDumpsHttp:
    """``http`` with ``jsonencode`` = ``json.dumps``, the encoder the hand-ported example uses:
    the row with it shows the translation's own cost apart from impenv's (pure Python)
    imp-compatible encoder."""

    def __init__(self, http: Any) -> None:
        self._http = http

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)

    @staticmethod
    def jsonencode(value: Any, settings: Any = None) -> str:
        return json.dumps(value)


def _translated_agent(json_dumps: bool = False) -> tuple[Agent, dict[str, Any],
                                                          Callable[[], None], Callable[[], int]]:
    agent = Agent(Settings(backend="memory"),
                  configparams={**SETTINGS, "DEVICE_ID": _device_id()})
    env = make_env(agent)
    translation = translate_file(ROOT / "examples" / "telemetry_agent.nut")
    namespace: dict[str, Any] = {"__name__": "telemetry_nut", "amqp": agent.amqp,
                                 "imp": env.imp, "server": env.server,
                                 "http": _JsonDumpsHttp(env.http) if json_dumps else env.http,
                                 "crypto": env.crypto, "device": env.device, "agent": agent}
    exec(compile(translation.python, "telemetry_agent.nut.py", "exec"), namespace)
    # the .nut names its state table deviceAgent (imp's own `device` global is another thing)
    device = namespace["deviceAgent"] if "deviceAgent" in namespace else namespace["device"]
    namespace["state"] = device
    return agent, namespace, namespace["sendTelemetry"], lambda: device["confirmed"]


def per_message(make: Callable[[], tuple[Agent, dict[str, Any], Callable[[], None],
                                         Callable[[], int]]], messages: int) -> float:
    agent, namespace, send, confirmed = make()
    device = namespace["state"]

    def sender_open() -> bool:
        sender = device["sender"]
        return sender is not None and sender.isopen()

    try:
        if not agent.run_until(sender_open, 10):
            raise RuntimeError("the sender did not open")
        agent.run_until(lambda: confirmed() >= 1, 10)  # SENDER_OPEN sent one already
        base = confirmed()
        start = time.perf_counter()
        for _ in range(messages):
            send()
        if not agent.run_until(lambda: confirmed() >= base + messages, 60):
            raise RuntimeError(f"only {confirmed() - base} of {messages} confirmed")
        return (time.perf_counter() - start) / messages
    finally:
        agent.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)

    lines, rows = translation_rows(args.runs)
    print(f"translation: library of {lines} lines; best of {args.runs}")
    print(f"{'step':56} {'seconds':>9} {'lines/s':>10}")
    for name, seconds in rows:
        print(f"{name:56} {seconds:9.4f} {lines / seconds:10.0f}")
    port_seconds = rows[0][1]
    translate_ok = port_seconds <= TRANSLATE_TARGET
    print(f"target: translate <= {TRANSLATE_TARGET} s -> {port_seconds:.4f} s "
          f"{'OK' if translate_ok else 'OVER TARGET'}")

    python = min(per_message(_python_agent, args.messages) for _ in range(args.runs))
    translated = min(per_message(_translated_agent, args.messages) for _ in range(args.runs))
    dumps = min(per_message(lambda: _translated_agent(json_dumps=True), args.messages)
                for _ in range(args.runs))
    ratio = translated / python
    print()
    print(f"send path, memory backend: {args.messages} messages; best of {args.runs}")
    print(f"{'agent':56} {'us/message':>10} {'ratio':>7}")
    print(f"{'baseline: examples/telemetry_agent.py (hand-ported)':56} "
          f"{python * 1e6:10.1f} {1.0:7.2f}")
    print(f"{'examples/telemetry_agent.nut translated (bridge port)':56} "
          f"{translated * 1e6:10.1f} {ratio:7.2f}")
    print(f"{'  the same, http.jsonencode = json.dumps (as the .py)':56} "
          f"{dumps * 1e6:10.1f} {dumps / python:7.2f}")
    send_ok = ratio <= SEND_TARGET
    print(f"target: translated <= {SEND_TARGET}x hand-ported -> {ratio:.2f}x "
          f"{'OK' if send_ok else 'OVER TARGET'}")
    return 0 if translate_ok and send_ok else 1


if __name__ == "__main__":
    sys.exit(main())
