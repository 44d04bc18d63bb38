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


TRANSLATED = " (translated)"  # suffix of a variant run with --engine translate


def variants(stem: str, *, translated: bool = True) -> list[object]:
    """The example *stem* as ``examples/STEM.py``, ``examples/STEM.nut`` on the embedded VM
    (skipped when the VM is not installed) and the same ``.nut`` translated to Python in
    memory (``--engine translate``: needs nothing installed)."""
    return [f"examples/{stem}.py",
            pytest.param(f"examples/{stem}.nut", marks=pytest.mark.skipif(
                not SQUIRREL_VM, reason="the embedded Squirrel VM (the [squirrel] extra) is "
                                        "not installed")),
            *([f"examples/{stem}.nut{TRANSLATED}"] if translated else [])]


def example_args(example: str, env: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """``bridge run`` options for *example*: for a ``.nut`` one, ``--param NAME`` for every
    name in *names* that *env* sets (taken from the environment by ``bridge run``)."""
    engine = "vm"
    if example.endswith(TRANSLATED):
        example, engine = example.removesuffix(TRANSLATED), "translate"
    if not example.endswith(".nut"):
        return [example]
    params = [f"--param={name}" for name in names if name in env]
    return [f"--engine={engine}", *params, example]
