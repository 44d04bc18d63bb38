"""What the conformance suite needs from a backend: settings, addresses and fault hooks."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from bridge import Agent, Settings
from bridge.backends.registry import Capabilities, backend_entry


class Unsupported(Exception):
    """The backend cannot produce this situation; the test then pins the documented deviation."""


class BackendProfile:
    """Base profile. Subclasses override what differs for their backend."""

    name = "base"
    #: the registered backend the profile runs on (a profile may be a configuration of one)
    backend = ""
    # seconds a test waits for an event before failing
    timeout = 10.0

    def available(self) -> str | None:
        """None if the backend's services are reachable, else why not (the suite then fails)."""
        return None

    @property
    def backend_name(self) -> str:
        return self.backend or self.name

    def settings(self, **overrides: Any) -> Settings:
        """Settings for an agent on this backend; *overrides* are Settings(**kwargs) fields."""
        return Settings(backend=self.backend_name, **overrides)

    def url(self) -> str:
        """The URL agent code passes to amqp.openconnection."""
        return "amqps://bridge-conformance.example"

    def address(self, label: str) -> str:
        """A fresh, unique path usable for both a sender and a receiver (a queue)."""
        return f"/conformance/{label}/{uuid.uuid4().hex[:12]}"

    def agent(self, **overrides: Any) -> Agent:
        return Agent(self.settings(**overrides))

    # -- fault hooks ------------------------------------------------------------------------
    def failing_open(self) -> tuple[Settings, str]:
        """(settings, url) for which openconnection must end in CONNECTION_ERROR."""
        raise Unsupported

    def drop_connection(self, agent: Agent) -> None:
        """Make every live connection of *agent* fail as a network loss would (statement 46)."""
        raise Unsupported

    def detach_with_error(self, agent: Agent, path: str) -> str:
        """Make the far end detach the sender(s) on *path* with an error; returns the condition
        symbol the SENDER_ERROR detail must contain (statement 45)."""
        raise Unsupported

    def starve_credit(self, path: str) -> dict[str, Any]:
        """Settings overrides under which a sender on *path* gets no credit until a receiver
        takes messages (statement 37)."""
        raise Unsupported

    # -- wire-level injections (statements 30, 32, 33) ---------------------------------------
    # case: "unconvertible_property" (properties {"ok": 1, "bad": <unconvertible>}),
    # "unsupported_body", "list_body" ([1, "a"]), "map_body" ({"k": 1}), "symbol_body" ("sym")
    def inject(self, agent: Agent, path: str, case: str) -> None:
        """Publish onto *path*, with a raw client of the backend's protocol, a message that only
        a foreign application could produce."""
        raise Unsupported

    # -- what the backend declares in its registry entry (the same table `bridge scan` and
    # docs/semantics.md use); a profile overrides only what its test peer changes ------------
    @property
    def capabilities(self) -> Capabilities:
        return backend_entry(self.backend_name).capabilities

    @property
    def deviations(self) -> Mapping[int, str]:
        """Conformance statement number -> the documented deviation. A test for a listed
        statement asserts the deviating behaviour instead of the contract's."""
        return self.capabilities.deviations

    @property
    def opens_any_path(self) -> bool:
        """"$cbs" and "/devices/x/messages/events" open as links (statement 17)."""
        return self.capabilities.any_path

    @property
    def supports_cbs(self) -> bool:
        """A put-token on "$cbs" gets a CBS reply (statement 47)."""
        return self.capabilities.cbs

    def anonymous_url(self) -> str:
        """A URL with no credentials that must connect (statement 47)."""
        return "amqps://bridge-conformance.example"

    def attached_receivers(self, agent: Agent, path: str) -> int:
        """How many receivers the broker sees attached to *path* (statement 43)."""
        raise Unsupported
