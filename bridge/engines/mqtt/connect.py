"""Opening an MQTT connection's socket without blocking a network loop.

paho's ``reconnect`` resolves, connects and does the TLS handshake in blocking calls; on a
loop that drives thousands of connections one slow broker would stall every other one. A
`Connector` does the same steps as loop callbacks: the name is resolved on a small shared
resolver pool (an IP literal needs none), the TCP connect completes when the socket becomes
writable (each resolved address in turn), and the TLS handshake advances as the socket becomes
readable or writable. The result - a connected (and handshaken) socket, or the exception paho
would have raised - goes to *done* on the loop thread; `cancel` abandons it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import os
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from bridge.loop.network import READ, WRITE, NetworkLoop

Done = Callable[[Any, BaseException | None], None]  # (socket or None, error or None)

_resolver: concurrent.futures.ThreadPoolExecutor | None = None
_resolver_lock = threading.Lock()


def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _resolver
    with _resolver_lock:
        if _resolver is None:
            _resolver = concurrent.futures.ThreadPoolExecutor(
                max_workers=2, thread_name_prefix="bridge-resolve")
        return _resolver


def numeric_addresses(host: str, port: int) -> list[Any] | None:
    """The addresses of an IP literal, or None if *host* is a name (that needs resolving)."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                  flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return None


class Connector:
    """One connect attempt: resolve, TCP, TLS; *done* is called exactly once unless cancelled."""

    def __init__(self, loop: NetworkLoop, host: str, port: int, *,
                 tls: ssl.SSLContext | None, server_hostname: str, done: Done,
                 on_socket: Callable[[socket.socket], None] | None = None) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.tls = tls
        self.server_hostname = server_hostname
        self._done = done
        self._on_socket = on_socket
        self._addresses: list[Any] = []
        self._sock: Any = None
        self._registered = False
        self._finished = False

    # -- loop thread ------------------------------------------------------------------------
    def start(self) -> None:
        addresses = numeric_addresses(self.host, self.port)
        if addresses is not None:
            self._addresses = addresses
            self._next_address(None)
            return
        future = _resolver_pool().submit(socket.getaddrinfo, self.host, self.port,
                                         type=socket.SOCK_STREAM)
        future.add_done_callback(lambda f: self.loop.call(self._resolved, f))

    def cancel(self) -> None:
        """Abandon the attempt (loop thread): its socket is closed, *done* never called."""
        self._finished = True
        self._close()

    def _resolved(self, future: concurrent.futures.Future[Any]) -> None:
        if self._finished:
            return
        try:
            self._addresses = list(future.result())
        except BaseException as exc:  # gaierror: the name does not resolve
            self._finish(None, exc)
            return
        self._next_address(None)

    def _next_address(self, previous: BaseException | None) -> None:
        self._close()
        if not self._addresses:
            self._finish(None, previous or OSError(errno.EHOSTUNREACH, "no address"))
            return
        family, kind, proto, _, address = self._addresses.pop(0)
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            self._next_address(exc)
            return
        sock.setblocking(False)
        self._sock = sock
        if self._on_socket is not None:
            self._on_socket(sock)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._next_address(OSError(code, os.strerror(code)))
            return
        self._wait(WRITE, self._on_tcp)

    def _on_tcp(self, mask: int) -> None:
        sock = self._sock
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._next_address(ConnectionRefusedError(code, os.strerror(code))
                               if code == errno.ECONNREFUSED else OSError(code, os.strerror(code)))
            return
        if self.tls is None:
            self._hand_over()
            return
        self._unwait()
        try:
            self._sock = self.tls.wrap_socket(sock, server_hostname=self.server_hostname,
                                              do_handshake_on_connect=False)
        except (ssl.SSLError, ValueError, OSError) as exc:
            self._finish(None, exc)
            return
        self._handshake(0)

    def _handshake(self, mask: int) -> None:
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(READ, self._handshake)
            return
        except ssl.SSLWantWriteError:
            self._wait(WRITE, self._handshake)
            return
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self._finish(None, exc)
            return
        self._hand_over()

    def _hand_over(self) -> None:
        self._unwait()
        sock, self._sock = self._sock, None
        self._finish(sock, None)

    # -- helpers ----------------------------------------------------------------------------
    def _wait(self, events: int, handler: Callable[[int], None]) -> None:
        if self._registered:
            self.loop.modify(self._sock, events, handler)
        else:
            self.loop.register(self._sock, events, handler)
            self._registered = True

    def _unwait(self) -> None:
        if self._registered:
            self.loop.unregister(self._sock)
            self._registered = False

    def _close(self) -> None:
        self._unwait()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _finish(self, sock: Any, error: BaseException | None) -> None:
        if self._finished:
            if sock is not None:
                sock.close()
            return
        self._finished = True
        if error is not None:
            self._close()
        self._done(sock, error)
