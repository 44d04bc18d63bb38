"""A socket for paho with user-space read and write buffers: fewer system calls per packet.

paho reads every packet in at least three ``recv`` calls (the command byte, the remaining
length one byte at a time, then the rest) and writes every packet with its own ``send``. On a
stream of small packets (a 4-byte PUBACK per message, a few hundred bytes per PUBLISH) those
system calls, and the one TCP segment per ``send`` that ``TCP_NODELAY`` makes of each, were the
largest single cost of the network thread (see docs/benchmarks.md).

`BufferedSocket` wraps whatever paho connected (TCP, TLS or paho's WebSocket wrapper):

- **reads** take up to 64 KiB at once and serve paho's small reads from that buffer;
  `pending` counts the buffered bytes, so the driver knows there is more to read even though
  ``select`` cannot see it (exactly as for TLS's own buffer);
- **writes** are accepted whole into a buffer and go out in one ``send`` when the driver calls
  `flush` (before it waits on the socket, so nothing waits longer than one loop turn). What the
  kernel does not take stays buffered, in order, until the socket is writable again.

A write error met by `flush` is kept and raised by paho's next ``recv``/``send`` on this socket,
so paho's own connection-lost handling runs, as if paho had met it itself.

Over WebSockets, writes are not coalesced (``coalesce_writes=False``): paho's wrapper makes one
WebSocket frame of each ``send``, and Mosquitto 2.0 (libwebsockets) given one frame holding a
burst of large publishes stalled its own sending mid-frame (measured: the last 10 of 200 messages
never delivered). Each packet keeps its own frame there; reads are still buffered.
"""

from __future__ import annotations

import contextlib
import select
import ssl
import time
from typing import Any

READ_CHUNK = 65536

# Not an error: the socket cannot take (or give) more right now.
_TRY_LATER = (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError)


class BufferedSocket:
    """Socket-like (what paho needs of one) with read-ahead and write-behind buffers."""

    __slots__ = ("_coalesce", "_error", "_inner", "_rbuf", "_rpos", "_socket", "_wbuf")

    def __init__(self, inner: Any, *, coalesce_writes: bool = True) -> None:
        self._inner = inner
        self._coalesce = coalesce_writes
        # The TCP socket underneath (paho's WebSocket wrapper keeps it as ``_socket``), for
        # socket options such as TCP_NODELAY.
        self._socket = getattr(inner, "_socket", inner)
        self._rbuf = b""
        self._rpos = 0
        self._wbuf = bytearray()
        self._error: OSError | None = None

    # -- what paho calls -------------------------------------------------------------------------
    def recv(self, size: int) -> bytes:
        if self._error is not None:
            raise self._error
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            # BlockingIOError, TLS want-read, OSError: raised to paho as from a plain socket;
            # b"" (the peer closed) is returned as is.
            buf = self._inner.recv(max(size, READ_CHUNK))
            if len(buf) <= size:
                self._rbuf, self._rpos = b"", 0
                return bytes(buf)
            pos = 0
        end = pos + size
        if end >= len(buf):
            self._rbuf, self._rpos = b"", 0
            return bytes(buf[pos:]) if pos else bytes(buf)
        self._rbuf, self._rpos = buf, end
        return bytes(buf[pos:end])

    def send(self, data: bytes | bytearray | memoryview) -> int:
        if self._error is not None:
            raise self._error
        if not self._coalesce:
            return int(self._inner.send(data))  # paho's own partial-write handling applies
        self._wbuf += data
        return len(data)

    def pending(self) -> int:
        """Bytes readable without waiting on the socket (ours plus TLS's or WebSocket's)."""
        buffered = len(self._rbuf) - self._rpos
        inner_pending = getattr(self._inner, "pending", None)
        if inner_pending is not None:
            with contextlib.suppress(OSError, ValueError):
                buffered += int(inner_pending())
        return buffered

    def fileno(self) -> int:
        return int(self._inner.fileno())

    def setblocking(self, flag: bool) -> None:
        self._inner.setblocking(flag)

    def close(self) -> None:
        """One last attempt to write what is buffered (a DISCONNECT, the last PUBACKs), then
        close. Never blocks: a peer that does not read loses the rest, as with a plain close."""
        try:
            self.flush()
        finally:
            self._inner.close()

    def __getattr__(self, name: str) -> Any:  # anything else paho or a hook may ask for
        return getattr(self._inner, name)

    # -- what the driver calls -------------------------------------------------------------------
    @property
    def unsent(self) -> int:
        """Bytes accepted from paho and not yet taken by the kernel."""
        return len(self._wbuf)

    @property
    def failed(self) -> bool:
        """A write failed: paho's next read or write on this socket raises the error."""
        return self._error is not None

    def flush(self) -> bool:
        """Write what is buffered without blocking; True when nothing is left."""
        wbuf = self._wbuf
        while wbuf and self._error is None:
            try:
                written = self._inner.send(wbuf)
            except _TRY_LATER:
                return False
            except OSError as exc:
                self._error = exc
                wbuf.clear()
                return False
            del wbuf[:written]  # CPython trims a bytearray's head without copying the rest
        return not wbuf

    def flush_within(self, seconds: float) -> bool:
        """`flush`, waiting up to *seconds* for the socket to take it all (closing cleanly)."""
        deadline = time.monotonic() + seconds
        while not self.flush() and self._error is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([], [self], [], remaining)
        return self._error is None
