"""Skip a test whose external requirement is missing — except in CI, where it must fail.

Tests that need something outside Python (nginx, later PostgreSQL or a browser) call
:func:`unavailable` when it is missing. On a developer machine that is a skip with the
reason and the fix; with ``AUTHSVC_REQUIRE_E2E=1`` (set by ``.ci/run``) it is a failure,
so CI can never go green by silently skipping the end-to-end suite.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "AUTHSVC_REQUIRE_E2E"


def unavailable(reason: str) -> NoReturn:
    """Skip the current test because of ``reason``, or fail it when CI requires it."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
