"""Settings of the ``memory`` backend (``[memory]``, ``BRIDGE_MEMORY__*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from bridge.settings_base import Section


class MemorySettings(Section):
    """The in-process broker."""

    broker: str = Field("default", min_length=1,
                        description="Name of the in-process broker; agents in one process that "
                                    "name the same broker share its queues.")
    queue_capacity: int = Field(10_000, ge=1,
                                description="Messages a queue holds; a sender gets credit only "
                                            "while its queue is below this.")
    prefetch: int = Field(100, ge=1,
                          description="Credit of a receiver: unsettled deliveries it may hold.")
    max_delivery_count: int = Field(10, ge=1,
                                    description="Deliveries of one message (released ones count) "
                                                "before it is dead-lettered.")
    users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="SASL PLAIN users (name -> password). Empty: anonymous connections allowed; "
                    "otherwise the URL's userinfo must match.")
