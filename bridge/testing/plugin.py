"""pytest plugin: an Azure IoT Hub stand-in for the test session, and a fresh device per test.

Fixtures:

``iothub_standin`` (session)
    A started `bridge.testing.hub.Hub` (AMQP and MQTT surfaces on free 127.0.0.1 ports, TLS
    with a throw-away CA); stopped at the end of the session.
``iothub_device`` (function)
    A newly registered `HubDevice` named after the test: ``connection_string``, ``device_id``,
    ``key``, ``token(ttl)``, ``amqp_url``, ``mqtt_host``/``mqtt_port``, ``ca_file``, and the
    hub side: ``d2c()``, ``wait_d2c(count)``, ``send_c2d(body, properties)``, ``c2d()``.

Enable it with the ``pytest11`` entry point the package declares, with ``-p
bridge.testing.plugin``, with ``pytest_plugins = ["bridge.testing.plugin"]`` in the top-level
conftest, or (in any conftest) ``from bridge.testing.plugin import iothub_device,
iothub_standin``. Example::

    def test_telemetry_reaches_the_hub(iothub_device):
        run_my_agent(iothub_device.connection_string, ca_file=iothub_device.ca_file)
        [message] = iothub_device.wait_d2c(1)
        assert message.properties["kind"] == "reading"

Options: ``--iothub-max-delivery-count N`` (default 10) and ``--iothub-host NAME`` (the
``HostName`` of connection strings; default ``localhost``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the stand-in (and proton) load only when a fixture is requested
    from bridge.testing.hub import Hub, HubDevice


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("iothub-standin", "Azure IoT Hub stand-in (bridge.testing)")
    group.addoption("--iothub-max-delivery-count", type=int, default=10,
                    help="C2D releases before a message is dead-lettered (default 10).")
    group.addoption("--iothub-host", default="localhost",
                    help="HostName in the stand-in's connection strings (default localhost).")


@pytest.fixture(scope="session")
def iothub_standin(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One IoT Hub stand-in for the whole session (its files stay in pytest's tmp dir)."""
    from bridge.testing.hub import Hub

    # getoption defaults: the fixtures also work when imported into a conftest without the
    # plugin (and so its options) being registered.
    hub = Hub(request.config.getoption("--iothub-host", "localhost"),
              max_delivery_count=request.config.getoption("--iothub-max-delivery-count", 10),
              directory=tmp_path_factory.mktemp("iothub-standin"))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def iothub_device(iothub_standin: Hub, request: pytest.FixtureRequest) -> HubDevice:
    """A device registered for this test only (id: the test's name plus a random suffix)."""
    return iothub_standin.register_device(device_id_for(request.node.name))


def device_id_for(test_name: str) -> str:
    """A valid, unique device id derived from a test name."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-.")[:80] or "device"
    return f"{base}-{uuid.uuid4().hex[:8]}"
