"""Faster name lookups for paho-mqtt's MQTT 5 `Properties` (same behaviour, dict lookups).

paho rebuilds its constant property tables in every `Properties` instance, resolves a property
name to its identifier by scanning the table of ~27 names, and checks every attribute assignment
against a list rebuilt from that table each time. Each user property
of each PUBLISH goes through that path several times on both the sending and receiving side;
profiling a QoS 1 stream with typed properties showed it as the largest single cost of the MQTT
backend. `install` shares the constant tables and replaces the lookups with dictionaries built
once from paho's own table.
The checks themselves (packet type, value ranges, repeatable properties) are unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

_installed = False
_lock = threading.Lock()
# paho's own methods, kept so tests can compare the two implementations
ORIGINAL = {name: getattr(Properties, name)
            for name in ("__init__", "clear", "getIdentFromName", "getNameFromIdent",
                         "allowsMultiple", "__setattr__")}
_PRIVATE = frozenset({"packetType", "types", "names", "properties"})
_RANGES = {
    "ReceiveMaximum": (1, 65535), "TopicAlias": (1, 65535), "TopicAliasMaximum": (0, 65535),
    "MaximumPacketSize": (1, 268435455), "SubscriptionIdentifier": (1, 268435455),
}
_FLAGS = frozenset({"RequestResponseInformation", "RequestProblemInformation",
                    "PayloadFormatIndicator"})
_REPEATABLE = frozenset({11, 38})  # Subscription Identifier, User Property


def install() -> None:
    """Patch `Properties` once per process (idempotent, thread-safe)."""
    global _installed
    with _lock:
        if _installed:
            return
        stock = Properties(PacketTypes.PUBLISH)
        table = dict(stock.names)
        # paho rebuilds these three constant tables in every instance (three instances per
        # message); they are never modified, so every instance can share one copy.
        shared_types, shared_names, shared_properties = stock.types, stock.names, stock.properties
        property_names = frozenset(name.replace(" ", "") for name in table)
        ident_of = {name.replace(" ", ""): ident for name, ident in table.items()}
        name_of: dict[int, str] = {}
        for name, ident in table.items():
            name_of[ident] = name  # paho's scan keeps the last name for an identifier

        def init(self: Properties, packetType: int) -> None:
            object.__setattr__(self, "packetType", packetType)
            object.__setattr__(self, "types", shared_types)
            object.__setattr__(self, "names", shared_names)
            object.__setattr__(self, "properties", shared_properties)

        def clear(self: Properties) -> None:
            # an instance holds a handful of attributes: walk those, not the 27 names
            attributes = self.__dict__
            for name in [key for key in attributes if key in property_names]:
                del attributes[name]

        def get_ident(self: Properties, compressed_name: str) -> int:
            return ident_of.get(compressed_name, -1)

        def get_name(self: Properties, identifier: int) -> str | None:
            return name_of.get(identifier)

        def allows_multiple(self: Properties, compressed_name: str) -> bool:
            return ident_of.get(compressed_name, -1) in _REPEATABLE

        def set_attribute(self: Properties, name: str, value: Any) -> None:
            name = name.replace(" ", "")
            if name in _PRIVATE:
                object.__setattr__(self, name, value)
                return
            ident = ident_of.get(name)
            if ident is None:
                raise MQTTException(f"Property name must be one of {list(table)}")
            if self.packetType not in self.properties[ident][1]:
                raise MQTTException(f"Property {name} does not apply to packet type "
                                    f"{PacketTypes.Names[self.packetType]}")
            if not isinstance(value, list):
                low_high = _RANGES.get(name)
                if low_high is not None and not low_high[0] <= value <= low_high[1]:
                    raise MQTTException(f"{name} property value must be in the range "
                                        f"{low_high[0]}-{low_high[1]}")
                if name in _FLAGS and value not in (0, 1):
                    raise MQTTException(f"{name} property value must be 0 or 1")
            if ident in _REPEATABLE:
                if not isinstance(value, list):
                    value = [value]
                if hasattr(self, name):
                    value = object.__getattribute__(self, name) + value
            object.__setattr__(self, name, value)

        Properties.__init__ = init  # type: ignore[method-assign]
        Properties.clear = clear  # type: ignore[method-assign]
        Properties.getIdentFromName = get_ident  # type: ignore[method-assign]
        Properties.getNameFromIdent = get_name  # type: ignore[method-assign]
        Properties.allowsMultiple = allows_multiple  # type: ignore[method-assign]
        Properties.__setattr__ = set_attribute  # type: ignore[method-assign]
        _installed = True
