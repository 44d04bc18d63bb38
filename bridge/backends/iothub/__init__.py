"""Azure IoT Hub: the ``iothub`` backend and its building blocks.

- `backend`: `IoTHubBackend`, AMQP agent code with CBS put-token over IoT Hub's MQTT device
  surface, on the MQTT engine (`bridge.engines.mqtt`);
- `settings`: the ``[iothub]`` section and its consistency checks;
- `identity`: settings + URL -> identity, endpoint, credentials;
- `cbs`: the emulated ``$cbs`` node (put-token checks, replies);
- `inbox`: C2D subscriptions kept across a token expiry (`RetainingInbox`);
- `codec`: contract messages <-> D2C / C2D publishes;
- `connection_string`, `sas`, `topics`: pure codecs shared with the hub stand-in (connection
  strings, SAS tokens, MQTT topics and property bags).

See docs/backends/iothub.md for every decision. Importing this package does not import paho.
"""

from __future__ import annotations

from types import MappingProxyType

from bridge.backends.registry import BackendEntry, Capabilities

ENTRY = BackendEntry(
    name="iothub",
    factory="bridge.backends.iothub.backend:create",
    settings="bridge.backends.iothub.settings:IoTHubSettings",
    description="Azure IoT Hub over MQTT",
    capabilities=Capabilities(
        reject=False, credit=False, cancel_withdraws=False, link_detach=False,
        typed_properties=False, any_path=False,
        deviations=MappingProxyType({
            30: "IoT Hub properties are strings: every value converts; a foreign x-amqp-types "
                "hint naming an unknown type is ignored (it and the values stay visible as "
                "strings) instead of a value being left out",
            37: "IoT Hub over MQTT has no consumer-granted credit: the hub PUBACKs a D2C "
                "publish at once; the echo route keeps nothing for an input nobody subscribes "
                "to",
            39: "a transfer already handed to the hub cannot be withdrawn: cancel() only stops "
                "its callback",
            45: "IoT Hub over MQTT has no per-link detach; the one link error is the emulated "
                "CBS authorisation loss: when a put-token's SAS token expires every event "
                "sender gets SENDER_ERROR 'amqp:unauthorized-access: ...' (connection and "
                "sessions stay open)",
            47: "the $cbs node checks what it is given: the suite's malformed token gets 401 "
                "with the reason; a token for the connection's identity gets 200 / 'OK'",
        })),
)

__all__ = ["ENTRY"]
