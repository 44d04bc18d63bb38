"""The ``amqp`` backend: AMQP 1.0 with python-qpid-proton, one reactor thread per connection.

Modules: `endpoint` (URL and settings -> connection options, pure), `codec` (message bodies,
properties and error texts, pure), `reactor` (the thread and its command queue), `handler`
(proton events -> `BackendEvents`), `backend` (the thread-safe command side).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.backends.amqp.backend import AMQPBackend
    from bridge.backends.base import BackendContext


def create(context: BackendContext) -> AMQPBackend:
    """Backend factory (imported lazily so settings validation does not load proton)."""
    from bridge.backends.amqp.backend import AMQPBackend

    return AMQPBackend(context)


__all__ = ["create"]
