"""Collects the sandbox conformance suite (``sandbox.py`` is not a ``test_*`` file by design)."""

import pytest

# Before the import: pytest rewrites asserts only in modules registered before they load.
pytest.register_assert_rewrite("tests.conformance.sandbox")

from tests.conformance.sandbox import *  # noqa: E402, F403
from tests.sandboxes.docker_fixtures import docker_engine  # noqa: E402, F401 - the Docker cases need it
