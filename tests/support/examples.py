"""Running a shipped example agent through ``bridge run``, as Python or as Squirrel.

The Python examples read their settings from the environment; their Squirrel twins from
``imp.configparams``. `example_args` gives the ``bridge run`` arguments for either, the
Squirrel one taking each named environment variable as a bare ``--param NAME`` (so a test sets
the same environment for both and checks both with the same assertions).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping

import pytest

SQUIRREL_VM = importlib.util.find_spec("squirrel") is not None


def variants(stem: str) -> list[object]:
    """The example *stem* as ``examples/STEM.py`` and ``examples/STEM.nut`` (the latter skipped
    when the embedded VM is not installed)."""
    return [f"examples/{stem}.py",
            pytest.param(f"examples/{stem}.nut", marks=pytest.mark.skipif(
                not SQUIRREL_VM, reason="the embedded Squirrel VM (the [squirrel] extra) is "
                                        "not installed"))]


def example_args(example: str, env: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """``bridge run`` options for *example*: for a ``.nut`` one, ``--param NAME`` for every
    name in *names* that *env* sets (taken from the environment by ``bridge run``)."""
    if not example.endswith(".nut"):
        return [example]
    params = [f"--param={name}" for name in names if name in env]
    return ["--engine=vm", *params, example]
