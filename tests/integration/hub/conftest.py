"""Fixtures for the IoT Hub stand-in's tests.

The plugin's fixtures (``iothub_standin``, session-scoped, and ``iothub_device``) are imported
rather than enabled with ``pytest_plugins``, which pytest refuses outside the top-level
conftest; once the ``pytest11`` entry point is registered these imports simply shadow it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.testing.hub import Hub, HubDevice
from bridge.testing.plugin import iothub_device, iothub_standin
from tests.conftest import register_secret
from tests.integration.hub.clients import AmqpDevice, MqttDevice

__all__ = ["iothub_device", "iothub_standin"]


@pytest.fixture
def amqp_client(iothub_standin: Hub) -> Iterator[Callable[..., AmqpDevice]]:
    """Factory of raw proton clients on the session hub, closed at teardown."""
    made: list[AmqpDevice] = []

    def make(hub: Hub | None = None, **kwargs: str) -> AmqpDevice:
        client = AmqpDevice(hub or iothub_standin, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        with contextlib.suppress(Exception):  # the hub may have closed it already
            client.close()


@pytest.fixture
def mqtt_client(iothub_standin: Hub) -> Iterator[Callable[..., MqttDevice]]:
    """Factory of raw paho clients (not yet connected), closed at teardown."""
    made: list[MqttDevice] = []

    def make(device: HubDevice, hub: Hub | None = None, **kwargs: Any) -> MqttDevice:
        client = MqttDevice(hub or iothub_standin, device, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def device(iothub_device: HubDevice) -> HubDevice:
    """`iothub_device` with its key registered with the suite's secret-leak guard."""
    register_secret(iothub_device.key)
    return iothub_device
