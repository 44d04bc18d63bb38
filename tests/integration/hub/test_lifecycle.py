"""Starting and stopping the stand-in: no leaks, the ``bridge hub`` command, the pytest plugin."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import click
import pytest
from proton import Message

from bridge.backends.iothub import topics
from bridge.backends.iothub.connection_string import parse_connection_string
from bridge.testing.hub import Hub
from bridge.testing.hub.cli import hub_command
from tests.integration.hub.clients import AmqpDevice, MqttDevice

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def test_stop_leaves_no_thread_process_or_descriptor(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    fds_before = open_fds()
    hub = Hub(directory=tmp_path).start()
    broker_pid = hub.broker_pid
    assert broker_pid is not None
    device = hub.register_device("leak-check")
    amqp = AmqpDevice(hub)
    amqp.authorise(device)
    amqp.sender(f"/devices/{device.device_id}/messages/events").send(Message(body="x"))
    mqtt = MqttDevice(hub, device)
    assert mqtt.connect() == 0
    mqtt.publish(f"devices/{device.device_id}/messages/events/", b"y")
    device.wait_d2c(2)
    # stop the hub while both clients are still connected: it must not wait for them
    started = time.monotonic()
    hub.stop()
    assert time.monotonic() - started < 3
    mqtt.close()
    amqp.conn.container.stop()  # the blocking client's own sockets, not the hub's
    assert set(threading.enumerate()) - threads_before == set()
    with pytest.raises(ProcessLookupError):
        os.kill(broker_pid, 0)
    leaked = open_fds() - fds_before
    # the AMQP client may keep its socket until garbage-collected; the hub keeps nothing
    assert len(leaked) <= 1, [os.readlink(f"/proc/self/fd/{fd}") for fd in leaked
                              if os.path.exists(f"/proc/self/fd/{fd}")]
    hub.stop()  # idempotent


def test_hub_command_is_a_click_command_named_hub() -> None:
    assert isinstance(hub_command, click.Command) and hub_command.name == "hub"
    option_names = {opt for param in hub_command.params for opt in param.opts}
    assert {"--host", "--amqp-port", "--mqtt-port", "--device", "--duration"} <= option_names


def _invocations() -> list[list[str]]:
    """``python -m bridge.testing.hub``, and ``bridge hub`` once the main CLI has it."""
    commands = [[sys.executable, "-m", "bridge.testing.hub"]]
    from bridge.cli import cli

    if "hub" in cli.commands:
        commands.append([sys.executable, "-m", "bridge", "hub"])
    return commands


@pytest.mark.parametrize("command", _invocations(), ids=lambda c: " ".join(c[1:3]))
def test_bridge_hub_prints_connection_strings_serves_and_exits_0_on_sigterm(
        command: list[str]) -> None:
    process = subprocess.Popen(
        [*command, "--amqp-port", "0", "--mqtt-port", "0", "--device", "cli-a",
         "--device", "cli-b"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        lines = _read_until(process, "Press Ctrl-C", timeout=20)
        text = "\n".join(lines)
        strings = dict(re.findall(r"device (\S+): (HostName=\S+)", text))
        assert set(strings) == {"cli-a", "cli-b"}
        parsed = parse_connection_string(strings["cli-a"])
        assert parsed.device_id == "cli-a" and parsed.shared_access_key is not None
        ca_file = Path(re.search(r"CA\s+(\S+)", text).group(1))  # type: ignore[union-attr]
        mqtt_port = int(re.search(r"mqtts://localhost:(\d+)", text).group(1))  # type: ignore[union-attr]
        assert ca_file.is_file()

        # the printed credentials really open the MQTT surface of that process
        token = parsed.generate_token(int(time.time()) + 300)
        packet = _connect_and_publish(ca_file, mqtt_port, parsed.host_name, "cli-a", token)
        assert packet == b"\x20\x02\x00\x00"
        echoed = _read_until(process, "d2c cli-a [mqtt] from the cli test", timeout=10)
        assert echoed

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert "stopped" in out
        assert not ca_file.exists()  # its temporary directory is gone
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    result: list[bool] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            if marker in line:
                result.append(True)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert result, f"{marker!r} not printed; got: {lines}"
    return lines


def _connect_and_publish(ca_file: Path, port: int, host: str, device_id: str,
                         token: str) -> bytes:
    """A raw MQTT 3.1.1 CONNECT + PUBLISH (QoS 0) over TLS; returns the CONNACK."""
    import socket
    import ssl
    import struct

    def string(value: str) -> bytes:
        data = value.encode()
        return struct.pack("!H", len(data)) + data

    def packet(first: int, body: bytes) -> bytes:
        length, encoded = len(body), b""
        while True:
            byte, length = length & 0x7F, length >> 7
            encoded += bytes([byte | (0x80 if length else 0)])
            if not length:
                return bytes([first]) + encoded + body

    connect = packet(0x10, string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)
                     + string(device_id) + string(topics.username(host, device_id))
                     + string(token))
    publish = packet(0x30, string(f"devices/{device_id}/messages/events/")
                     + b"from the cli test")
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("localhost", port), 10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(connect)
        connack = tls.recv(4)
        tls.sendall(publish + b"\xe0\x00")  # PUBLISH, then DISCONNECT
        return connack


def test_plugin_fixtures_in_a_user_project(tmp_path: Path) -> None:
    """What a user gets with ``-p bridge.testing.plugin``: a device with working credentials."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        from proton import Message
        from proton.utils import BlockingConnection
        from proton import SSLDomain

        def test_device(iothub_device, iothub_standin):
            assert iothub_device.connection_string.startswith("HostName=localhost;DeviceId=")
            domain = SSLDomain(SSLDomain.MODE_CLIENT)
            domain.set_trusted_ca_db(str(iothub_device.ca_file))
            conn = BlockingConnection(iothub_device.amqp_url, ssl_domain=domain,
                                      allowed_mechs="PLAIN",
                                      user=f"{iothub_device.device_id}@sas.localhost",
                                      password=iothub_device.token())
            path = f"/devices/{iothub_device.device_id}/messages/events"
            conn.create_sender(path).send(Message(body="from a user test"))
            conn.close()
            assert iothub_device.wait_d2c(1)[0].body == "from a user test"
            assert iothub_standin.max_delivery_count_seen == 4

        def test_second_device_is_new(iothub_device):
            assert iothub_device.d2c() == []
        """).replace("iothub_standin.max_delivery_count_seen",
                     "iothub_standin.registry.max_delivery_count"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "bridge.testing.plugin",
         "-p", "no:cacheprovider", "--iothub-max-delivery-count", "4", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        # only the -p plugin: independent of whether the pytest11 entry point is installed
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


def test_a_realistic_host_name_goes_through_a_gateway(tmp_path: Path) -> None:
    """``HostName=myhub.azure-devices.net`` + ``GatewayHostName=localhost`` (spec §6.1.3):
    audiences and usernames keep the hub's name, TLS goes to localhost."""
    with Hub("myhub.azure-devices.net", directory=tmp_path) as hub:
        device = hub.register_device("gw-dev")
        parsed = parse_connection_string(device.connection_string)
        assert (parsed.host_name, parsed.gateway_host_name) == ("myhub.azure-devices.net",
                                                                "localhost")
        mqtt = MqttDevice(hub, device)
        try:
            assert mqtt.connect() == 0
        finally:
            mqtt.close()
        plain = AmqpDevice(hub, user="gw-dev@sas.myhub", password=device.token())
        plain.sender("/devices/gw-dev/messages/events").send(Message(body="via gateway"))
        plain.close()
        cbs = AmqpDevice(hub)
        reply = cbs.put_token(device.token(), "myhub.azure-devices.net/devices/gw-dev")
        cbs.close()
        assert reply.properties["status-code"] == 200
        assert device.wait_d2c(1)[0].body == "via gateway"


def test_a_crashed_mosquitto_is_restarted_and_the_surface_recovers(tmp_path: Path) -> None:
    with Hub(directory=tmp_path) as hub:
        device = hub.register_device("survivor")
        first = MqttDevice(hub, device)
        assert first.connect() == 0
        old_pid = hub.broker_pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)  # the hub's own child: simulate a crash
        assert first.disconnected.wait(10), "the device connection went down with the broker"
        first.close()
        hub.wait_for(lambda: hub.counters().get("mqtt.hub_client_subscribed", 0) >= 2)
        assert hub.counters()["mqtt.broker_restarts"] == 1
        assert hub.broker_pid not in (None, old_pid)
        again = MqttDevice(hub, device)
        try:
            assert again.connect() == 0
            again.publish(f"devices/{device.device_id}/messages/events/", b"after restart")
            assert device.wait_d2c(1)[0].body == b"after restart"
        finally:
            again.close()
