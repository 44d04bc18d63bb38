"""``bridge hub``: run the IoT Hub stand-in until Ctrl-C / SIGTERM (or ``--duration``).

Registered on the main CLI group by ``cli.add_command(hub_command)``; also runnable on its own
as ``python -m bridge.testing.hub``.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from bridge.testing.hub.api import Hub
from bridge.testing.hub.registry import D2CMessage

_HELP = """Run a local Azure IoT Hub stand-in with both device surfaces.

\b
AMQP  amqps://localhost:PORT  SASL ANONYMOUS + $cbs put-token, or SASL PLAIN
      ({deviceId}@sas.{hub} / SAS token); /devices/{id}/messages/events and
      /devices/{id}/messages/devicebound
MQTT  mqtts://localhost:PORT  IoT Hub CONNECT (client id = device id, username
      {host}/{id}/?api-version=..., password = SAS token), a real Mosquitto behind it

Both use a throw-away CA generated at start (its path is printed). The connection string of
each --device is printed; D2C messages are echoed as they arrive (unless --quiet). Runs until
Ctrl-C or SIGTERM (or --duration), then stops everything and exits 0.

\b
Examples:
  bridge hub                                  AMQP on 5671, MQTT on 8883, device demo-device
  bridge hub --amqp-port 0 --mqtt-port 0      free ports
  bridge hub --device d1 --device d2 --duration 60
"""


def _stop_on(signals: tuple[int, ...], event: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        event.set()

    for signum in signals:
        signal.signal(signum, handler)


@click.command("hub", help=_HELP, short_help="Run a local Azure IoT Hub stand-in.")
@click.option("--host", "host_name", default="localhost", show_default=True,
              help="HostName of the connection strings and SAS audiences (anything other than "
                   "localhost adds GatewayHostName=localhost). Sockets always bind 127.0.0.1.")
@click.option("--amqp-port", type=click.IntRange(0, 65535), default=5671, show_default=True,
              help="AMQP (TLS) port; 0 picks a free one.")
@click.option("--mqtt-port", type=click.IntRange(0, 65535), default=8883, show_default=True,
              help="MQTT (TLS) port; 0 picks a free one.")
@click.option("--device", "devices", multiple=True, metavar="ID",
              help="Register this device and print its connection string (repeatable; "
                   "default: demo-device).")
@click.option("--max-delivery-count", type=click.IntRange(1, 100), default=10,
              show_default=True, help="Releases of a C2D message before it is dead-lettered.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after SECONDS instead of waiting for Ctrl-C / SIGTERM.")
@click.option("--quiet", is_flag=True, help="Do not echo D2C messages.")
def hub_command(host_name: str, amqp_port: int, mqtt_port: int, devices: tuple[str, ...],
                max_delivery_count: int, duration: float | None, quiet: bool) -> None:
    stop = threading.Event()
    echo_thread: threading.Thread | None = None
    _stop_on((signal.SIGINT, signal.SIGTERM), stop)
    hub = Hub(host_name, amqp_port=amqp_port, mqtt_port=mqtt_port,
              max_delivery_count=max_delivery_count)
    try:
        hub.start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        registered = [hub.register_device(d) for d in (devices or ("demo-device",))]
        echo = click.echo
        echo(f"IoT Hub stand-in for {hub.host_name} running")
        echo(f"  AMQP  {hub.amqp_url}")
        echo(f"  MQTT  {hub.mqtt_url}")
        echo(f"  CA    {hub.ca_file}")
        for device in registered:
            echo(f"  device {device.device_id}: {device.connection_string}")
        echo("Press Ctrl-C to stop.")
        sys.stdout.flush()
        if not quiet:
            echo_thread = _echo_d2c(hub, stop, [d.device_id for d in registered])
        stop.wait(duration)
    finally:
        stop.set()
        if echo_thread is not None:
            echo_thread.join(5)
        hub.stop()
    click.echo("IoT Hub stand-in stopped")


def _echo_d2c(hub: Hub, stop: threading.Event, device_ids: list[str]) -> threading.Thread:
    """Print each D2C message as it arrives (a thread that ends soon after *stop*)."""

    def watch() -> None:
        last = 0  # D2C sequence numbers grow across devices; the store itself is bounded

        def newer() -> list[D2CMessage]:
            return hub.registry.d2c_after(last, device_ids)

        while not stop.is_set():
            try:
                fresh = hub.wait_for(newer, 0.5)
            except (TimeoutError, RuntimeError):
                continue
            for message in fresh:
                click.echo(_describe(message))
                last = message.sequence
            sys.stdout.flush()

    thread = threading.Thread(target=watch, name="hub-echo", daemon=True)
    thread.start()
    return thread


def _describe(message: D2CMessage) -> str:
    body = message.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else repr(body)
    if len(text) > 200:
        text = text[:197] + "..."
    return f"d2c {message.device_id} [{message.surface}] {text} {message.properties}"
