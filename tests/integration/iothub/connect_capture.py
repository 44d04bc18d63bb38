"""A TLS-terminating TCP proxy that records each client's MQTT CONNECT, then relays bytes.

The SDK only speaks TLS, and a broker log never shows the password, so to see the exact CONNECT
fields (client id, username, SAS password, keep-alive, clean-session) the test puts this proxy
between the client and a private broker: it presents a certificate for ``localhost``, reads the
first MQTT packet, records it, and forwards everything unchanged in both directions.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True)
class ConnectPacket:
    protocol_name: str
    protocol_level: int
    clean_session: bool
    keepalive: int
    client_id: str
    will_topic: str | None
    username: str | None
    password: str | None


def read_remaining_length(data: bytes, offset: int) -> tuple[int, int]:
    """MQTT's variable-length integer at *offset*: (value, offset after it)."""
    value, shift = 0, 0
    for index in range(offset, min(offset + 4, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise ValueError("incomplete or malformed remaining length")


def parse_connect(packet: bytes) -> ConnectPacket:
    """Decode an MQTT 3.1/3.1.1 CONNECT packet (fixed header included)."""
    if not packet or packet[0] != 0x10:
        raise ValueError(f"not a CONNECT packet (first byte {packet[:1].hex()})")
    length, pos = read_remaining_length(packet, 1)
    body = packet[pos:pos + length]
    if len(body) != length:
        raise ValueError("truncated CONNECT")
    cursor = 0

    def field() -> bytes:
        nonlocal cursor
        (size,) = struct.unpack_from("!H", body, cursor)
        value = body[cursor + 2:cursor + 2 + size]
        cursor += 2 + size
        return value

    protocol_name = field().decode()
    level, flags = body[cursor], body[cursor + 1]
    (keepalive,) = struct.unpack_from("!H", body, cursor + 2)
    cursor += 4
    client_id = field().decode()
    will_topic = None
    if flags & 0x04:
        will_topic = field().decode()
        field()  # will message
    username = field().decode() if flags & 0x80 else None
    password = field().decode() if flags & 0x40 else None
    return ConnectPacket(protocol_name, level, bool(flags & 0x02), keepalive, client_id,
                         will_topic, username, password)


def summarize(packet: bytes) -> tuple[str, object] | None:
    """("subscribe", [(filter, qos), ...]) or ("publish", (topic, qos)); None for the rest."""
    kind = packet[0] >> 4
    _, pos = read_remaining_length(packet, 1)
    body = packet[pos:]
    if kind == 3:  # PUBLISH
        (size,) = struct.unpack_from("!H", body, 0)
        return "publish", (body[2:2 + size].decode(), (packet[0] >> 1) & 0x03)
    if kind == 8:  # SUBSCRIBE: packet id, then (filter, requested qos) pairs
        cursor, filters = 2, []
        while cursor < len(body):
            (size,) = struct.unpack_from("!H", body, cursor)
            filters.append((body[cursor + 2:cursor + 2 + size].decode(), body[cursor + 2 + size]))
            cursor += 3 + size
        return "subscribe", filters
    return None


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(2)
    raw = bytearray(header)
    while raw[-1] & 0x80:  # remaining length continues
        raw += await reader.readexactly(1)
    length, _ = read_remaining_length(bytes(raw), 1)
    return bytes(raw) + await reader.readexactly(length)


class TlsCaptureProxy:
    """``127.0.0.1:<port>`` with TLS (cert/key for localhost) -> plain ``127.0.0.1:<upstream>``."""

    def __init__(self, certfile: Path, keyfile: Path, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connects: list[ConnectPacket] = []
        self.packets: list[tuple[str, object]] = []
        self.connected = threading.Condition()
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(certfile), str(keyfile))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    def start(self) -> TlsCaptureProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                  ssl=self._context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(_read_packet(client_reader), 10)
            packet = parse_connect(first)
        except (asyncio.IncompleteReadError, TimeoutError, ValueError, OSError):
            client_writer.close()
            return
        with self.connected:
            self.connects.append(packet)
            self.connected.notify_all()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        up_writer.write(first)
        await asyncio.gather(self._pump_packets(client_reader, up_writer),
                             self._pump(up_reader, client_writer))

    async def _pump_packets(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        """Client -> broker, packet by packet, recording SUBSCRIBEs and PUBLISHes."""
        try:
            while True:
                packet = await _read_packet(reader)
                summary = summarize(packet)
                if summary is not None:
                    with self.connected:
                        self.packets.append(summary)
                        self.connected.notify_all()
                writer.write(packet)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def wait_connect(self, count: int = 1, timeout: float = 20.0) -> ConnectPacket:
        """The *count*-th CONNECT seen (1-based), waiting up to *timeout* seconds."""
        with self.connected:
            if not self.connected.wait_for(lambda: len(self.connects) >= count, timeout):
                raise AssertionError(f"no CONNECT #{count} through the proxy in {timeout}s")
            return self.connects[count - 1]

    def wait_packet(self, kind: str, timeout: float = 20.0) -> object:
        """Details of the first recorded client packet of *kind* (``subscribe``/``publish``)."""
        def found() -> object | None:
            return next((details for k, details in self.packets if k == kind), None)

        with self.connected:
            if not self.connected.wait_for(lambda: found() is not None, timeout):
                raise AssertionError(f"no {kind.upper()} through the proxy in {timeout}s")
            return found()

    def stop(self) -> None:
        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            # Relays still running would be destroyed pending when the loop stops.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> TlsCaptureProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
