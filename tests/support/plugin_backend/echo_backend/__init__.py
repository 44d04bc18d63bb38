"""A third-party backend for the tests: published through the entry point, own settings."""

from bridge.backends.registry import BackendEntry, Capabilities

ENTRY = BackendEntry(
    name="echo",
    factory="echo_backend.backend:create",
    settings="echo_backend.settings:EchoSettings",
    description="test plugin: what a sender sends comes back on receivers of its path",
    capabilities=Capabilities(credit=False),
)
