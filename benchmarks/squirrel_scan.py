"""`bridge scan` on a 1,200-line agent library (target: at most 0.5 s), beside the real
Squirrel 3.0.5 compiler (squirrel-lang-sq305) compiling the same text in the same run.

    python benchmarks/squirrel_scan.py            # best of 5
    python benchmarks/squirrel_scan.py --runs 20

The library is tests/squirrel/corpus/parse/AzureIoTHubLite.agent.lib.nut (a condensed
AzureIoTHub-style AMQP client) repeated with renamed classes until it has at least 1,200 lines:
the same mix of classes, closures, switch statements and AMQP calls as the real library.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.squirrel.lexer import lex  # noqa: E402
from bridge.squirrel.parser import parse  # noqa: E402
from bridge.squirrel.scan import scan_source  # noqa: E402

LIBRARY = ROOT / "tests" / "squirrel" / "corpus" / "parse" / "AzureIoTHubLite.agent.lib.nut"
TARGET_SECONDS = 0.5


def library(min_lines: int = 1200) -> str:
    base = LIBRARY.read_text(encoding="utf-8")
    copies = [base]
    while sum(c.count("\n") for c in copies) < min_lines:
        n = len(copies)
        copies.append(base.replace("AzureIoTHub", f"AzureIoTHub{n}")
                      .replace("AzureState", f"AzureState{n}")
                      .replace("AZURE_", f"AZURE{n}_"))
    return "\n".join(copies)


def best(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    source = library()
    lines = source.count("\n") + 1
    rows: list[tuple[str, float]] = [
        ("lex", best(lambda: lex(source, "lib.nut"), args.runs)),
        ("parse (lex + parse)", best(lambda: parse(source, "lib.nut"), args.runs)),
        ("bridge scan --backend mqtt (parse + inventory)",
         best(lambda: scan_source(source, "lib.nut", "mqtt"), args.runs)),
        ("bridge scan --backend iothub (parse + inventory)",
         best(lambda: scan_source(source, "lib.nut", "iothub"), args.runs)),
    ]
    try:
        import squirrel

        rows.append(("baseline: Squirrel 3.0.5 compiler (C++), same text",
                     best(lambda: squirrel.compile(source, "lib.nut"), args.runs)))
    except ImportError:
        rows.append(("baseline: squirrel-lang-sq305 not installed", float("nan")))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lib.nut"
        path.write_text(source, encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        def command(*argv: str) -> Callable[[], object]:
            return lambda: subprocess.run([sys.executable, "-m", "bridge", *argv], env=env,
                                          check=True, stdout=subprocess.DEVNULL)

        rows.append(("process: bridge scan lib.nut --backend iothub (wall)",
                     best(command("scan", str(path), "--backend", "iothub"), args.runs)))
        rows.append(("baseline: process: bridge --help (wall)",
                     best(command("--help"), args.runs)))
    sites = len(scan_source(source, "lib.nut", "iothub").amqp)
    print(f"library: {lines} lines, {len(source)} chars, {sites} AMQP call sites; "
          f"best of {args.runs}")
    print(f"{'step':52} {'seconds':>9} {'lines/s':>10}")
    for name, seconds in rows:
        print(f"{name:52} {seconds:9.4f} {lines / seconds:10.0f}")
    scan_seconds = max(seconds for name, seconds in rows if name.startswith("bridge scan"))
    verdict = "OK" if scan_seconds <= TARGET_SECONDS else "OVER TARGET"
    print(f"target: scan <= {TARGET_SECONDS} s -> {scan_seconds:.4f} s {verdict}")
    return 0 if scan_seconds <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
