"""Suite-wide fixtures and a guard.

Fixture plugins: ``tests.pg`` (PostgreSQL databases and schemas), ``tests.webapp`` (a runtime
and clients of both listeners), ``tests.stores`` (``store_url``, one per store kind, and the
store contract suite's ``backend``, ``new_store`` and ``store``).

The guard: in CI (AUTHSVC_REQUIRE_E2E=1) a run in which no end-to-end test passed is a
failed run, however that came about (deselected, not collected, skipped)."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ("tests.pg", "tests.webapp", "tests.stores")

_passed_e2e = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _passed_e2e  # noqa: PLW0603 - a per-session counter for one hook pair
    if report.when == "call" and report.passed and "e2e" in report.keywords:
        _passed_e2e += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("AUTHSVC_REQUIRE_E2E") == "1" and exitstatus == 0 and _passed_e2e == 0:
        print("\nrequired in CI: no end-to-end test passed (AUTHSVC_REQUIRE_E2E=1)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
