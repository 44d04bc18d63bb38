"""``amqp.durable``: durable messages and durable link termini (what survives a broker restart).

Off by default (the legacy behaviour: RabbitMQ declares transient queues for /queue/NAME
links and keeps no message across a restart); the relay's AMQP side turns it on.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from proton import Connection, Terminus
from proton import Message as ProtonMessage

from bridge import Message, Settings
from bridge.backends.amqp import codec
from bridge.backends.amqp.endpoint import connect_options
from bridge.backends.amqp.handler import ConnectionHandler, _SessionState


def test_default_is_off_and_messages_are_not_durable() -> None:
    assert Settings().amqp.durable is False
    options = connect_options(Settings().amqp, "amqp://127.0.0.1", "a", 1)
    assert options.durable is False
    assert codec.message_to_proton(Message.value("x")).durable is False


@pytest.mark.parametrize("message", [Message.value("reading"), Message.data(b"\x00\x01")])
def test_durable_sets_the_header_flag_on_the_wire(message: Message) -> None:
    encoded = codec.message_to_proton(message, durable=True).encode()
    decoded = ProtonMessage()
    decoded.decode(encoded)
    assert decoded.durable is True
    assert codec.message_from_proton(decoded) == message  # nothing else changes


def _handler(durable: bool) -> tuple[ConnectionHandler, Any]:
    settings = Settings(amqp={"durable": durable})
    options = connect_options(settings.amqp, "amqp://127.0.0.1", "a", 1)
    handler = ConnectionHandler(options, events=SimpleNamespace(), close_timeout=1.0)
    handler.conn = Connection()  # no transport: only the endpoint objects are built
    session = SimpleNamespace(id=1, backend_state=None)
    handler.sessions[1] = _SessionState(session, handler.conn.session())  # type: ignore[arg-type]
    return handler, session


@pytest.mark.parametrize("durable", [False, True])
def test_links_attach_with_durable_termini_only_when_on(durable: bool) -> None:
    handler, session = _handler(durable)
    expected = Terminus.CONFIGURATION if durable else Terminus.NONDURABLE
    for link_id, role in ((1, "sender"), (2, "receiver")):
        handle = SimpleNamespace(id=link_id, role=role, path="/queue/q", session=session,
                                 backend_state=None)
        handler.cmd_open_link(handle)  # type: ignore[arg-type]
        link = handler.links[link_id].link
        terminus = link.target if role == "sender" else link.source
        assert terminus.address == "/queue/q"
        assert terminus.durability == expected
