"""The AMQP surface's front: TLS and the SASL layer, then a byte splice to the proton listener.

Why a front: proton's built-in SASL (the python-qpid-proton wheel has no Cyrus, see
``proton.SASL.extended()``) can only *serve* ANONYMOUS and EXTERNAL, and Cyrus could check a
password database but never an HMAC. IoT Hub's SASL PLAIN password is a SAS token, so the SASL
exchange (spec AMQP 1.0 §5.3: protocol header ``AMQP 3 1 0 0``, sasl-mechanisms, sasl-init,
sasl-outcome) is answered here, with proton's own `Data` codec, and only the AMQP layer that
follows reaches proton. The identity established here travels to the proton side keyed by the
splice's local port (proton records each accepted connection's peer address in
``Connection.url``).

Accepted:

- SASL ANONYMOUS (what every IoT Hub device SDK and the legacy library use): the connection is
  unauthenticated; devices authorise their links with CBS put-token on ``$cbs``;
- SASL PLAIN with user ``{deviceId}@sas.{hub}`` and a device SAS token as password (the
  connection is authorised for that device until the token's ``se``), or user
  ``{policy}@sas.root.{hub}`` and a token signed with that shared access policy's key
  (``skn={policy}``, ``sr`` covering ``{host}/devices``: every device). ``{hub}`` is the first
  label of the host name or the whole host name. When the token expires the connection is closed
  with ``amqp:unauthorized-access`` (IoT Hub drops it, spec §1.2);
- no SASL layer at all (a bare ``AMQP 0 1 0 0`` header): treated like ANONYMOUS.

A refused PLAIN login gets sasl-outcome ``auth`` (code 1) and the socket is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import struct
import threading
from dataclasses import dataclass
from typing import Any

from proton import UNDESCRIBED, Array, Data, Described, symbol, ubyte, ulong

from bridge.backends.iothub import sas
from bridge.testing.hub.registry import AuthError, Grant, Registry, Surface

log = logging.getLogger("bridge.testing.hub.amqp")

SASL_HEADER = b"AMQP\x03\x01\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
HANDSHAKE_TIMEOUT = 10.0
MAX_SASL_FRAME = 65536
MECHANISMS = ("ANONYMOUS", "PLAIN")
_SASL_MECHANISMS, _SASL_INIT, _SASL_OUTCOME = 0x40, 0x41, 0x44
OUTCOME_OK, OUTCOME_AUTH = 0, 1


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What the SASL layer established for one connection."""

    mechanism: str  # "ANONYMOUS", "PLAIN" or "NONE" (no SASL layer)
    user: str | None = None
    grant: Grant | None = None  # PLAIN only


class Identities:
    """Local port of a splice -> the identity of the client behind it (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_port: dict[int, PeerIdentity] = {}

    def put(self, port: int, identity: PeerIdentity) -> None:
        with self._lock:
            self._by_port[port] = identity

    def take(self, port: int | None) -> PeerIdentity | None:
        with self._lock:
            return self._by_port.pop(port, None) if port is not None else None

    def discard(self, port: int) -> None:
        with self._lock:
            self._by_port.pop(port, None)


class SaslRefused(Exception):
    pass


def sasl_frame(descriptor: int, fields: list[Any]) -> bytes:
    data = Data()
    data.put_object(Described(ulong(descriptor), fields))
    body = bytes(data.encode())
    return struct.pack("!IBBH", 8 + len(body), 2, 1, 0) + body


async def read_sasl_frame(reader: asyncio.StreamReader) -> tuple[int, list[Any]]:
    """(descriptor code, fields) of the next SASL frame."""
    header = await reader.readexactly(8)
    size, doff, frame_type, _ = struct.unpack("!IBBH", header)
    if frame_type != 1 or doff < 2 or not doff * 4 <= size <= MAX_SASL_FRAME:
        raise SaslRefused("not a SASL frame")
    await reader.readexactly(doff * 4 - 8)  # extended header: unused by SASL
    body = await reader.readexactly(size - doff * 4)
    data = Data()
    data.decode(body)
    data.rewind()
    data.next()
    value = data.get_object()
    if not isinstance(value, Described) or not isinstance(value.value, list):
        raise SaslRefused("SASL frame body is not a described list")
    # proton hands binaries out as memoryviews into the Data object's buffer: copy them
    # before `data` is freed.
    return int(value.descriptor), [bytes(f) if isinstance(f, memoryview) else f  # type: ignore[arg-type]
                                   for f in value.value]


class AMQPFront:
    """Listener on 127.0.0.1 (TLS unless *context* is None) in front of proton's port."""

    def __init__(self, registry: Registry, context: ssl.SSLContext | None, proton_port: int,
                 identities: Identities) -> None:
        self.registry = registry
        self.context = context
        self.proton_port = proton_port
        self.identities = identities
        self.port = 0
        #: open streams (the `FrontLoop` aborts them on stop); set by the owner
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> asyncio.base_events.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", port, ssl=self.context,
                                            ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        self.port = server.sockets[0].getsockname()[1]
        return server

    # -- SASL ----------------------------------------------------------------------------------
    def check_plain(self, response: bytes) -> PeerIdentity:
        """Verify a PLAIN initial response; `SaslRefused` (reason safe to log) if refused."""
        parts = response.split(b"\x00")
        if len(parts) != 3:
            raise SaslRefused("PLAIN response is not authzid NUL authcid NUL password")
        try:
            authzid, user, password = (p.decode("utf-8") for p in parts)
        except UnicodeDecodeError:
            raise SaslRefused("PLAIN response is not UTF-8") from None
        if authzid and authzid != user:
            raise SaslRefused("an authorization id other than the user is not supported")
        name, sep, realm = user.partition("@sas.")
        if not sep or not name:
            raise SaslRefused(f"user {user[:80]!r} is not {{deviceId}}@sas.{{hub}} or "
                              "{policy}@sas.root.{hub}")
        root = realm.startswith("root.")
        hub = realm[len("root."):] if root else realm
        host = self.registry.host_name
        if hub.lower() not in (host.lower(), host.split(".")[0].lower()):
            raise SaslRefused(f"user {user[:80]!r} is for hub {hub!r}, this is {host!r}")
        if root:
            audience = f"{host}/devices"
            try:
                token_skn = sas.parse_token(password).key_name
            except sas.SASTokenError as exc:
                self.registry.record_auth(Surface.AMQP, None, False, "malformed", exc.reason)
                raise SaslRefused(f"SAS token refused: {exc.reason}") from None
            if token_skn != name:
                self.registry.record_auth(Surface.AMQP, None, False, "key-name",
                                          "token skn does not name the user's policy")
                raise SaslRefused(f"the token is not signed with policy {name!r}")
        else:
            audience = sas.resource_uri(host, name)
        try:
            grant = self.registry.authenticate(password, audience, Surface.AMQP)
        except AuthError as exc:
            raise SaslRefused(f"SAS token refused ({exc.kind}): {exc.reason}") from None
        return PeerIdentity("PLAIN", user, grant)

    async def _sasl(self, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> PeerIdentity:
        writer.write(SASL_HEADER + sasl_frame(_SASL_MECHANISMS, [
            Array(UNDESCRIBED, Data.SYMBOL, *(symbol(m) for m in MECHANISMS))]))  # type: ignore[arg-type]
        await writer.drain()
        code, fields = await read_sasl_frame(reader)
        if code != _SASL_INIT or not fields:
            raise SaslRefused("expected sasl-init")
        mechanism = str(fields[0])
        response = bytes(fields[1]) if len(fields) > 1 and fields[1] is not None else b""
        if mechanism == "ANONYMOUS":
            identity = PeerIdentity("ANONYMOUS")
        elif mechanism == "PLAIN":
            identity = self.check_plain(response)
        else:
            raise SaslRefused(f"mechanism {mechanism[:40]!r} is not offered")
        writer.write(sasl_frame(_SASL_OUTCOME, [ubyte(OUTCOME_OK)]))
        await writer.drain()
        return identity

    # -- one connection ------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            await self._serve(reader, writer)
        finally:
            self.writers.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        try:
            header = await asyncio.wait_for(reader.readexactly(8), HANDSHAKE_TIMEOUT)
            if header == SASL_HEADER:
                identity = await asyncio.wait_for(self._sasl(reader, writer), HANDSHAKE_TIMEOUT)
                header = await asyncio.wait_for(reader.readexactly(8), HANDSHAKE_TIMEOUT)
            else:
                identity = PeerIdentity("NONE")
            if header != AMQP_HEADER:
                # AMQP 1.0 §2.2: answer with the header we do support, then close.
                log.info("hub amqp: %s sent protocol header %r: closing", peer, header[:8])
                with contextlib.suppress(OSError):
                    writer.write(SASL_HEADER)
                    await writer.drain()
                await _close(writer)
                return
        except SaslRefused as exc:
            log.info("hub amqp: SASL refused for %s: %s", peer, exc)
            self.registry.count("amqp.sasl_refused")
            with contextlib.suppress(OSError):
                writer.write(sasl_frame(_SASL_OUTCOME, [ubyte(OUTCOME_AUTH)]))
                await writer.drain()
            await _close(writer)
            return
        except (asyncio.IncompleteReadError, TimeoutError, OSError, ValueError) as exc:
            log.debug("hub amqp: %s went away during the handshake (%r)", peer, exc)
            await _close(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.proton_port)
        except OSError as exc:
            log.warning("hub amqp: proton listener unreachable: %s", exc)
            await _close(writer)
            return
        self.writers.add(up_writer)
        local_port = int(up_writer.get_extra_info("sockname")[1])
        self.identities.put(local_port, identity)
        up_writer.write(AMQP_HEADER)
        try:
            pumps = [asyncio.create_task(_pump(reader, up_writer)),
                     asyncio.create_task(_pump(up_reader, writer))]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self.identities.discard(local_port)
            await asyncio.gather(_close(up_writer), _close(writer))
            self.writers.discard(up_writer)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2)


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername") or ("?", "?")
    return f"{address[0]}:{address[1]}"
