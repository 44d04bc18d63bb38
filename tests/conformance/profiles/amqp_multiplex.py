"""Conformance profile: the AMQP backend with ``amqp.multiplex`` on, against the shared RabbitMQ.

Every statement must hold exactly as on `AMQPProfile` when several connections (of one agent
or of several) share one physical AMQP connection: the profile is the AMQP one with
``amqp.multiplex = 8``. A dropped physical connection (the proxy cuts it) reaches every member
sharing it, each with its own CONNECTION_ERROR, as it would reach each of separate connections.
"""

from __future__ import annotations

from typing import Any

from bridge import Settings

from .amqp import AMQPProfile

MEMBERS = 8  # connections per physical connection in this profile


class AMQPMultiplexProfile(AMQPProfile):
    name = "amqp-multiplex"
    backend = "amqp"

    def settings(self, **overrides: Any) -> Settings:
        amqp = dict(overrides.pop("amqp", None) or {})
        amqp.setdefault("multiplex", MEMBERS)
        return Settings(backend="amqp", amqp=amqp, **overrides)


PROFILE = AMQPMultiplexProfile()
