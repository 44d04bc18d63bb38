"""`ScriptRun`: one run of a ported agent script (``bridge run agent.py``).

The script gets the globals ``amqp``, ``imp``, ``server`` and ``agent`` (as the imp agent
environment had them), runs its top level, then its callbacks are dispatched until it calls
``agent.stop()``, a time-out, Ctrl-C or SIGTERM; every connection is then closed and the
resulting ``*_CLOSED`` events are delivered.
"""

from __future__ import annotations

import builtins
import logging
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bridge.agent import Agent
from bridge.settings import Settings

# `bridge run` logs as the command it is part of (its lines read "bridge.cli: ...")
log = logging.getLogger("bridge.cli")

EXIT_OK = 0
EXIT_SCRIPT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_SIGINT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class _Terminated(BaseException):
    """SIGTERM, raised on the main thread (a BaseException so ``except Exception`` in the
    script does not swallow it)."""


class ScriptRun:
    """One ``bridge run``: the script's module, the agent, signal handling and shutdown.

    The script's top level runs on the main thread; callbacks are then dispatched by
    ``agent.run()`` on a worker thread while the main thread waits for it. Python runs signal
    handlers only on the main thread, so Ctrl-C can interrupt that wait (and raise) without
    ever landing in the middle of a user callback or of a lock the dispatcher holds.
    """

    def __init__(self, settings: Settings, script: Path, code: types.CodeType,
                 args: Sequence[str], timeout: float | None) -> None:
        self.settings = settings
        self.script = script
        self.code = code
        self.args = list(args)
        self.timeout = timeout
        self.closing = False       # past the point where a signal may still raise
        self.signalled = False     # a signal has already been turned into an exception
        self.dispatch_done: threading.Event | None = None  # set when agent.run() returned

    # -- signals ------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if self.closing or self.signalled:
            if signum == signal.SIGINT:
                # Second Ctrl-C: the user does not want to wait for a clean close.
                os.write(2, b"bridge: forced exit\n")
                os._exit(EXIT_SIGINT)
            return  # SIGTERM while closing: the close is already under way
        self.signalled = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signal.signal only works there; run without graceful signals
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # e.g. started with `nohup` or in the background: stay deaf to it
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    # -- the run ------------------------------------------------------------------------------
    def execute(self) -> int:
        """Run the script to the end; the exit status."""
        agent = self._make_agent()
        # A real module as __main__, so pickling, dataclasses and `import __main__` behave as
        # under `python script.py`. It (and so every object the script keeps in its globals)
        # stays referenced until the run is over: dropping the last reference to an imp
        # object closes it.
        module = types.ModuleType("__main__")
        module.__dict__.update({
            "__file__": str(self.code.co_filename), "__cached__": None,
            "__builtins__": builtins, **self._globals(agent),
        })
        saved_argv, saved_main = sys.argv, sys.modules.get("__main__")
        saved_path = list(sys.path)
        sys.argv = [str(self.script), *self.args]
        sys.modules["__main__"] = module
        sys.path.insert(0, str(Path(self.code.co_filename).parent))
        previous = self._install_signal_handlers()
        print(f"bridge: running {self.script} on backend {self.settings.backend!r} "
              f"(agent {self.settings.agent_id!r}); Ctrl-C to stop", file=sys.stderr)
        try:
            status = self._run(agent, module.__dict__)
            self.closing = True
            self._shutdown(agent)
            return status
        finally:
            self.closing = True
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            sys.argv = saved_argv
            if saved_main is not None:
                sys.modules["__main__"] = saved_main
            else:
                sys.modules.pop("__main__", None)
            sys.path[:] = saved_path

    def _make_agent(self) -> Agent:
        return Agent(self.settings)

    def _globals(self, agent: Agent) -> dict[str, Any]:
        """The globals the script finds defined (the imp agent environment's)."""
        return {"amqp": agent.amqp, "imp": agent.imp, "server": agent.server, "agent": agent}

    def _top_level(self, agent: Agent, namespace: dict[str, Any]) -> None:
        exec(self.code, namespace)

    def _run(self, agent: Agent, namespace: dict[str, Any]) -> int:
        """The script's top level, then dispatching; the exit status."""
        try:
            try:
                self._top_level(agent, namespace)
            except (KeyboardInterrupt, _Terminated, SystemExit):
                raise
            except BaseException as exc:
                self.closing = True
                self._print_traceback(exc)
                return EXIT_SCRIPT_FAILED
            failure: list[BaseException] = []
            # An Event rather than Thread.join(): on Python 3.11 a join interrupted by a
            # signal can mark the thread stopped while it is still running.
            done = self.dispatch_done = threading.Event()

            def dispatch() -> None:
                try:
                    agent.run(self.timeout)
                except BaseException as exc:  # SystemExit (or worse) from a callback
                    failure.append(exc)
                finally:
                    done.set()

            started = time.monotonic()
            threading.Thread(target=dispatch, name="bridge-dispatcher", daemon=True).start()
            done.wait()
            self.closing = True
            if failure:
                if isinstance(failure[0], SystemExit):
                    return _exit_status(failure[0])
                self._print_traceback(failure[0])
                return EXIT_SCRIPT_FAILED
            if self.timeout is not None and time.monotonic() - started >= self.timeout:
                log.info("--timeout %gs elapsed: closing", self.timeout)
            else:
                log.info("the script stopped the agent: closing")
            return EXIT_OK
        except KeyboardInterrupt:
            self.closing = True
            log.info("interrupted (SIGINT): closing")
            return EXIT_SIGINT
        except _Terminated:
            self.closing = True
            log.info("terminated (SIGTERM): closing")
            return EXIT_OK
        except SystemExit as exc:
            self.closing = True
            return _exit_status(exc)

    def _shutdown(self, agent: Agent) -> None:
        """Close every connection, then deliver the ``*_CLOSED`` callbacks closing queued."""
        wait = self.settings.close_timeout
        agent.close()  # also makes the dispatcher thread's agent.run() return
        if self.dispatch_done is not None and not self.dispatch_done.wait(wait):
            log.warning("a callback is still running %gs after close; exiting without it",
                        wait)
            return
        # Agent.close() queues the *_CLOSED events; nobody dispatches them once run() has
        # returned, so drain them here, up to a marker posted behind them.
        drained = threading.Event()
        agent.call_soon(drained.set)
        deadline = time.monotonic() + wait
        while not drained.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("callbacks still pending %gs after close; not delivered", wait)
                break
            # Returns early (False) when a stop is pending, e.g. a callback called agent.stop().
            agent.run_until(drained.is_set, remaining)

    def _print_traceback(self, exc: BaseException) -> None:
        """The traceback from the script's first frame on (the bridge's own frames are noise)."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != self.code.co_filename:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.stderr)


def _exit_status(exc: SystemExit) -> int:
    """What the interpreter would exit with for ``sys.exit(code)``."""
    if exc.code is None:
        return EXIT_OK
    if isinstance(exc.code, int):
        return exc.code
    print(str(exc.code), file=sys.stderr)
    return EXIT_SCRIPT_FAILED
