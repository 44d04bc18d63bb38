"""A TCP proxy on 127.0.0.1 that stalls traffic and cuts connections, on request or at seeded
random points.

Tests put it between an agent and a broker: it relays each accepted connection to a fixed
loopback port with one thread per direction, and misbehaves on request:

- `stall()` / `resume()`: stop forwarding in both directions (bytes wait in the kernel buffers
  and in the proxy), connections stay up - a congested or frozen network path (an AMQP peer's
  heartbeats stop arriving);
- `cut_all()`: drop every relayed connection now, without a protocol-level close;
- seeded cuts: each relayed connection gets a byte budget drawn from a seeded `random.Random`; once
  that many bytes went through it (both directions together) the proxy closes both sockets in
  the middle of whatever it was forwarding (an MQTT packet is usually split), as a network
  failure would. Only the first ``cuts`` connections get a budget, so a test always ends with
  a working path.

Only loopback is ever bound or dialled.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading

_LOOPBACK = "127.0.0.1"


class TcpProxy:
    def __init__(self, target_port: int, *, seed: int = 0, cuts: int = 0,
                 budget: tuple[int, int] = (2_000, 40_000), chunk: int = 4096) -> None:
        self.target = (_LOOPBACK, target_port)
        self.rng = random.Random(seed)
        self.cuts_left = cuts
        self.budget = budget
        self.chunk = chunk  # bytes read at a time: also how finely a seeded cut can fall
        self._listener = socket.create_server((_LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self.accepted = 0
        self.cut_points: list[int] = []  # the byte budget of each connection that was cut
        threading.Thread(target=self._accept_loop, name=f"chaos-proxy-{self.port}",
                         daemon=True).start()

    def url(self, scheme: str, userinfo: str | None = None) -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}{_LOOPBACK}:{self.port}"

    def live(self) -> int:
        """Relayed connections open now."""
        with self._lock:
            return len(self._sockets) // 2

    # -- control ---------------------------------------------------------------------------------
    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut_all(self) -> int:
        """Drop every relayed connection; returns how many there were."""
        with self._lock:
            victims = list(self._sockets)
        self._flowing.set()  # a stalled relay thread must see its sockets go
        for sock in victims:
            self._close(sock)
        return len(victims) // 2

    def close(self) -> None:
        with self._lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._flowing.set()
        self.cut_all()

    # -- relaying --------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
                self.accepted += 1
                budget = None
                if self.cuts_left > 0:
                    self.cuts_left -= 1
                    budget = self.rng.randint(*self.budget)
            left = [budget, budget]  # bytes both directions may still forward, of how many
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst, left),
                                 daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, left: list[int | None]) -> None:
        try:
            while True:
                data = src.recv(self.chunk)
                if not data:
                    break
                self._flowing.wait()
                with self._lock:
                    budget = left[0]
                    if budget == 0:  # the other direction made the cut
                        break
                    cut = budget is not None and len(data) >= budget
                    if budget is not None:
                        left[0] = 0 if cut else budget - len(data)
                    if cut:
                        self.cut_points.append(left[1])  # type: ignore[arg-type]
                if cut:
                    # cut in the middle of this chunk: part of it goes out, the rest never
                    dst.sendall(data[:budget])
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src)
            self._close(dst)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
