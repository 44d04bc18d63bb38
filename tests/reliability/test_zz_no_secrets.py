"""No secret used by the suite appears in any log line captured so far (issue 9, part 3).

tests/conftest.py records every ``bridge`` log line of the whole run (at DEBUG) and checks them
again at the end of the session; this test makes the check an explicit, named result at the
end of the reliability suite (``zz``: collected last in this directory), after the restarts,
proxies, garbage and refused connections above have logged all they log. So that it never
passes vacuously, it first makes the bridge log around secrets itself: a password accepted, a
password refused, a password in a URL, a password refused before connecting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge import Agent
from tests.conftest import KNOWN_SECRETS, _recorder, leaked_secrets, register_secret
from tests.support.mosquitto import Mosquitto

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

PASSWORD = register_secret("zz-right-secret-91")
WRONG = register_secret("zz-wrong-secret-17")


def _first_event(agent: Agent, url: str) -> str:
    events: list[str] = []
    conn = agent.amqp.openconnection(url, lambda e, d: events.append(e))
    assert agent.run_until(lambda: bool(events), 15)  # (conn held: a dropped one is closed)
    del conn
    return events[0]


def test_no_registered_secret_was_logged(mosquitto: Callable[..., Mosquitto],
                                         agents: Callable[..., Agent], tmp_path: Path) -> None:
    logging.getLogger("bridge").setLevel(logging.DEBUG)  # as the suite-wide recorder runs it
    lines_before = len(_recorder.lines)
    broker = mosquitto(users={"dev": PASSWORD}, allow_anonymous=False)
    right = agents(backend="mqtt", mqtt={"url": broker.url, "username": "dev",
                                         "password": PASSWORD})
    assert _first_event(right, "amqps://hub") == "CONNECTION_OPEN"
    wrong = agents(backend="mqtt", mqtt={"url": f"mqtt://dev:{WRONG}@127.0.0.1:{broker.port}"})
    assert _first_event(wrong, "amqps://hub") == "CONNECTION_ERROR"
    far = agents(backend="mqtt", mqtt={"url": "mqtt://192.0.2.1", "password": PASSWORD})
    assert _first_event(far, "amqps://hub") == "CONNECTION_ERROR"  # refused before connecting
    rabbit = agents(backend="amqp")
    assert _first_event(rabbit, f"amqp://guest:{WRONG}@127.0.0.1:5672") == "CONNECTION_ERROR"
    assert len(_recorder.lines) > lines_before  # those connections were logged ...

    assert {PASSWORD, WRONG} <= KNOWN_SECRETS
    leaks = leaked_secrets()
    assert leaks == [], [f"{secret[:2]}... in {line[:160]}" for secret, line in leaks[:10]]
