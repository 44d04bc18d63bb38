"""Exceptions raised by the public API."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error this package raises on purpose."""


class ClosedError(BridgeError, RuntimeError):
    """An operation was attempted on an object that is closed (or was never usable)."""


class LimitError(BridgeError, RuntimeError):
    """A per-agent limit (connections, sessions, links) would be exceeded.

    The text starts with the imp wording, e.g. ``max connection limit reached``.
    """


class FeatureDisabledError(BridgeError, RuntimeError):
    """The AMQP feature gate is off (``amqp_enabled = false``)."""


class ConfigError(BridgeError, ValueError):
    """Invalid configuration: one readable line per bad field, secrets never included."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class AddressError(BridgeError, ValueError):
    """A path cannot be used on the selected backend (e.g. it would inject MQTT wildcards)."""
