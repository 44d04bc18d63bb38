"""One asyncio event loop on its own thread, shared by the stand-in's TLS fronts.

`FrontLoop.call` runs a coroutine on the loop from any thread and waits for its result;
`stop` closes every server, cancels every connection task and joins the thread, so nothing
outlives `Hub.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("bridge.testing.hub")

T = TypeVar("T")


class FrontLoop:
    def __init__(self, name: str = "hub-front") -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_error)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        #: every open stream of the fronts: aborted on stop, so no TLS close_notify waits for
        #: a peer that may never answer
        self.writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run *coro* on the loop and return its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add_server(self, server: asyncio.base_events.Server) -> None:
        self._servers.append(server)

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            if not self.loop.is_closed():
                self.loop.close()
            return

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for server in self._servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()

    @staticmethod
    def _on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # Failed TLS handshakes and peers vanishing mid-write are normal for a test server
        # that is probed with wrong credentials: keep them out of the warnings.
        exc = context.get("exception")
        if isinstance(exc, OSError | asyncio.CancelledError | EOFError):
            log.debug("hub front: %s (%r)", context.get("message"), exc)
        else:
            log.warning("hub front: %s (%r)", context.get("message"), exc)
