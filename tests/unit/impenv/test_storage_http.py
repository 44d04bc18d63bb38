"""server.save/load (atomic, persistent) and http requests over a real local HTTP server,
their callbacks on the agent's dispatcher."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.agent import Agent
from bridge.impenv import ImpServer, Storage, make_env
from bridge.settings import Settings


def test_save_then_load_round_trips_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "agent.json"
    table = {"count": 3, "name": "x", "nested": {"ok": True, "list": [1, 2.5, None]}}
    assert ImpServer(Storage(path)).save(table) == 0
    assert ImpServer(Storage(path)).load() == table  # a new agent (a restart) sees it
    assert [p.name for p in path.parent.iterdir()] == ["agent.json"]  # no temporary left


def test_load_before_any_save_is_an_empty_table(tmp_path: Path) -> None:
    assert Storage(tmp_path / "none.json").load() == {}
    assert Storage(None).load() == {}


def test_a_failed_save_leaves_the_previous_table(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    storage = Storage(path)
    storage.save({"v": 1})
    with pytest.raises(TypeError, match="blob"):
        storage.save({"v": b"\x00"})
    with pytest.raises(ValueError, match=r"more than 65536 bytes"):
        storage.save({"v": "x" * 70000})
    assert storage.load() == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["agent.json"]


def test_save_wants_a_table_and_load_names_a_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="expected a table"):
        Storage(None).save([1, 2])  # type: ignore[arg-type]
    path = tmp_path / "agent.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"agent\.json is not a saved table"):
        Storage(path).load()


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status = 404 if self.path == "/missing" else 200
        payload = json.dumps({"method": self.command, "path": self.path,
                              "body": body.decode(), "x": self.headers.get("X-Test")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Reply", "yes")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _agent() -> Agent:
    return Agent(Settings(backend="memory", agent_id="http-test"))


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("POST", "a=1"), ("PUT", b"\x01"),
                                              ("DELETE", None)])
def test_sendasync_calls_back_on_the_dispatcher(server_url: str, method: str,
                                                body: Any) -> None:
    agent = _agent()
    http = make_env(agent).http
    seen: list[tuple[dict[str, Any], int]] = []
    request = {"GET": lambda: http.get(f"{server_url}/x", {"X-Test": "1"}),
               "POST": lambda: http.post(f"{server_url}/x", {"X-Test": "1"}, body),
               "PUT": lambda: http.put(f"{server_url}/x", {"X-Test": "1"}, body),
               "DELETE": lambda: http.httpdelete(f"{server_url}/x", {"X-Test": "1"})}[method]()
    request.sendasync(lambda response: seen.append((response, threading.get_ident())))
    try:
        assert agent.run_until(lambda: bool(seen), 10)
    finally:
        agent.close()
    response, thread = seen[0]
    assert thread == threading.get_ident()  # the dispatcher: this thread runs it
    assert response["statuscode"] == 200 and response["headers"]["x-reply"] == "yes"
    echoed = json.loads(response["body"])
    expected_body = body.decode() if isinstance(body, bytes) else (body or "")
    assert echoed == {"method": method, "path": "/x", "body": expected_body, "x": "1"}


def test_http_errors_and_failures_are_responses_not_exceptions(server_url: str) -> None:
    agent = _agent()
    http = make_env(agent).http
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    seen: dict[str, dict[str, Any]] = {}
    http.get(f"{server_url}/missing").sendasync(lambda r: seen.__setitem__("404", r))
    http.get(f"http://127.0.0.1:{dead}/").sendasync(lambda r: seen.__setitem__("refused", r))
    try:
        assert agent.run_until(lambda: len(seen) == 2, 10)
    finally:
        agent.close()
    assert seen["404"]["statuscode"] == 404
    assert seen["refused"]["statuscode"] == 7 and "connect" in seen["refused"]["body"]


def test_a_request_is_sent_once_and_arguments_are_checked(server_url: str) -> None:
    agent = _agent()
    http = make_env(agent).http
    request = http.get(f"{server_url}/x")
    assert request.sendsync()["statuscode"] == 200
    with pytest.raises(RuntimeError, match="already sent"):
        request.sendasync(lambda r: None)
    with pytest.raises(ValueError, match="url must be an http"):
        http.get("ftp://127.0.0.1/")
    with pytest.raises(TypeError, match="callback must be a function"):
        http.get(f"{server_url}/x").sendasync(None)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match=r"http\.onrequest is not supported"):
        http.onrequest(lambda req, resp: None)
    agent.close()
