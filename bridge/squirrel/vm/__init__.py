"""The ``run`` engine: agent code on the embedded Squirrel 3 VM (``squirrel-lang-sq305``).

`available()` says whether the VM package is installed; `bridge.squirrel.vm.run` runs a
``.nut`` agent under ``bridge run``. Importing this package does not import the VM.
"""

from __future__ import annotations

import importlib.util


def available() -> bool:
    """Whether the embedded VM (the ``squirrel`` module of squirrel-lang-sq305) is installed."""
    return importlib.util.find_spec("squirrel") is not None and \
        importlib.util.find_spec("_squirrel") is not None


__all__ = ["available"]
