"""The soak's bounded slice on each store (about 15 s each), and the soak run against a
deliberately broken server, which it must fail. The longer run: ``scripts/soak``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.soak.broken import CRASHES, WRONGLY_ALLOWED, inject
from tests.soak.harness import SoakOptions, soak
from tests.soak.oracle import Verdict

pytestmark = pytest.mark.e2e

#: 12 s at 150 requests/s: 1800 requests, about 7 reloads, 20 to 40 token changes.
SLICE = SoakOptions(seconds=12.0, rate=150.0, warmup=3.0, seed=20261202)
RecordProperty = Callable[[str, object], None]


def _log(report_text: str, properties: dict[str, object], record: RecordProperty) -> None:
    print(f"\n{report_text}")
    for name, value in properties.items():
        record(name, value)


class TestSoakSlice:
    async def test_every_settled_answer_follows_the_rules(
        self, store_url: str, tmp_path: Path, record_property: RecordProperty
    ) -> None:
        """Under load, changes, reloads and a store cut: no wrong answer, no 5xx, flat memory."""
        outage = "cut" if store_url.startswith("postgresql") else None
        report = await soak(tmp_path / "soak", store_url, replace(SLICE, outage=outage))
        _log(report.text(), report.properties(), record_property)
        assert not report.failures(), "\n".join(report.failures())
        # It really soaked: most answers were checked, every outcome and change happened.
        assert report.verdicts[Verdict.CHECKED.value] >= 0.6 * report.sent
        assert {200, 401, 403} <= set(report.statuses)
        assert {"ok", "expired", "ip_not_allowed", "permission_denied", "invalid_token"} <= set(
            report.reasons
        )
        assert {"admin create", "admin rotate", "admin delete"} <= set(report.changes)
        assert any(kind.startswith("cli ") and "admin" not in kind for kind in report.changes)
        assert report.reloads >= 3
        assert report.reloads_logged >= report.reloads
        if outage is not None:
            assert report.verdicts[Verdict.OUTAGE.value] > 0, "the outage was never seen"


class TestSoakCatchesBrokenServer:
    async def test_wrong_allow_5xx_and_leak_are_each_reported(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        record_property: RecordProperty,
    ) -> None:
        """A server that wrongly allows, crashes and leaks fails the soak on all three."""
        monkeypatch.setenv("PYTHONPATH", str(inject(tmp_path / "inject")))
        options = replace(SLICE, seconds=6.0, warmup=2.0)
        report = await soak(tmp_path / "soak", f"sqlite:///{tmp_path / 'authsvc.db'}", options)
        _log(report.text(), report.properties(), record_property)
        failures = "\n".join(report.failures())
        assert report.verdicts[Verdict.WRONG.value] > 0, failures
        assert f"X-Original-Method {WRONGLY_ALLOWED!r}" in failures
        assert report.verdicts[Verdict.SERVER_ERROR.value] > 0, failures
        assert f"X-Original-URI {CRASHES!r}" in failures
        assert "memory grew by" in failures
