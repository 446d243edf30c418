"""Hypothesis profiles for the adversarial suite.

``ci`` (the default) keeps the test command bounded and reproducible: a fixed number of
examples per property, derandomised, no example database left in the tree. ``long`` runs
many more random examples; choose it for a longer hunt::

    AUTHSVC_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -q tests/adversarial \
        --hypothesis-show-statistics
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

PROFILE_ENV = "AUTHSVC_HYPOTHESIS_PROFILE"
#: Examples per property in the bounded run (the test command).
CI_EXAMPLES = 300
#: Examples per property in the long run.
LONG_EXAMPLES = 20_000

settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    deadline=None,  # the machine is shared: timing says nothing about correctness here
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=LONG_EXAMPLES,
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))

#: Counts of generated inputs in this session (fuzz runs, schemathesis), for the summary.
_COUNTS: list[str] = []


def report(line: str) -> None:
    """Print ``line`` (a count of inputs tried) now and again in the terminal summary."""
    print(line)
    _COUNTS.append(line)


def report_inputs(label: str, inputs: int) -> None:
    """Report ``<label>: inputs tried: N``."""
    report(f"{label}: inputs tried: {inputs}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The counts, so that a plain run shows them too."""
    if _COUNTS:
        terminalreporter.section("adversarial inputs")
        for line in _COUNTS:
            terminalreporter.write_line(line)
