"""The relay's stable ids and the ledger: pure functions and a file, table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import Message
from bridge.migration.relay.ids import ID_PROPERTY, stable_id, with_properties
from bridge.migration.relay.ledger import Ledger

A = "amqp:/queue/a"

# (first, second, same id?)
CASES = [
    ((A, Message.data(b"x", {"seq": 1})), (A, Message.data(b"x", {"seq": 1})), True),
    ((A, Message.data(b"x", {"seq": 1})), (A, Message.data(b"x", {"seq": 2})), False),
    ((A, Message.data(b"x")), (A, Message.data(b"y")), False),
    ((A, Message.data(b"x")), ("amqp:/queue/b", Message.data(b"x")), False),
    ((A, Message.data(b"x")), (A, Message.value("x")), False),  # data vs value section
    ((A, Message.data(b"x", {"n": 1})), (A, Message.data(b"x", {"n": "1"})), False),
    ((A, Message.data(b"x", {"n": 1})), (A, Message.data(b"x", {"n": True})), False),
    ((A, Message.data(b"x", {"a": 1, "b": 2})), (A, Message.data(b"x", {"b": 2, "a": 1})), True),
    ((A, Message.data(b"ab", {"c": 1})), (A, Message.data(b"a", {"bc": 1})), False),
    ((A, Message([1, {"k": "v"}])), (A, Message([1, {"k": "v"}])), True),  # AMQP value body
    # an id the message carries is kept, whatever the source and body
    ((A, Message.data(b"x", {ID_PROPERTY: "id-1"})),
     ("mqtt:/t", Message.data(b"y", {ID_PROPERTY: "id-1"})), True),
]


@pytest.mark.parametrize(("first", "second", "same"), CASES)
def test_stable_id(first: tuple[str, Message], second: tuple[str, Message], same: bool) -> None:
    assert (stable_id(*first) == stable_id(*second)) is same


def test_stable_id_is_32_hex_digits_and_deterministic() -> None:
    ident = stable_id(A, Message.data(b"body"))
    assert len(ident) == 32 and int(ident, 16) >= 0
    assert ident == stable_id(A, Message.data(b"body"))
    assert stable_id(A, Message.data(b"", {ID_PROPERTY: ""})) != ""  # empty id: derived


def test_with_properties_adds_and_keeps_the_body() -> None:
    message = Message.data(b"b", {"k": 1})
    tagged = with_properties(message, {ID_PROPERTY: "x"})
    assert tagged.body() is message.body() and tagged.kind is message.kind
    assert tagged.properties() == {"k": 1, ID_PROPERTY: "x"}
    assert message.properties() == {"k": 1}


def test_ledger_survives_a_reopen_and_tells_what_was_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    ledger = Ledger(path)
    for key in ("a", "b", "c"):
        ledger.sent(key)
    ledger.confirm("a")
    ledger.confirm("b")
    ledger.flush()  # no close: as if killed
    again = Ledger(path)
    assert again.is_confirmed("a") and again.is_confirmed("b")
    assert not again.is_confirmed("c")
    assert again.unconfirmed_at_start == {"c"}


def test_ledger_ignores_a_torn_line_and_unknown_records(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    path.write_text("C a\nX b\nC\nC c d\nS e\nC e\nC f")  # "C f" has no newline: still whole
    ledger = Ledger(path)
    assert [k for k in ("a", "b", "c", "e", "f") if ledger.is_confirmed(k)] == ["a", "e", "f"]
    assert ledger.unconfirmed_at_start == frozenset()


def test_ledger_is_bounded_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    ledger = Ledger(path, capacity=10)
    for n in range(100):
        ledger.sent(f"k{n}")
        ledger.confirm(f"k{n}")
        ledger.flush()
    assert len(ledger.confirmed) == 10
    assert ledger.is_confirmed("k99") and not ledger.is_confirmed("k89")
    assert len(path.read_text().splitlines()) <= 2 * 10 + 2  # rewritten, not growing
    ledger.close()
    assert Ledger(path, capacity=10).is_confirmed("k95")


def test_ledger_unflushed_records_are_not_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    ledger = Ledger(path)
    ledger.sent("a")
    ledger.confirm("a")
    assert "C a" not in path.read_text()  # the relay flushes before it settles
    ledger.flush()
    assert "C a" in path.read_text().splitlines()
