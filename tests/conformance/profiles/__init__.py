"""Backend profiles for the conformance suite.

Each module here defines ``PROFILE``, a `BackendProfile` subclass instance. Adding a backend to
the suite = adding a module. See `base.py` for what a profile provides.
"""
