"""imp's ``http`` object for agent code: codecs, ``agenturl`` and outgoing requests.

``http.request(method, url, headers, body)`` (and ``get`` / ``post`` / ``put`` /
``httpdelete``) returns an `HttpRequest`; ``sendasync(callback)`` performs it with a real HTTP
client (urllib) on a small shared pool of request threads, and the callback gets the response
table ``{statuscode, headers, body}`` **on the agent's dispatcher** (the *post* function the
agent gives, e.g. ``Agent.call_soon``), never on a request thread. As on imp, a request that
fails before a response (DNS, refused connection, time-out) reports a ``statuscode`` below 100
(the libcurl codes imp used: 6 unresolved host, 7 refused, 28 time-out, 1 anything else) with
the reason as the body. ``sendsync()`` blocks the calling callback (imp allowed it; it holds
up this agent only). Response header names are lower-case, as imp gave them.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bridge.impenv import coding, jsoncodec

Post = Callable[..., None]  # post(fn, *args): run fn(*args) on the agent's dispatcher

DEFAULT_TIMEOUT = 600.0  # imp's sendasync default
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _request_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bridge-http")
        return _pool


def _failure(code: int, reason: str) -> dict[str, Any]:
    return {"statuscode": code, "headers": {}, "body": reason}


class HttpRequest:
    """One outgoing request: send it once, with `sendasync` or `sendsync`."""

    __slots__ = ("_cancelled", "_post", "_sent", "body", "headers", "method", "url")

    def __init__(self, method: str, url: str, headers: Mapping[str, Any] | None,
                 body: coding.Bytes | None, post: Post) -> None:
        if not isinstance(method, str) or not method:
            raise TypeError("http.request: method must be a non-empty string")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"http.request: url must be an http:// or https:// URL, got {url!r}")
        if headers is not None and not isinstance(headers, Mapping):
            raise TypeError(f"http.request: headers must be a table, got {type(headers).__name__}")
        self.method = method.upper()
        self.url = url
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.body = coding.as_bytes(body, "body") if body is not None and body != "" else None
        self._post = post
        self._sent = False
        self._cancelled = False

    def _perform(self, timeout: float) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=self.body, method=self.method,
                                         headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return {"statuscode": response.status,
                        "headers": {k.lower(): v for k, v in response.headers.items()},
                        "body": response.read().decode("utf-8", "replace")}
        except urllib.error.HTTPError as exc:
            with exc:
                return {"statuscode": exc.code,
                        "headers": {k.lower(): v for k, v in (exc.headers or {}).items()},
                        "body": exc.read().decode("utf-8", "replace")}
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, socket.gaierror):
                return _failure(6, f"Couldn't resolve host: {reason}")
            if isinstance(reason, ConnectionRefusedError):
                return _failure(7, f"Couldn't connect to server: {reason}")
            if isinstance(reason, TimeoutError | socket.timeout):
                return _failure(28, "Operation timed out")
            return _failure(1, str(reason))
        except TimeoutError:
            return _failure(28, "Operation timed out")
        except OSError as exc:
            return _failure(1, str(exc))

    def _claim(self) -> None:
        if self._sent:
            raise RuntimeError("http request already sent: create a new one to send again")
        self._sent = True

    def sendasync(self, callback: Callable[[dict[str, Any]], Any],
                  streamcallback: Any = None, timeout: float = DEFAULT_TIMEOUT) -> HttpRequest:
        """Send in the background; ``callback(response)`` runs later on the dispatcher."""
        if not callable(callback):
            raise TypeError(f"sendasync: callback must be a function, got "
                            f"{type(callback).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"sendasync: timeout must be a positive number, got {timeout!r}")
        self._claim()
        post = self._post

        def work() -> None:
            response = self._perform(float(timeout))
            if not self._cancelled:
                post(self._deliver, callback, response)

        _request_pool().submit(work)
        return self

    def _deliver(self, callback: Callable[[dict[str, Any]], Any],
                 response: dict[str, Any]) -> None:
        if not self._cancelled:  # cancel() may have come while the response was queued
            callback(response)

    def sendsync(self) -> dict[str, Any]:
        self._claim()
        return self._perform(DEFAULT_TIMEOUT)

    def cancel(self) -> None:
        """The callback will not run (the request itself may still reach the server)."""
        self._cancelled = True


class Http:
    """``http`` for one agent; *post* runs a function on that agent's dispatcher."""

    __slots__ = ("_agent_url", "_post")

    def __init__(self, post: Post, agent_url: str = "") -> None:
        self._post = post
        self._agent_url = agent_url

    # -- codecs (pure) --------------------------------------------------------------------------
    jsonencode = staticmethod(jsoncodec.jsonencode)
    jsondecode = staticmethod(jsoncodec.jsondecode)
    base64encode = staticmethod(coding.base64encode)
    base64decode = staticmethod(coding.base64decode)
    urlencode = staticmethod(coding.urlencode)
    urldecode = staticmethod(coding.urldecode)
    hash = coding.Digests()  # ``http.hash.hmacsha256(...)``: what imp libraries call

    def agenturl(self) -> str:
        """The URL this agent's HTTP handler would be reached at (``http.onrequest`` is not
        served by the bridge: this is the configured ``agent_url``, empty when unset)."""
        return self._agent_url

    # -- requests --------------------------------------------------------------------------------
    def request(self, method: str, url: str, headers: Mapping[str, Any] | None = None,
                body: coding.Bytes | None = None) -> HttpRequest:
        return HttpRequest(method, url, headers, body, self._post)

    def get(self, url: str, headers: Mapping[str, Any] | None = None) -> HttpRequest:
        return self.request("GET", url, headers)

    def post(self, url: str, headers: Mapping[str, Any] | None = None,
             body: coding.Bytes | None = None) -> HttpRequest:
        return self.request("POST", url, headers, body)

    def put(self, url: str, headers: Mapping[str, Any] | None = None,
            body: coding.Bytes | None = None) -> HttpRequest:
        return self.request("PUT", url, headers, body)

    def httpdelete(self, url: str, headers: Mapping[str, Any] | None = None) -> HttpRequest:
        return self.request("DELETE", url, headers)

    def onrequest(self, callback: Any) -> None:
        raise NotImplementedError(
            "http.onrequest is not supported by the bridge: agents have no incoming HTTP "
            "endpoint here (serve the requests elsewhere and reach the agent another way)")
