"""Property-based tests over the public API: bad input gets a clear error, the agent goes on."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import (
    AddressError,
    Agent,
    ClosedError,
    ConfigError,
    Message,
    Receiver,
    Sender,
    Settings,
)
from tests.conftest import leaked_secrets, register_secret

anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=20), st.binary(max_size=20),
                     st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
keys = st.one_of(st.text(max_size=20), st.integers(), st.none(), st.binary(max_size=5))

_agent = Agent(Settings(memory={"broker": f"bad-input-{uuid.uuid4().hex}"}))
_conn = _agent.amqp.openconnection("amqps://bad-input", lambda e, d: None)
_session = _conn.opensession()
_pipe: dict[str, Any] = {}


def _ready() -> tuple[Any, list[Message]]:
    if not _pipe:
        received: list[Message] = []
        receiver = _session.openreceiver("/roundtrip", None,
                                         lambda ds: received.extend(d.message() for d in ds))
        sender = _session.opensender("/roundtrip")
        assert _agent.run_until(lambda: sender.isopen() and receiver.isopen(), 5)
        _pipe.update(sender=sender, receiver=receiver, received=received)
    return _pipe["sender"], _pipe["received"]


def _agent_still_works() -> None:
    sender, received = _ready()
    before = len(received)
    sender.createtransfer(_agent.amqp.createmessage("alive")).sendasync()
    assert _agent.run_until(lambda: len(received) > before, 5)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, anything, max_size=6))
def test_property_tables_normalise_or_raise_type_error(table: dict[Any, Any]) -> None:
    try:
        message = _agent.amqp.createmessage("x", table)
    except TypeError as exc:
        assert "properties" in str(exc)
        assert any(not isinstance(k, str) for k in table)
        return
    for key, value in message.properties().items():
        assert isinstance(key, str)
        assert type(value) in (int, float, bool, str)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=10), st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False), st.text(max_size=30)), max_size=6),
    st.one_of(st.text(max_size=50), st.binary(max_size=50)))
def test_typed_properties_and_bodies_round_trip_exactly(table: dict[str, Any],
                                                        body: str | bytes) -> None:
    sender, received = _ready()
    before = len(received)
    message = (_agent.amqp.createmessage(body, table) if isinstance(body, str)
               else _agent.amqp.createbinarymessage(body, table))
    sender.createtransfer(message).sendasync()
    assert _agent.run_until(lambda: len(received) > before, 5)
    got = received[-1]
    assert got == message
    for key, value in table.items():
        assert type(got.properties()[key]) is type(value)


@settings(max_examples=150)
@given(st.one_of(anything, st.text(alphabet="/+#$\x00 ab", max_size=12)))
def test_paths_are_accepted_or_refused_clearly(path: Any) -> None:
    try:
        link = _session.opensender(path)
    except (TypeError, ValueError, AddressError) as exc:
        assert "path" in str(exc)
        return
    assert isinstance(link, Sender)
    link.close()


@settings(max_examples=100)
@given(anything, anything)
def test_bodies_and_callbacks(body: Any, callback: Any) -> None:
    try:
        _agent.amqp.createmessage(body)
    except TypeError as exc:
        assert "body" in str(exc) and not isinstance(body, str)
    try:
        _agent.amqp.createbinarymessage(body)
    except TypeError as exc:
        assert "body" in str(exc)
    try:
        receiver = _session.openreceiver("/cb", callback, None)
    except TypeError as exc:
        assert "eventCallback" in str(exc) and not callable(callback)
    else:
        assert isinstance(receiver, Receiver)
        receiver.close()
    sender, _ = _ready()
    try:
        sender.createtransfer(body)
    except TypeError as exc:
        assert "message" in str(exc)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["backend", "agent_id", "limits", "memory", "mqtt",
                                        "amqp", "close_timeout", "log_level", "bogus",
                                        "amqp_enabled", "routes"]), anything, max_size=4))
def test_settings_are_valid_or_one_readable_config_error(values: dict[str, Any]) -> None:
    secret = register_secret(f"secret-{uuid.uuid4().hex}")
    values = {**values, "mqtt": {"password": secret}} if "mqtt" not in values else values
    try:
        Settings(**values)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and ":" in p for p in exc.problems)
        assert secret not in str(exc)


def test_closed_objects_raise_closed_error_and_the_agent_goes_on() -> None:
    session = _conn.opensession()
    sender = session.opensender("/closing")
    session.close()
    for call in (lambda: session.opensender("/x"), lambda: session.openreceiver("/x"),
                 lambda: sender.createtransfer(_agent.amqp.createmessage("x"))):
        try:
            call()
        except ClosedError as exc:
            assert "closed" in str(exc)
        else:
            raise AssertionError("expected ClosedError")
    _agent_still_works()


def test_no_secret_was_logged_so_far() -> None:
    assert leaked_secrets() == []
