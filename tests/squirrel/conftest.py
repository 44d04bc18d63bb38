"""Squirrel tests: the real VM (``squirrel-lang-sq305``) is the oracle where it is installed."""

from __future__ import annotations

import pytest

from tests.squirrel.oracle import available

requires_vm = pytest.mark.skipif(not available(), reason="squirrel-lang-sq305 (the oracle) "
                                 "is not installed: pip install '.[test]'")
