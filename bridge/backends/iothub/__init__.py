"""Azure IoT Hub building blocks: connection strings, SAS tokens, MQTT topics and property bags.

These modules are pure functions and small frozen value types, shared by the future ``iothub``
backend (CBS emulation over the MQTT transport) and by the hub stand-in used in tests:

- `bridge.backends.iothub.connection_string`: parse and build device/module connection strings;
- `bridge.backends.iothub.sas`: create, parse and verify ``SharedAccessSignature`` tokens;
- `bridge.backends.iothub.topics`: MQTT client id / username, D2C topics and property bags,
  C2D parsing, and the mapping of the legacy AMQP link paths onto MQTT topics.

The backend itself does not exist yet, so this package deliberately defines no ``create``
factory: the backend name ``iothub`` stays unselectable until it does. See
docs/backends/iothub.md for every wire-format decision.
"""

from __future__ import annotations


def __getattr__(name: str) -> object:
    # bridge.backends.base lists a built-in backend as soon as its module exists; until the
    # backend lands, make `load_backend("iothub")` fail with a readable reason instead of a bare
    # "module has no attribute 'create'".
    if name == "create":
        raise AttributeError(
            "the 'iothub' backend is not implemented yet: bridge.backends.iothub only holds its "
            "codecs (connection strings, SAS tokens, topics)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
