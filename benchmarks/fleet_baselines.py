"""What users run today, for the fleet rows: raw paho clients with ``loop_start`` each, and
azure-iot-device clients (in their own venv: they need paho-mqtt 1.x).

Each adds clients until one fails to connect, or the cap: how many one process holds, and the
RSS and threads each one costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.fleet import HUB, mosquitto, row, rss

ROOT = Path(__file__).resolve().parent.parent
SDK_VENV = ROOT / ".sdk-venv" / "azure-iot-device-2.14.0"
SDK_REQUIREMENTS = ["azure-iot-device==2.14.0", "paho-mqtt>=1.6.1,<2"]


def bench_raw_paho(cap: int) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    with mosquitto() as broker:
        clients: list[Any] = []
        before_rss, before_threads = rss(), _all_threads()
        failure = ""
        connected = threading.Semaphore(0)
        try:
            while len(clients) < cap:
                client = paho.Client(CallbackAPIVersion.VERSION2,
                                     client_id=f"raw-{len(clients)}")
                client.on_connect = lambda *args: connected.release()
                try:
                    client.connect("127.0.0.1", broker.port)
                    client.loop_start()
                except Exception as exc:  # the descriptor ceiling of paho's select() loop
                    failure = f"{type(exc).__name__}: {exc}"
                    break
                clients.append(client)
                if not connected.acquire(timeout=10):
                    failure = "no CONNACK within 10 s"
                    break
            time.sleep(2)  # loops past FD_SETSIZE die in their thread, after connecting
            alive = sum(1 for c in clients if c._thread is not None and c._thread.is_alive())
            count = max(1, len(clients))
            row("raw paho (loop_start each)", held=alive, attempted=len(clients),
                rss_per_client=f"{(rss() - before_rss) / count / 1024:.1f}KB",
                threads_per_client=f"{(_all_threads() - before_threads) / count:.2f}",
                stopped_by=failure or ("dead loop threads" if alive < len(clients) else "cap"))
        finally:
            for client in clients:
                try:
                    client.loop_stop()
                    client.disconnect()
                except Exception:
                    pass


def _all_threads() -> int:
    return threading.active_count()


_SDK_PROBE = textwrap.dedent("""
    import json, os, sys, threading, time
    import paho.mqtt.client as paho
    config = json.load(open(sys.argv[1]))
    original = paho.Client.connect
    def connect(self, host, port=1883, *args, **kwargs):  # the SDK always dials 8883
        return original(self, host, config["port"] if port == 8883 else port, *args, **kwargs)
    paho.Client.connect = connect
    from azure.iot.device import IoTHubDeviceClient
    def status():
        fields = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["Threads"])
    rss0, th0 = status()
    clients, failure = [], ""
    for n in range(config["cap"]):
        cs = (f"HostName={config['hub']};DeviceId=sdk-{n};SharedAccessKey={config['key']};"
              f"GatewayHostName=localhost")
        client = IoTHubDeviceClient.create_from_connection_string(
            cs, server_verification_cert=open(config["ca"]).read(), connection_retry=False)
        try:
            client.connect()
        except Exception as exc:
            failure = f"{type(exc).__name__}: {exc}"[:120]
            break
        clients.append(client)
    rss1, th1 = status()
    n = max(1, len(clients))
    print(json.dumps({"held": len(clients), "rss": (rss1 - rss0) / n, "threads": (th1 - th0) / n,
                      "failure": failure}), flush=True)
    os._exit(0)
""")


def bench_sdk(cap: int) -> None:
    python = SDK_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SDK_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *SDK_REQUIREMENTS],
                       check=True)
    import base64
    import os

    with mosquitto(tls=True) as broker, tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "config.json"
        config.write_text(json.dumps({"port": broker.tls_port, "ca": str(broker.tls.ca_file),
                                      "hub": HUB, "cap": cap,
                                      "key": base64.b64encode(os.urandom(32)).decode()}))
        probe = Path(directory) / "probe.py"
        probe.write_text(_SDK_PROBE)
        result = subprocess.run([str(python), str(probe), str(config)], capture_output=True,
                                text=True, timeout=1800)
        try:
            found = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            row("azure-iot-device", failed=result.stderr.strip().splitlines()[-1:])
            return
        row("azure-iot-device (own venv)", held=found["held"],
            rss_per_client=f"{found['rss'] / 1024:.1f}KB",
            threads_per_client=f"{found['threads']:.2f}",
            stopped_by=found["failure"] or "cap")
