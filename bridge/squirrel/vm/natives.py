"""The ``__b_*`` natives the prelude calls: thin adapters from Squirrel values to the agent's
contract objects (`bridge.contract`) and imp globals (`bridge.impenv`).

A native never lets a Python exception into the VM (the binding would unwind the C++ VM past
Squirrel's own ``try``/``catch``): it stores the exception and returns the error marker, and the
prelude throws its message as a Squirrel error at the caller's line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from bridge.agent import agent_log
from bridge.contract.message import Message
from bridge.contract.objects import Connection, Session
from bridge.impenv import coding
from bridge.squirrel.vm.values import ERROR_MARK, from_tokens, to_python, to_squirrel

if TYPE_CHECKING:
    from bridge.agent import Agent
    from bridge.impenv import ImpEnv


class VMSide(Protocol):
    """What the natives use of their `bridge.squirrel.vm.engine.SquirrelVM`."""

    exit_status: int | None

    def callback(self, fn: Any) -> Callable[..., None] | None: ...
    def message_callback(self, fn: Any) -> Callable[[list[Any]], None] | None: ...
    def value(self, python_value: Any) -> Any: ...

_DIGESTS = {"sha256": coding.sha256, "sha1": coding.sha1, "sha512": coding.sha512,
            "md5": coding.md5}
_HMACS = {"hmacsha256": coding.hmacsha256, "hmacsha1": coding.hmacsha1,
          "hmacsha512": coding.hmacsha512, "hmacmd5": coding.hmacmd5}


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "(null : 0x0)"
    return str(to_python(value)) if not isinstance(value, str) else value


def _spread(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A native the prelude calls through ``__callv``: (count, *padded) or (-1, array)."""
    def native(count: int, *rest: Any) -> Any:
        args = list(rest[0])[1:] if count == -1 else rest[:count]
        return fn(*args)
    return native


class Natives:
    """The natives of one VM; `table` gives them by name (wrapped to never raise), for the one
    bound dispatcher ``__b(name, ...)``."""

    def __init__(self, vm: VMSide, agent: Agent, env: ImpEnv) -> None:
        self.vm: VMSide | None = vm
        self.agent: Agent | None = agent
        self.env: ImpEnv | None = env
        self.pending: BaseException | None = None
        self.abort: BaseException | None = None  # raised again once the VM has unwound
        self.transfers: dict[int, Any] = {}  # sent from Squirrel, by id, for cancel()
        self._sweep_at = 1024

    def release(self) -> None:
        self.vm = self.agent = self.env = None

    def table(self) -> dict[str, Callable[..., Any]]:
        vm, agent, env = self.vm, self.agent, self.env
        assert vm is not None and agent is not None and env is not None
        amqp, imp, server, http = agent.amqp, env.imp, env.server, env.http
        callback, message_callback = vm.callback, vm.message_callback

        def openconnection(url: Any, cb: Any) -> Any:
            return amqp.openconnection(url, callback(cb))  # type: ignore[arg-type]

        def opensession(h: Connection, cb: Any) -> Any:
            return h.opensession(callback(cb))

        def opensender(h: Session, path: Any, cb: Any) -> Any:
            return h.opensender(path, callback(cb))

        def openreceiver(h: Session, path: Any, ev: Any, msg: Any) -> Any:
            return h.openreceiver(path, callback(ev), message_callback(msg))

        transfers = self.transfers

        def send(number: int, sender: Any, kind: Any, body: Any, cb: Any, *props: Any) -> None:
            # createmessage + createtransfer + sendasync in one call (see the prelude)
            if type(kind) is str:
                properties = dict(zip(props[::2], props[1::2], strict=True))
                if type(body) is str and body.startswith("\x01"):
                    body = to_python(body)
                message = amqp.createbinarymessage(body, properties) if kind == "data" \
                    else amqp.createmessage(body, properties)
            elif isinstance(kind, Message):
                message = kind  # a received message, sent on
            else:
                raise TypeError("sendasync: the transfer's message is not an amqpmessage")
            transfer = sender.createtransfer(message)
            run = callback(cb)

            def confirmed() -> None:
                transfers.pop(number, None)
                if run is not None:
                    run()
            transfer.sendasync(confirmed)
            if len(transfers) >= self._sweep_at:  # failed sends never confirm: forget those
                for key in [k for k, t in transfers.items() if t.state >= t.DONE]:
                    del transfers[key]
                self._sweep_at = max(1024, 2 * len(transfers))
            transfers[number] = transfer

        def cancel(number: Any) -> None:
            transfer = transfers.pop(number, None)
            if transfer is not None:
                transfer.cancel()

        def jsonencode(compact: Any, *tokens: Any) -> str:
            value, _ = from_tokens(tokens)
            return http.jsonencode(value, {"compact": bool(compact)})

        def wakeup(seconds: Any, cb: Any) -> Any:
            return imp.wakeup(seconds, callback(cb))  # type: ignore[arg-type]

        def http_request(method: Any, url: Any, headers: Any, body: Any) -> Any:
            return http.request(method, url, to_python(headers), to_python(body))

        def http_sendasync(h: Any, cb: Any, timeout: Any) -> None:
            run = callback(cb)
            assert run is not None

            def deliver(response: dict[str, Any]) -> None:
                try:
                    table = vm.value(response)
                except Exception as exc:  # the response cannot be handed over: say why
                    agent_log.error("http response not delivered: %s", exc)
                    return
                run(table)
            h.sendasync(deliver, None, timeout)

        def stop() -> None:
            agent.stop()

        def exit_(status: Any) -> None:
            vm.exit_status = status if isinstance(status, int) else 1

        def unsupported(name: str) -> None:
            raise NotImplementedError(f"{name} is not supported by the bridge")

        natives: dict[str, Callable[..., Any]] = {
            "openconnection": openconnection,
            "opensession": opensession,
            "opensender": opensender,
            "openreceiver": openreceiver,
            "isopen": lambda h: None if h.isopen() else 0,
            "close": lambda h: h.close(),
            "usable": lambda h: h._require_usable("create a transfer"),
            "send": _spread(send),
            "cancel": cancel,
            "message": lambda h: h.message(),
            "accept": lambda h: h.accept(),
            "reject": lambda h: h.reject(),
            "release": lambda h: h.release(),
            "body": lambda h: h.body(),
            "properties": lambda h: h.properties(),
            "configparams": lambda: dict(imp.configparams),
            "wakeup": wakeup,
            "cancelwakeup": lambda h: imp.cancelwakeup(h),
            "save": lambda t: server.save(to_python(t)),
            "load": lambda: server.load(),
            "jsonencode": _spread(jsonencode),
            "jsondecode": lambda t: http.jsondecode(to_python(t)),
            "base64encode": lambda d: http.base64encode(to_python(d)),
            "base64decode": lambda t: http.base64decode(to_python(t)),
            "urlencode": lambda t: http.urlencode(to_python(t)),
            "urldecode": lambda t: http.urldecode(t),
            "http_request": http_request,
            "http_sendasync": http_sendasync,
            "http_sendsync": lambda h: h.sendsync(),
            "http_cancel": lambda h: h.cancel(),
            "digest": lambda name, d: _DIGESTS[name](to_python(d)),
            "hmac": lambda name, d, k: _HMACS[name](to_python(d), to_python(k)),
            "unsupported": unsupported,
            "lasterror": self._lasterror,
        }
        wrapped = {name: self._safe(fn) for name, fn in natives.items()}
        # Never fail and return nothing: bound as they are (one call less per log line).
        log, error = server.log, server.error
        wrapped["log"] = lambda message: log(_text(message))
        wrapped["error"] = lambda message: error(_text(message))
        wrapped["agenturl"] = http.agenturl
        wrapped["stop"] = stop
        wrapped["time"] = lambda: int(time.time())
        wrapped["exit"] = exit_
        return wrapped

    def _lasterror(self) -> str:
        exc, self.pending = self.pending, None
        if exc is None:
            return "unknown error in a bridge native"
        text = str(exc) or type(exc).__name__
        return text if isinstance(exc, TypeError | ValueError | RuntimeError |
                                  NotImplementedError) else f"{type(exc).__name__}: {text}"

    def _safe(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def native(*args: Any) -> Any:
            try:
                return to_squirrel(fn(*args))
            except BaseException as exc:
                self.pending = exc
                if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM: re-raised out of the VM
                    self.abort = exc
                return ERROR_MARK
        return native
