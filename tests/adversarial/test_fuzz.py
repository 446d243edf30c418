"""The fuzz targets (tests/adversarial/fuzz_targets.py) for a few seconds each: libFuzzer
guided by coverage of authsvc, each target in a process of its own. Every run prints
``<target>: inputs tried: N`` (shown with ``pytest -s`` and in the terminal summary).

Run longer: ``scripts/fuzz --seconds 600`` (``--postgres URL`` adds PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.conftest import report_inputs
from tests.adversarial.fuzzing import run_target

#: Seconds of fuzzing per run in the test command (start-up comes on top): about 45 s.
SECONDS = {"request": 12, "config": 12, "admin-bodies": 10}


def _fuzz(target: str, label: str, tmp_path: Path, store_url: str | None = None) -> None:
    result = run_target(target, SECONDS[target], tmp_path, store_url=store_url)
    report_inputs(label, result.inputs)
    assert result.ok, f"{label} crashed after {result.inputs} inputs:\n{result.tail()}"
    assert result.inputs > 0, f"{label} tried no input:\n{result.tail()}"


class TestFuzzTargets:
    @pytest.mark.parametrize(
        "target",
        [
            pytest.param("request", id="request-describer"),
            pytest.param("config", id="config-loader"),
        ],
    )
    def test_pure_target_survives(self, target: str, tmp_path: Path) -> None:
        """describe() keeps its guarantees and parse_config() raises only ConfigError on
        every input libFuzzer tries."""
        _fuzz(target, target, tmp_path)

    def test_admin_bodies_survive(self, store_url: str, tmp_path: Path) -> None:
        """The admin API answers every create and PATCH body libFuzzer tries without a 5xx,
        in its error shape, and a refusal changes nothing in the store."""
        kind = store_url.split(":", 1)[0]
        _fuzz("admin-bodies", f"admin-bodies ({kind})", tmp_path, store_url)
