"""The suite covers every registered backend: each has a profile (by its name), so adding a
backend without one fails here instead of going unchecked."""

from __future__ import annotations

from bridge.backends.registry import backend_names

from .conftest import PROFILES


def test_every_registered_backend_has_a_conformance_profile() -> None:
    assert set(backend_names()) <= {p.name for p in PROFILES}
