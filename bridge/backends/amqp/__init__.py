"""The ``amqp`` backend: AMQP 1.0 with python-qpid-proton, mapped 1:1.

Modules: `settings` (``[amqp]``), `endpoint` (URL and settings -> connection options, pure),
`codec` and `fastcodec` (message bodies, properties and error texts, pure), `reactor` (the
proton container's thread and its command queue), `handler` (proton events -> `BackendEvents`),
`backend` (the thread-safe command side). Importing this package does not import proton.
"""

from __future__ import annotations

from types import MappingProxyType

from bridge.backends.registry import BackendEntry, Capabilities

ENTRY = BackendEntry(
    name="amqp",
    factory="bridge.backends.amqp.backend:create",
    settings="bridge.backends.amqp.settings:AMQPSettings",
    description="AMQP 1.0 broker via python-qpid-proton",
    # AMQP 1.0 itself gives the whole contract; what differs is the peer's. The deviations
    # below are RabbitMQ 3.x's (the suite's AMQP peer), measured.
    capabilities=Capabilities(
        deviations=MappingProxyType({
            37: "RabbitMQ grants every sender 65536 credit whatever the queue depth, so a "
                "transfer never waits for credit; it completes once the queue holds it",
            39: "with credit never short, a transfer is normally on the wire before cancel() "
                "runs: cancel() then only suppresses its callback, the message is still "
                "delivered",
            45: "RabbitMQ 3.10 never detaches a link with an error: a link-level failure ends "
                "the session (end frame with the error), so the sender gets SENDER_CLOSED and "
                "the session SESSION_ERROR '<condition>: <description>'",
        })),
)

__all__ = ["ENTRY"]
