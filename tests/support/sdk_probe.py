"""Drive the official azure-iot-device client against a local broker and report what it did.

Runs ONLY under the SDK's own virtualenv (tests/support/sdk_env.py), never in the bridge's: it
imports azure-iot-device 2.14 and its paho-mqtt 1.x. Usage::

    python sdk_probe.py CONFIG.json

CONFIG keys: ``connection_string`` (use ``GatewayHostName=localhost`` so TLS goes to the local
broker while the username and SAS keep the hub name), ``ca_file`` (PEM the server certificate
chains to), ``port`` (the SDK hard-codes 8883; the probe redirects that one connect call),
``module`` (bool: IoTHubModuleClient), ``messages`` (list of D2C messages: ``payload`` plus any
of message_id, correlation_id, user_id, content_type, content_encoding, expiry_time_utc,
custom_properties, output_name), ``receive`` (how many C2D / input messages to wait for) and
``timeout`` (seconds).

Stdout carries one JSON object per line: ``ready`` (versions, user agent), ``connected``,
``sent`` per message, ``subscribed`` (the receive feature is enabled: SUBACK seen), one
``received`` per message (what the SDK derived), then ``done``; on failure ``error``.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import traceback
from typing import Any


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def redirect_port(target: int) -> None:
    # azure-iot-device always dials 8883 (maintainers in issue #784): point that one call at
    # the test's listener. Nothing else about the client is changed. The SDK passes host, port
    # and keepalive as keywords, so the wrapper keeps paho's parameter names.
    import paho.mqtt.client as paho

    original = paho.Client.connect

    def connect(self: Any, host: str, port: int = 1883, *args: Any, **kwargs: Any) -> Any:
        return original(self, host, target if port == 8883 else port, *args, **kwargs)

    paho.Client.connect = connect  # type: ignore[method-assign]


def describe(message: Any) -> dict[str, Any]:
    data = message.data
    return {
        "data": data.decode("utf-8", "replace") if isinstance(data, bytes) else data,
        "data_is_bytes": isinstance(data, bytes),
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "user_id": message.user_id,
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "expiry_time_utc": message.expiry_time_utc,
        "ack": message.ack,
        "input_name": message.input_name,
        "custom_properties": message.custom_properties,
    }


def main(config_path: str) -> int:
    with open(config_path) as handle:
        config = json.load(handle)
    redirect_port(int(config["port"]))

    import importlib.metadata as metadata

    from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, Message
    from azure.iot.device.user_agent import get_iothub_user_agent

    emit("ready", sdk_version=metadata.version("azure-iot-device"),
         paho_version=metadata.version("paho-mqtt"), user_agent=get_iothub_user_agent())
    with open(config["ca_file"]) as handle:
        ca_pem = handle.read()
    client_class = IoTHubModuleClient if config.get("module") else IoTHubDeviceClient
    client = client_class.create_from_connection_string(
        config["connection_string"], server_verification_cert=ca_pem,
        connection_retry=False)
    timeout = float(config.get("timeout", 20))
    try:
        client.connect()
        emit("connected")
        for index, spec in enumerate(config.get("messages", [])):
            message = Message(spec["payload"])
            for name in ("message_id", "correlation_id", "user_id", "content_type",
                         "content_encoding", "expiry_time_utc"):
                if name in spec:
                    setattr(message, name, spec[name])
            message.custom_properties.update(spec.get("custom_properties", {}))
            if spec.get("output_name"):
                client.send_message_to_output(message, spec["output_name"])
            else:
                client.send_message(message)
            emit("sent", index=index)
        wanted = int(config.get("receive", 0))
        if wanted:
            inbox: queue.Queue[Any] = queue.Queue()
            # Setting the handler enables the feature synchronously: it returns after SUBACK.
            client.on_message_received = inbox.put
            emit("subscribed")
            for _ in range(wanted):
                emit("received", message=describe(inbox.get(timeout=timeout)))
        emit("done")
        return 0
    except Exception as exc:  # report anything to the test, which fails with this text
        emit("error", type=type(exc).__name__, text=str(exc),
             traceback=traceback.format_exc())
        return 1
    finally:
        # Best effort at exit: the result is already on stdout.
        with contextlib.suppress(Exception):
            client.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
