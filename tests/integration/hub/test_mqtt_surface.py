"""The stand-in's MQTT surface with raw paho 2.x over TLS: CONNECT checks, D2C, C2D, scope."""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest

from bridge.backends.iothub import sas, topics
from bridge.backends.iothub.topics import SystemProperties
from bridge.testing.hub import C2DState, Hub, HubDevice, Surface
from tests.integration.hub.clients import MqttDevice, raw_connect

pytestmark = pytest.mark.integration

Client = Callable[..., MqttDevice]


def wrong_key_token(device: HubDevice) -> str:
    key = base64.b64encode(os.urandom(32)).decode()
    return sas.generate_device_token(device.host_name, device.device_id, key)


# ------------------------------------------------------------------------------ CONNECT


def test_valid_sas_connects_and_d2c_with_property_bag_reaches_the_hub(
        mqtt_client: Client, device: HubDevice) -> None:
    client = mqtt_client(device)
    assert client.connect() == 0
    topic = topics.d2c_topic(
        device.device_id,
        system=SystemProperties(message_id="m 1", content_type="application/json",
                                content_encoding="utf-8"),
        application={"a b": "c/d&e=f", "count": 5, "flag": True})
    client.publish(topic, b'{"t": 21.5}')
    client.publish(f"devices/{device.device_id}/messages/events/", b"bare")

    first, second = device.wait_d2c(2)
    assert first.surface is Surface.MQTT
    assert first.body == b'{"t": 21.5}'
    assert first.properties == {"a b": "c/d&e=f", "count": "5", "flag": "true"}
    assert first.system["message-id"] == "m 1"
    assert first.system["content-type"] == "application/json"
    assert first.system["iothub-connection-device-id"] == device.device_id
    assert (second.body, second.properties) == (b"bare", {})


@pytest.mark.parametrize("case, code", [
    ("wrong-key", 5), ("expired", 5), ("malformed-token", 4), ("no-password", 4),
    ("bad-username", 4), ("other-hub", 4), ("client-id-mismatch", 2), ("mqtt-3.1", 1)])
def test_refused_connects_get_the_documented_connack(case: str, code: int, device: HubDevice,
                                                     iothub_standin: Hub) -> None:
    user = topics.username(device.host_name, device.device_id)
    client_id, username, password, level = device.device_id, user, device.token(), 4
    if case == "wrong-key":
        password = wrong_key_token(device)
    elif case == "expired":
        password = device.token(-60)
    elif case == "malformed-token":
        password = "SharedAccessSignature sr=x"
    elif case == "no-password":
        password = None
    elif case == "bad-username":
        username = device.device_id
    elif case == "other-hub":
        username = topics.username("elsewhere.azure-devices.net", device.device_id)
    elif case == "client-id-mismatch":
        client_id = device.device_id + "-x"
    elif case == "mqtt-3.1":
        level = 3
    assert raw_connect(iothub_standin, client_id, username, password, level) == \
        bytes([0x20, 0x02, 0x00, code])
    assert iothub_standin.counters()[f"mqtt.connack.{code}"] >= 1
    assert device.device_id not in iothub_standin.mqtt_connected()


def test_paho_sees_not_authorized_for_wrong_key_and_expired_token(mqtt_client: Client,
                                                                  device: HubDevice) -> None:
    for token in (wrong_key_token(device), device.token(-5)):
        client = mqtt_client(device, token=token)
        reason = client.connect()
        assert reason.is_failure and reason.getName() == "Not authorized"
        assert client.disconnected.wait(10)


def test_mqtt5_refusal_carries_reason_code_and_string(mqtt_client: Client,
                                                      device: HubDevice,
                                                      iothub_standin: Hub) -> None:
    packet = raw_connect(iothub_standin, device.device_id,
                         topics.username(device.host_name, device.device_id),
                         device.token(-5), level=5)
    assert packet[:2] == b"\x20" + bytes([len(packet) - 2])
    assert packet[3] == 0x87  # Not authorized
    assert b"expired" in packet
    client = mqtt_client(device, protocol=mqtt.MQTTv5)
    assert client.connect() == 0  # and a good token works on 5.0 too


def test_token_expiry_closes_the_connection(mqtt_client: Client, device: HubDevice,
                                            iothub_standin: Hub) -> None:
    client = mqtt_client(device, token=device.token(2))
    assert client.connect() == 0
    assert client.disconnected.wait(6), "the front did not cut the connection at 'se'"
    assert iothub_standin.counters()["mqtt.expired"] >= 1


# ------------------------------------------------------------------------------ C2D


def test_c2d_is_delivered_and_completed_by_the_puback(mqtt_client: Client, device: HubDevice,
                                                      iothub_standin: Hub) -> None:
    client = mqtt_client(device, manual_ack=True)
    assert client.connect() == 0
    assert client.subscribe(topics.c2d_subscription(device.device_id)) == [1]
    sent = device.send_c2d(b"reboot", {"reason": "update", "empty": ""}, correlation_id="c 1",
                           content_type="text/plain", ack="full")
    message = client.next_message()
    parsed = topics.parse_c2d_topic(message.topic, device_id=device.device_id)
    assert message.payload == b"reboot"
    assert parsed.bag.system.message_id == sent.message_id
    assert parsed.bag.system.correlation_id == "c 1"
    assert parsed.bag.system.content_type == "text/plain"
    assert parsed.bag.system.ack == "full"
    assert parsed.bag.system.to == f"/devices/{device.device_id}/messages/devicebound"
    assert parsed.bag.application == {"reason": "update", "empty": ""}
    # not acknowledged yet: still locked
    assert iothub_standin.registry.c2d_message(sent.message_id).state is C2DState.DELIVERED
    client.client.ack(message.mid, message.qos)
    done = iothub_standin.wait_c2d(sent.message_id)
    assert done.state is C2DState.COMPLETED and done.surface is Surface.MQTT


def test_c2d_waits_for_the_subscription_and_survives_a_persistent_reconnect(
        mqtt_client: Client, device: HubDevice, iothub_standin: Hub) -> None:
    early = device.send_c2d(b"queued before connect")
    client = mqtt_client(device, clean_session=False)
    assert client.connect() == 0
    assert client.subscribe(topics.c2d_subscription(device.device_id)) == [1]
    assert client.next_message().payload == b"queued before connect"
    iothub_standin.wait_c2d(early.message_id)
    client.close()
    iothub_standin.wait_for(lambda: device.device_id not in iothub_standin.mqtt_connected())

    offline = device.send_c2d(b"sent while offline")
    assert iothub_standin.registry.c2d_message(offline.message_id).state is C2DState.ENQUEUED
    again = mqtt_client(device, clean_session=False)
    assert again.connect() == 0 and again.session_present
    # no SUBSCRIBE: the persistent session still has it (what azure-iot-device relies on)
    assert again.next_message().payload == b"sent while offline"
    assert iothub_standin.wait_c2d(offline.message_id).state is C2DState.COMPLETED


def test_c2d_unacknowledged_on_a_clean_session_is_requeued(mqtt_client: Client,
                                                           device: HubDevice,
                                                           iothub_standin: Hub) -> None:
    client = mqtt_client(device, manual_ack=True)
    assert client.connect() == 0
    client.subscribe(topics.c2d_subscription(device.device_id))
    sent = device.send_c2d(b"never acked")
    client.next_message()
    client.close()
    iothub_standin.wait_c2d(sent.message_id, states=[C2DState.ENQUEUED])
    again = mqtt_client(device)
    assert again.connect() == 0
    again.subscribe(topics.c2d_subscription(device.device_id))
    assert again.next_message().payload == b"never acked"
    assert iothub_standin.wait_c2d(sent.message_id).state is C2DState.COMPLETED


# ------------------------------------------------------------------------------ scope


@pytest.mark.parametrize("action", ["subscribe-other", "subscribe-wildcard", "publish-other",
                                    "publish-qos2"])
def test_a_device_cannot_use_another_devices_topics(action: str, mqtt_client: Client,
                                                    device: HubDevice,
                                                    iothub_standin: Hub) -> None:
    victim = iothub_standin.register_device()
    listener = mqtt_client(victim)
    assert listener.connect() == 0
    listener.subscribe(topics.c2d_subscription(victim.device_id))
    intruder = mqtt_client(device)
    assert intruder.connect() == 0
    before = iothub_standin.counters().get("mqtt.scope_violations", 0)
    if action == "subscribe-other":
        intruder.client.subscribe(topics.c2d_subscription(victim.device_id), 1)
    elif action == "subscribe-wildcard":
        intruder.client.subscribe("devices/+/messages/devicebound/#", 1)
    elif action == "publish-other":
        intruder.client.publish(f"devices/{victim.device_id}/messages/events/", b"spoof", 1)
    else:
        intruder.client.publish(f"devices/{device.device_id}/messages/events/", b"q2", 2)
    assert intruder.disconnected.wait(10), "IoT Hub closes the connection of such a device"
    assert iothub_standin.counters()["mqtt.scope_violations"] == before + 1
    # the victim is unaffected and nothing leaked: its next C2D reaches only the victim
    marker = victim.send_c2d(b"for the victim only")
    assert listener.next_message().payload == b"for the victim only"
    assert iothub_standin.wait_c2d(marker.message_id).state is C2DState.COMPLETED
    assert victim.d2c() == [] and device.d2c() == []


def test_broker_acl_backs_the_front_up(device: HubDevice, iothub_standin: Hub) -> None:
    """Even a client that reached the private broker directly only gets its own C2D."""
    victim = iothub_standin.register_device()
    received: list[str] = []
    two_arrived = threading.Event()
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message.topic)
        if len(received) >= 2:
            two_arrived.set()

    direct = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device.device_id)
    direct.on_subscribe = lambda *args: subscribed.set()
    direct.on_message = on_message
    broker = iothub_standin._mqtt.broker  # type: ignore[union-attr]
    direct.connect("127.0.0.1", broker.port)
    direct.loop_start()
    try:
        direct.subscribe("devices/#", 1)
        assert subscribed.wait(10)
        other = victim.send_c2d(b"not yours")  # enqueued only: the victim is not connected
        own_topic = topics.c2d_topic(device.device_id,
                                     system=SystemProperties(message_id="direct"))
        iothub_standin._mqtt.client.publish(own_topic, b"x", qos=1)  # type: ignore[union-attr]
        iothub_standin._mqtt.client.publish(  # type: ignore[union-attr]
            topics.c2d_topic(victim.device_id, system=SystemProperties(message_id="leak")),
            b"y", qos=1)
        iothub_standin._mqtt.client.publish(own_topic, b"z", qos=1)  # type: ignore[union-attr]
        assert two_arrived.wait(10)
        # x and z arrived in order, so y (published between them) was dropped by the ACL
        assert len(received) == 2
        assert all(f"devices/{device.device_id}/" in topic for topic in received)
        assert iothub_standin.registry.c2d_message(other.message_id).state is C2DState.ENQUEUED
    finally:
        direct.disconnect()
        direct.loop_stop()


# ------------------------------------------------------------------------------ $iothub


def test_iothub_topics_are_scoped_per_device(mqtt_client: Client, device: HubDevice,
                                             iothub_standin: Hub) -> None:
    neighbour = iothub_standin.register_device()
    a, b = mqtt_client(device), mqtt_client(neighbour)
    for client in (a, b):
        assert client.connect() == 0
        client.subscribe("$iothub/twin/res/#")
        client.subscribe("$iothub/methods/POST/#")
    a.publish("$iothub/twin/PATCH/properties/reported/?$rid=1", json.dumps({"fw": "1.2"}))
    reply = a.next_message()
    assert reply.topic.startswith("$iothub/twin/res/204/?$rid=1&$version=2")
    b.publish("$iothub/twin/GET/?$rid=7", b" ")
    twin = b.next_message()
    assert twin.topic == "$iothub/twin/res/200/?$rid=7"
    assert "fw" not in json.loads(twin.payload)["reported"]  # a's patch stayed a's
    assert iothub_standin.twin(device.device_id)["reported"]["fw"] == "1.2"

    answered = threading.Event()

    def answer(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic.startswith("$iothub/methods/POST/reboot/"):
            rid = message.topic.split("$rid=")[1]
            client.publish(f"$iothub/methods/res/200/?$rid={rid}", b'{"ok": true}', 1)
            answered.set()

    a.client.on_message = answer
    assert iothub_standin.invoke_method(device.device_id, "reboot", {"delay": 1}) == \
        (200, {"ok": True})
    assert answered.is_set()
    assert b.messages.empty()  # the method call never reached the neighbour
