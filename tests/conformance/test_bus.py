"""Collects the bus conformance suite (``bus.py`` is not a ``test_*`` file by design)."""

from tests.conformance.bus import *  # noqa: F403
