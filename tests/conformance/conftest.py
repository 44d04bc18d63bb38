"""The conformance suite: one test per statement of imp-amqp-api.md §6, run on every backend.

Profiles live in ``profiles/<backend>.py``. A test for a statement that a backend documents as a
deviation calls the profile's ``pin_deviation`` instead of asserting the contract.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

from bridge.backends.registry import backend_names

from . import profiles
from .harness import Ctx
from .profiles.base import BackendProfile


def _load_profiles() -> list[BackendProfile]:
    found = []
    for info in pkgutil.iter_modules(profiles.__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{profiles.__name__}.{info.name}")
        profile = getattr(module, "PROFILE", None)
        if profile is not None and profile.backend_name in backend_names():
            found.append(profile)
    return sorted(found, key=lambda p: p.name)


PROFILES = _load_profiles()


@pytest.fixture(params=PROFILES, ids=[p.name for p in PROFILES])
def profile(request: pytest.FixtureRequest) -> BackendProfile:
    prof: BackendProfile = request.param
    problem = prof.available()
    if problem is not None:
        pytest.fail(f"{prof.name} backend's service is not available: {problem}")
    return prof


@pytest.fixture
def ctx(profile: BackendProfile) -> Iterator[Ctx]:
    context = Ctx(profile)
    yield context
    context.close()
