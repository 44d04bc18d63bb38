"""Settlement and receiver credit on a real RabbitMQ queue."""

from __future__ import annotations

import time
from typing import Any

import pytest
from proton import Message as ProtonMessage

from .conftest import Harness
from .rabbit import URL, RawClient, consumers, queue_address, queue_depth, unacknowledged

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("rabbitmq")]


def test_released_is_redelivered_rejected_is_gone(harness: Harness) -> None:
    agent = harness.agent()
    _conn, _, session, _ = harness.open(agent, URL)
    path = queue_address("settle")
    seen: list[str] = []

    def on_messages(deliveries: list[Any]) -> None:
        for delivery in deliveries:
            body = delivery.message().body()
            seen.append(body)
            if body == "release-me" and seen.count(body) == 1:
                delivery.release()
            elif body == "reject-me":
                delivery.reject()
            else:
                delivery.accept()

    receiver, _ = harness.link(agent, session, "receiver", path, on_messages)
    sender, _ = harness.link(agent, session, "sender", path)
    for body in ("release-me", "reject-me", "marker"):
        sender.createtransfer(agent.amqp.createmessage(body)).sendasync()
    harness.wait(agent, lambda: seen.count("release-me") == 2 and "marker" in seen, "redelivery")
    receiver.close()
    harness.wait(agent, lambda: consumers(path) == 0, "receiver detached on the broker")
    assert seen.count("reject-me") == 1
    assert queue_depth(path) == 0  # nothing requeued: the rejected message is gone


def test_prefetch_bounds_unsettled_deliveries_and_settling_grants_credit(
        harness: Harness) -> None:
    agent = harness.agent(prefetch=2)
    _conn, _, session, _ = harness.open(agent, URL)
    path = queue_address("prefetch")
    held: list[Any] = []
    receiver, _ = harness.link(agent, session, "receiver", path, held.extend)
    sender, _ = harness.link(agent, session, "sender", path)
    done: list[int] = []
    for i in range(5):
        sender.createtransfer(agent.amqp.createmessage(f"m{i}")).sendasync(
            lambda i=i: done.append(i))
    harness.wait(agent, lambda: len(done) == 5 and len(held) == 2, "two deliveries")
    agent.run(timeout=0.3)  # nothing more may arrive while two are unsettled
    assert [d.message().body() for d in held] == ["m0", "m1"]
    for delivery in held[:2]:
        delivery.accept()  # each settlement gives one credit back
    harness.wait(agent, lambda: len(held) == 4, "two more")
    for delivery in held[2:]:
        delivery.accept()
    harness.wait(agent, lambda: len(held) == 5, "the last one")
    held[4].accept()
    assert [d.message().body() for d in held] == [f"m{i}" for i in range(5)]
    assert receiver.isopen()


def test_unsettled_delivery_returns_to_the_queue_when_the_receiver_closes(
        harness: Harness) -> None:
    agent = harness.agent()
    _conn, _, session, _ = harness.open(agent, URL)
    path = queue_address("requeue")
    held: list[Any] = []
    first, _ = harness.link(agent, session, "receiver", path, held.extend)
    sender, _ = harness.link(agent, session, "sender", path)
    sender.createtransfer(agent.amqp.createmessage("kept")).sendasync()
    harness.wait(agent, lambda: len(held) == 1, "delivery held unsettled")
    first.close()  # detach with the delivery unsettled: the broker requeues it
    again: list[str] = []

    def take(deliveries: list[Any]) -> None:
        for delivery in deliveries:
            again.append(delivery.message().body())
            delivery.accept()

    second, _ = harness.link(agent, session, "receiver", path, take)
    harness.wait(agent, lambda: again == ["kept"], "redelivery to the new receiver")
    held[0].accept()  # settling on a closed receiver is a no-op
    assert second.isopen()


def _wait_broker(predicate: Any, what: str, timeout: float = 20.0) -> None:
    """Poll the broker (rabbitmqctl takes about a second per call) until *predicate* holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"


@pytest.mark.parametrize("keep_running", [True, False], ids=["agent-running", "run-returned"])
def test_batched_settlements_reach_the_broker_without_more_traffic(
        harness: Harness, keep_running: bool) -> None:
    """Settlements made on the dispatcher are handed to the reactor in batches (up to 16 or
    5 ms): three accepted messages, then silence, must still be settled on the broker - by the
    batch timer while the agent runs, or when run_until returns before the timer is due."""
    agent = harness.agent()  # prefetch 100: batches of up to 16
    _conn, _, session, _ = harness.open(agent, URL)
    path = queue_address("batched-settle")
    with RawClient() as raw:
        for i in range(3):
            raw.send(path, ProtonMessage(body=f"m{i}"))
    seen: list[str] = []

    def on_messages(deliveries: list[Any]) -> None:
        for delivery in deliveries:
            seen.append(delivery.message().body())
            delivery.accept()

    # held: a receiver the application drops is closed (its facade was collected)
    receiver, _ = harness.link(agent, session, "receiver", path, on_messages)
    harness.wait(agent, lambda: len(seen) == 3, "three deliveries")
    if keep_running:
        agent.run(timeout=0.2)  # far past the batch delay; no other traffic meanwhile
    # run-returned: the agent is not run again; leaving run_until handed the batch over
    _wait_broker(lambda: unacknowledged(path) == 0, "the three settlements on the broker")
    assert queue_depth(path) == 0
    assert sorted(seen) == ["m0", "m1", "m2"]
    assert receiver.isopen()
