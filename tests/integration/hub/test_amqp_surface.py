"""The stand-in's AMQP surface with a raw proton client: CBS put-token, links, D2C and C2D."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Iterator

import pytest
from proton import ConnectionException, Message
from proton.utils import ConnectionClosed

from bridge.backends.iothub import sas
from bridge.testing.hub import C2DOutcome, C2DState, Hub, HubDevice, Surface
from tests.integration.hub.clients import AmqpDevice

pytestmark = pytest.mark.integration

Client = Callable[..., AmqpDevice]


def events(device: HubDevice) -> str:
    return f"/devices/{device.device_id}/messages/events"


def devicebound(device: HubDevice) -> str:
    return f"/devices/{device.device_id}/messages/devicebound"


def audience(device: HubDevice) -> str:
    return f"{device.host_name}/devices/{device.device_id}"


def other_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


# ------------------------------------------------------------------------------ put-token


def test_put_token_ok_then_d2c_is_accepted_and_visible(amqp_client: Client,
                                                       device: HubDevice) -> None:
    client = amqp_client()
    reply = client.put_token(device.token(), audience(device), message_id="req-1")
    assert reply.properties == {"status-code": 200, "status-description": "OK"}
    assert reply.correlation_id == "req-1"
    assert reply.body is None

    sender = client.sender(events(device))
    sender.send(Message(body="hello", properties={"n": 7, "unit": "celsius"}, id="m-1"))
    binary = Message(body=b"\x00\x01raw", inferred=True, content_type="application/octet-stream")
    sender.send(binary)  # BlockingSender.send returns once the hub accepted

    first, second = device.wait_d2c(2)
    assert (first.body, first.properties, first.surface) == (
        "hello", {"n": 7, "unit": "celsius"}, Surface.AMQP)
    assert first.system["message-id"] == "m-1"
    assert first.system["body-section"] == "amqp-value"
    assert first.system["iothub-connection-device-id"] == device.device_id
    assert second.body == b"\x00\x01raw"
    assert second.system["body-section"] == "data"
    assert second.system["content-type"] == "application/octet-stream"


def test_the_sdk_token_type_and_a_url_address_are_accepted(amqp_client: Client,
                                                          device: HubDevice) -> None:
    client = amqp_client()
    reply = client.put_token(device.token(), audience(device), token_type=sas.CBS_TOKEN_TYPE)
    assert reply.properties["status-code"] == 200
    sender = client.sender(f"amqps://{device.host_name}{events(device)}")
    sender.send(Message(body="via url"))
    assert device.wait_d2c(1)[0].body == "via url"


@pytest.mark.parametrize("case", ["wrong-key", "expired", "other-device", "unknown-device",
                                  "tampered"])
def test_put_token_refused_with_401(case: str, amqp_client: Client, device: HubDevice,
                                    iothub_standin: Hub) -> None:
    other = iothub_standin.register_device()
    host = device.host_name
    token, name, reason = {
        "wrong-key": (sas.generate_device_token(host, device.device_id, other_key()),
                      audience(device), "signature"),
        "expired": (device.token(-30), audience(device), "expired"),
        "other-device": (other.token(), audience(device), "signature"),
        "unknown-device": (sas.generate_device_token(host, "nobody-here", other_key()),
                           f"{host}/devices/nobody-here", "not registered"),
        "tampered": (device.token().replace("&se=", "&se=9"), audience(device), "signature"),
    }[case]
    client = amqp_client()
    reply = client.put_token(token, name)
    assert reply.properties["status-code"] == 401
    assert reason in reply.properties["status-description"]
    # ... and the refused token authorises nothing
    assert client.refused("sender", events(device)).name == "amqp:unauthorized-access"
    assert iothub_standin.counters()["amqp.put_token.401"] >= 1


def test_malformed_put_token_gets_400(amqp_client: Client, device: HubDevice) -> None:
    client = amqp_client()
    assert client.put_token(device.token(), "").properties["status-code"] == 400
    reply = client.put_token(device.token(), audience(device), token_type="jwt")
    assert reply.properties["status-code"] == 400
    assert "token type" in reply.properties["status-description"]


def test_policy_token_authorises_a_device(amqp_client: Client, device: HubDevice,
                                          iothub_standin: Hub) -> None:
    token = sas.generate_token(device.host_name, iothub_standin.policy_key("iothubowner"),
                               int(time.time()) + 600, key_name="iothubowner")
    client = amqp_client()
    assert client.put_token(token, audience(device)).properties["status-code"] == 200
    client.sender(events(device)).send(Message(body="as policy"))
    assert device.wait_d2c(1)[0].body == "as policy"


# ------------------------------------------------------------------------------ links


def test_links_without_put_token_are_detached_unauthorized(amqp_client: Client,
                                                           device: HubDevice,
                                                           iothub_standin: Hub) -> None:
    client = amqp_client()
    for role, address in (("sender", events(device)), ("receiver", devicebound(device))):
        condition = client.refused(role, address)
        assert condition.name == "amqp:unauthorized-access"
        assert "Token Invalid" in condition.description
    # a token for one device does not open another device's links
    client.authorise(device)
    other = iothub_standin.register_device()
    assert client.refused("sender", events(other)).name == "amqp:unauthorized-access"
    assert client.refused("receiver", "/devices/x/twin").name == "amqp:not-found"
    assert device.d2c() == []


def test_token_expiry_detaches_links_and_renewal_reopens(amqp_client: Client,
                                                        device: HubDevice) -> None:
    client = amqp_client()
    client.authorise(device, ttl=2)
    sender = client.sender(events(device))
    receiver = client.receiver(devicebound(device))
    sender.send(Message(body="before expiry"))
    condition = client.wait_detached(sender, timeout=6)
    assert condition.name == "amqp:unauthorized-access"
    assert "Token Invalid" in condition.description and "expired" in condition.description
    assert client.wait_detached(receiver).name == "amqp:unauthorized-access"

    client.authorise(device)  # renewal on the same $cbs links, same connection
    client.sender(events(device)).send(Message(body="after renewal"))
    assert [m.body for m in device.wait_d2c(2)] == ["before expiry", "after renewal"]


# ------------------------------------------------------------------------------ C2D


@pytest.fixture
def strict_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub that dead-letters on the third release (request it before ``amqp_client``, so
    the clients close while it still answers)."""
    with Hub(max_delivery_count=3, directory=tmp_path_factory.mktemp("strict-hub")) as hub:
        yield hub


def test_c2d_accept_completes(amqp_client: Client, device: HubDevice,
                              iothub_standin: Hub) -> None:
    client = amqp_client()
    client.authorise(device)
    receiver = client.receiver(devicebound(device))
    sent = device.send_c2d(b"reboot", {"reason": "update"}, correlation_id="corr-9",
                           content_type="text/plain", ack="full")
    message = receiver.receive(10)
    assert bytes(message.body) == b"reboot"
    assert message.id == sent.message_id and message.correlation_id == "corr-9"
    assert message.address == devicebound(device)
    assert message.properties == {"reason": "update", "iothub-ack": "full"}
    assert message.content_type == "text/plain"
    assert message.delivery_count == 0
    assert iothub_standin.registry.c2d_message(sent.message_id).state is C2DState.DELIVERED
    receiver.accept()
    done = client.pump_until(lambda: iothub_standin.registry.c2d_message(sent.message_id)
                             if iothub_standin.registry.c2d_message(sent.message_id).state
                             is C2DState.COMPLETED else None)
    assert [s.outcome for s in done.settlements] == [C2DOutcome.ACCEPTED]


def test_c2d_reject_dead_letters(amqp_client: Client, device: HubDevice,
                                 iothub_standin: Hub) -> None:
    client = amqp_client()
    client.authorise(device)
    receiver = client.receiver(devicebound(device))
    sent = device.send_c2d("bad command")
    assert receiver.receive(10).body == "bad command"  # a str body travels as amqp-value
    receiver.reject()
    done = client.pump_until(lambda: _in_state(iothub_standin, sent.message_id,
                                               C2DState.DEAD_LETTERED))
    assert done.dead_letter_reason == "rejected"


def test_c2d_release_redelivers_until_the_max_delivery_count(strict_hub: Hub,
                                                             amqp_client: Client) -> None:
    device = strict_hub.register_device()
    client = amqp_client(strict_hub)
    client.authorise(device)
    receiver = client.receiver(devicebound(device))
    sent = device.send_c2d(b"flaky")
    counts = []
    for _ in range(3):
        message = receiver.receive(10)
        counts.append(message.delivery_count)
        receiver.release(delivered=False)  # plain "released"
    done = client.pump_until(lambda: _in_state(strict_hub, sent.message_id,
                                               C2DState.DEAD_LETTERED))
    assert counts == [0, 1, 2]
    assert done.delivery_count == 3
    assert done.dead_letter_reason == "delivery-count-exceeded"
    assert [s.outcome for s in done.settlements] == [C2DOutcome.RELEASED] * 3
    assert strict_hub.counters()["c2d.dead_lettered"] == 1


def test_c2d_modified_counts_as_release_or_reject(strict_hub: Hub, amqp_client: Client) -> None:
    device = strict_hub.register_device()
    client = amqp_client(strict_hub)
    client.authorise(device)
    receiver = client.receiver(devicebound(device))
    sent = device.send_c2d(b"once")
    receiver.receive(10)
    receiver.release(delivered=True)  # modified(delivery-failed): abandon, count + 1
    assert receiver.receive(10).delivery_count == 1
    delivery = receiver.fetcher.unsettled[0]
    delivery.local.undeliverable = True
    receiver.settle(delivery.MODIFIED)  # modified(undeliverable-here): reject
    done = client.pump_until(lambda: _in_state(strict_hub, sent.message_id,
                                               C2DState.DEAD_LETTERED))
    assert done.dead_letter_reason == "rejected"
    assert [s.outcome for s in done.settlements] == [C2DOutcome.MODIFIED, C2DOutcome.MODIFIED]


def test_unsettled_c2d_is_requeued_when_the_link_goes(amqp_client: Client, device: HubDevice,
                                                      iothub_standin: Hub) -> None:
    client = amqp_client()
    client.authorise(device)
    receiver = client.receiver(devicebound(device))
    sent = device.send_c2d(b"held")
    receiver.receive(10)
    receiver.close()  # detach with the delivery unsettled: the lock is lost
    client.pump_until(lambda: _in_state(iothub_standin, sent.message_id, C2DState.ENQUEUED))
    again = client.receiver(devicebound(device))
    message = again.receive(10)
    assert bytes(message.body) == b"held" and message.delivery_count == 0
    again.accept()
    client.pump_until(lambda: _in_state(iothub_standin, sent.message_id, C2DState.COMPLETED))


def _in_state(hub: Hub, message_id: str, state: C2DState) -> object:
    message = hub.registry.c2d_message(message_id)
    return message if message is not None and message.state is state else None


# ------------------------------------------------------------------------------ SASL PLAIN


def test_sasl_plain_with_a_device_token(amqp_client: Client, device: HubDevice) -> None:
    hub_name = device.host_name.split(".")[0]
    client = amqp_client(user=f"{device.device_id}@sas.{hub_name}", password=device.token())
    client.sender(events(device)).send(Message(body="plain"))  # no put-token needed
    assert device.wait_d2c(1)[0].body == "plain"


def test_sasl_plain_with_a_policy_token(amqp_client: Client, device: HubDevice,
                                        iothub_standin: Hub) -> None:
    token = sas.generate_token(device.host_name, iothub_standin.policy_key("device"),
                               int(time.time()) + 600, key_name="device")
    client = amqp_client(user=f"device@sas.root.{device.host_name}", password=token)
    client.sender(events(device)).send(Message(body="gateway"))
    assert device.wait_d2c(1)[0].body == "gateway"


@pytest.mark.parametrize("case", ["wrong-key", "expired"])
def test_sasl_plain_refused(case: str, amqp_client: Client, device: HubDevice,
                            iothub_standin: Hub) -> None:
    token = (sas.generate_device_token(device.host_name, device.device_id, other_key())
             if case == "wrong-key" else device.token(-5))
    before = iothub_standin.counters().get("amqp.sasl_refused", 0)
    with pytest.raises(ConnectionException):
        amqp_client(user=f"{device.device_id}@sas.{device.host_name}", password=token)
    assert iothub_standin.counters()["amqp.sasl_refused"] == before + 1
    assert iothub_standin.auth_attempts()[-1].kind == ("signature" if case == "wrong-key"
                                                       else "expired")


def test_sasl_plain_connection_closes_when_its_token_expires(amqp_client: Client,
                                                             device: HubDevice) -> None:
    client = amqp_client(user=f"{device.device_id}@sas.{device.host_name}",
                         password=device.token(2))
    client.sender(events(device))
    with pytest.raises(ConnectionClosed) as info:
        client.conn.wait(lambda: False, timeout=6)
    assert info.value.connection.remote_condition.name == "amqp:unauthorized-access"
