"""BufferedSocket: the read-ahead/write-behind socket under paho (real socket pairs)."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest

from bridge.engines.mqtt.bufferedsocket import READ_CHUNK, BufferedSocket
from bridge.engines.mqtt.client import build_client
from bridge.engines.mqtt.endpoint import parse_broker_url


@pytest.fixture
def pair() -> Iterator[tuple[BufferedSocket, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    wrapped = BufferedSocket(ours)
    yield wrapped, peer
    wrapped.close()
    peer.close()


def _wait_readable(sock: BufferedSocket) -> None:
    readable, _, _ = select.select([sock], [], [], 5)
    assert readable, "nothing arrived"


def test_small_reads_are_served_from_one_recv(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.sendall(b"\x40\x02\x00\x01" * 3)  # three PUBACKs
    _wait_readable(sock)
    assert sock.recv(1) == b"\x40"
    # the rest is ours now: select cannot see it, pending() must
    assert sock.pending() == 11
    assert sock.recv(1) == b"\x02"
    assert sock.recv(2) == b"\x00\x01"
    assert sock.recv(100) == b"\x40\x02\x00\x01" * 2  # a short read: what is buffered
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)


def test_a_large_read_is_not_cut_to_the_chunk(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    data = bytes(range(256)) * ((READ_CHUNK * 2) // 256)
    peer.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        _wait_readable(sock)
        while True:
            try:
                chunk = sock.recv(len(data) - len(got))
            except BlockingIOError:
                break
            got += chunk
            if not sock.pending():
                break
    assert bytes(got) == data


def test_peer_close_reads_as_empty(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.sendall(b"ab")
    peer.shutdown(socket.SHUT_WR)
    _wait_readable(sock)
    assert sock.recv(1) == b"a"
    assert sock.recv(1) == b"b"
    assert sock.recv(1) == b""


def test_writes_wait_for_flush_and_go_out_in_order(
        pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    assert sock.send(b"one,") == 4
    assert sock.send(bytearray(b"two,")) == 4
    assert sock.send(memoryview(b"three")) == 5
    assert sock.unsent == 13
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing written before the flush
    peer.settimeout(5)
    assert sock.flush() is True
    assert sock.unsent == 0
    assert peer.recv(100) == b"one,two,three"


def test_what_the_kernel_does_not_take_stays_buffered_in_order(
        pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    block = b"x" * 65536
    sent = 0
    for index in range(64):  # far more than the socket buffers hold
        sock.send(bytes([index % 256]) + block)
        sent += len(block) + 1
    assert sock.flush() is False, "the peer reads nothing: some must remain"
    assert 0 < sock.unsent < sent
    got = bytearray()
    while len(got) < sent:
        got += peer.recv(1 << 20)
        sock.flush()
    expected = b"".join(bytes([index % 256]) + block for index in range(64))
    assert bytes(got) == expected
    assert sock.unsent == 0


def test_a_write_error_is_kept_and_raised_to_the_next_call(
        pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.close()
    sock.send(b"lost")
    failed = False
    for _ in range(10):  # the first write to a closed peer may still be accepted
        if not sock.flush():
            failed = sock.failed
            if failed:
                break
        sock.send(b"lost again")
    assert failed
    with pytest.raises(OSError):
        sock.recv(1)
    with pytest.raises(OSError):
        sock.send(b"more")


def test_close_writes_what_is_buffered(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    sock.send(b"\xe0\x00")  # DISCONNECT
    sock.close()
    assert peer.recv(10) == b"\xe0\x00"
    assert peer.recv(10) == b""


def test_flush_within_waits_for_a_slow_reader(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, _peer = pair
    sock.send(b"y" * (8 << 20))
    assert sock.flush_within(0.05) is False  # nobody reads: the deadline passes
    assert sock.unsent > 0


def test_socket_options_reach_the_tcp_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        wrapped = BufferedSocket(client)
        wrapped._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert wrapped.fileno() == client.fileno()
        assert wrapped.getsockname() == client.getsockname()  # delegated
        wrapped.close()


def test_the_paho_client_writes_through_a_buffered_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = build_client(endpoint=parse_broker_url(f"mqtt://127.0.0.1:{port}"),
                              client_id="t", v5=True, clean_start=True, username=None,
                              password=None, connect_timeout=5, tls=None)
        assert isinstance(client, paho.Client)
        client.connect("127.0.0.1", port)
        peer, _ = server.accept()
        with peer:
            sock = client.socket()
            assert isinstance(sock, BufferedSocket)
            assert sock.unsent > 0  # the CONNECT waits for the driver's flush
            assert sock.flush() is True
            peer.settimeout(5)
            assert peer.recv(1) == b"\x10"  # CONNECT
            sock.close()


def test_without_coalescing_each_send_goes_straight_through(
        pair: tuple[BufferedSocket, socket.socket]) -> None:
    ours, peer = pair
    direct = BufferedSocket(ours._inner, coalesce_writes=False)  # as for WebSockets
    assert direct.send(b"frame-1") == 7
    assert direct.unsent == 0
    assert peer.recv(100) == b"frame-1"  # no flush needed
    peer.sendall(b"abc")
    _wait_readable(direct)
    assert direct.recv(1) == b"a" and direct.pending() == 2  # reads are still buffered


@pytest.mark.parametrize("url,coalesced", [("mqtt://127.0.0.1:1", True),
                                             ("ws://127.0.0.1:1/mqtt", False)])
def test_websocket_clients_keep_one_frame_per_packet(monkeypatch: pytest.MonkeyPatch, url: str,
                                                     coalesced: bool) -> None:
    ends = socket.socketpair()
    monkeypatch.setattr(paho.Client, "_create_socket", lambda self: ends[0])
    client = build_client(endpoint=parse_broker_url(url), client_id="t", v5=True,
                          clean_start=True, username=None, password=None, connect_timeout=5,
                          tls=None)
    try:
        sock = client._create_socket()
        assert isinstance(sock, BufferedSocket)
        assert sock._coalesce is coalesced
    finally:
        for end in ends:
            end.close()
