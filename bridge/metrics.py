"""A Prometheus text endpoint for the services (`bridge relay`, `bridge fleet`).

`serve_metrics` answers ``GET /metrics`` (and ``/``) with whatever *render* returns, on a
daemon thread; `gauge`/`counter` build the exposition lines of one metric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("bridge.metrics")


def metric(name: str, kind: str, help_text: str,
           samples: Iterable[tuple[dict[str, str], object]]) -> list[str]:
    """``# HELP``/``# TYPE`` lines and one sample line per (labels, value)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        if labels:
            rendered = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
            lines.append(f"{name}{{{rendered}}} {value}")
        else:
            lines.append(f"{name} {value}")
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def serve_metrics(render: Callable[[], str], host: str, port: int,
                  name: str = "bridge-metrics") -> ThreadingHTTPServer:
    """Serve *render()* as Prometheus text on http://HOST:PORT/metrics (0: any free port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") not in ("/metrics", ""):
                self.send_error(404)
                return
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("metrics: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server
