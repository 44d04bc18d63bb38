"""Moved to `bridge.testing.rabbitmq` (kept for branches that still import it here)."""

from bridge.testing.rabbitmq import RabbitNode, available

__all__ = ["RabbitNode", "available"]
