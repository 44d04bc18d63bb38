"""The faster paho Properties lookups behave exactly like paho's own."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import MQTTException, Properties

from bridge.engines.mqtt import fastprops

fastprops.install()


class StockProperties(Properties):
    """paho's original lookups, for comparison."""


for _name, _method in fastprops.ORIGINAL.items():
    setattr(StockProperties, _name, _method)


def _fill(props: Properties) -> Properties:
    props.UserProperty = ("a", "1")
    props.UserProperty = [("b", "x y"), ("a", "2")]
    props.PayloadFormatIndicator = 1
    props.ContentType = "application/json"
    props.MessageExpiryInterval = 30
    props.CorrelationData = b"\x00\x01"
    return props


def test_pack_unpack_identical_to_paho() -> None:
    fast = _fill(Properties(PacketTypes.PUBLISH))
    stock = _fill(StockProperties(PacketTypes.PUBLISH))
    assert fast.pack() == stock.pack()
    decoded_fast = Properties(PacketTypes.PUBLISH)
    decoded_stock = StockProperties(PacketTypes.PUBLISH)
    decoded_fast.unpack(stock.pack())
    decoded_stock.unpack(stock.pack())
    assert decoded_fast.json() == decoded_stock.json()
    assert decoded_fast.UserProperty == [("a", "1"), ("b", "x y"), ("a", "2")]


@pytest.mark.parametrize(("attribute", "value"), [
    ("NoSuchProperty", 1), ("ReceiveMaximum", 0), ("TopicAliasMaximum", 70000),
    ("PayloadFormatIndicator", 2), ("SessionExpiryInterval", 5),  # not for PUBLISH
])
def test_same_refusals_as_paho(attribute: str, value: object) -> None:
    for cls in (Properties, StockProperties):
        with pytest.raises(MQTTException):
            setattr(cls(PacketTypes.PUBLISH), attribute, value)


def test_lookups_agree_for_every_name() -> None:
    fast, stock = Properties(PacketTypes.PUBLISH), StockProperties(PacketTypes.PUBLISH)
    for name, ident in stock.names.items():
        compressed = name.replace(" ", "")
        assert fast.getIdentFromName(compressed) == stock.getIdentFromName(compressed) == ident
        assert fast.getNameFromIdent(ident) == stock.getNameFromIdent(ident)
        assert fast.allowsMultiple(compressed) == stock.allowsMultiple(compressed)
    assert fast.getIdentFromName("Nope") == stock.getIdentFromName("Nope") == -1
    fastprops.install()  # idempotent


def test_clear_removes_every_property() -> None:
    for cls in (Properties, StockProperties):
        props = _fill(cls(PacketTypes.PUBLISH))
        props.clear()
        assert props.pack() == cls(PacketTypes.PUBLISH).pack() == b"\x00"
        assert not hasattr(props, "UserProperty")
