"""The soak's judge: what it calls wrong, what it skips as in transition, which 5xx it
accepts, and when it reports memory growth (no server: a hand-made timeline)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from authsvc.config import Config
from authsvc.config.load import parse_config
from authsvc.rules.tokens import TokenRecord, new_secret
from tests.soak.oracle import Answer, Timeline, TokenState, Verdict, judge
from tests.soak.report import SoakReport
from tests.soak.workload import Knobs, Probe, document

T0 = 1_800_000_000.0  # the token's creation; everything below is relative to it
FOLDER = Path("/nonexistent-soak")
SECRET, OLD_SECRET, UNKNOWN = new_secret(), new_secret(), new_secret()
READER = TokenRecord("tok_00000000000000aa", "reader", frozenset({"Reader"}), None, T0, None, "cli")


def config(**knobs: Any) -> Config:
    """The soak's configuration file for ``knobs``, parsed."""
    data = document(Knobs(**knobs), FOLDER, "sqlite:///soak.db", (9090, 9091))
    return parse_config(yaml.safe_dump(data), FOLDER / "authsvc.yaml")


def timeline() -> Timeline:
    """Reader created at T0 (rotated from OLD_SECRET at T0+5, deleted through the CLI at
    T0+40 with the window running to T0+41.5), the default configuration, then at T0+20 a
    reload (confirmed at T0+20.1) that narrows Reader and carves 10.9.0.0/16 out of office."""
    line = Timeline()
    line.configure(T0 - 10, T0 - 10, config())
    line.token(READER.id, T0, T0, TokenState(READER, OLD_SECRET))
    line.token(READER.id, T0 + 5, T0 + 5.1, TokenState(READER, SECRET))
    line.configure(T0 + 20, T0 + 20.1, config(reader_narrow=True, office_carved=True))
    line.token(READER.id, T0 + 40, T0 + 41.5, None)
    return line


def ask(
    at: float,
    answered: tuple[int, str],
    *,
    secret: str = SECRET,
    uri: str = "/api/v1/items",
    real_ip: str | None = None,
    token_id: str = "",
    authorization: tuple[str, ...] | None = None,
) -> Answer:
    """A GET of ``uri`` presenting ``secret``, sent at T0+``at`` and answered 10 ms later."""
    header = (f"Bearer {secret}",) if authorization is None else authorization
    probe = Probe("live", header, "GET", uri, real_ip)
    return Answer(probe, T0 + at, T0 + at + 0.01, answered[0], answered[1], token_id)


OK = (200, "ok")
INVALID = (401, "invalid_token")
STORE_DOWN = (503, "store_unavailable")


class TestJudge:
    @pytest.mark.parametrize(
        ("answer", "verdict"),
        [
            pytest.param(ask(10, OK, token_id=READER.id), Verdict.CHECKED, id="allowed"),
            pytest.param(
                ask(10, OK, token_id="tok_00000000000000bb"),
                Verdict.WRONG,
                id="allowed-as-another-token",
            ),
            pytest.param(
                ask(10, (403, "permission_denied")), Verdict.WRONG, id="refused-what-is-granted"
            ),
            pytest.param(
                ask(10, OK, uri="/api/v1/extra"), Verdict.WRONG, id="allowed-a-permission-it-lacks"
            ),
            pytest.param(
                ask(10, OK, secret=OLD_SECRET), Verdict.WRONG, id="allowed-a-rotated-away-secret"
            ),
            pytest.param(
                ask(10, INVALID, secret=OLD_SECRET),
                Verdict.CHECKED,
                id="rotated-away-secret-refused",
            ),
            pytest.param(ask(5.05, OK, secret=OLD_SECRET), Verdict.TOKEN, id="during-the-rotation"),
            pytest.param(ask(10, INVALID, secret=UNKNOWN), Verdict.CHECKED, id="unknown-401"),
            pytest.param(
                ask(10, (403, "permission_denied"), secret=UNKNOWN), Verdict.WRONG, id="unknown-403"
            ),
            pytest.param(
                ask(10, (403, "bad_path"), secret=UNKNOWN, uri="/a/../b"),
                Verdict.CHECKED,
                id="bad-path-before-lookup",
            ),
            pytest.param(
                ask(25, OK, token_id=READER.id, uri="/api/v1/items/42"),
                Verdict.WRONG,
                id="old-catalog-after-reload",
            ),
            pytest.param(
                ask(20.05, OK, uri="/api/v1/items/42"), Verdict.CONFIG, id="during-the-reload"
            ),
            pytest.param(
                ask(20.05, (401, "malformed_token"), authorization=("Basic x",)),
                Verdict.CHECKED,
                id="malformed-needs-no-config",
            ),
            pytest.param(
                ask(10, OK, authorization=(f"Bearer {SECRET}",) * 2),
                Verdict.WRONG,
                id="two-headers-allowed",
            ),
            pytest.param(ask(10, OK, authorization=()), Verdict.WRONG, id="no-header-allowed"),
            pytest.param(
                ask(10, OK, token_id=READER.id, real_ip="10.9.0.5"),
                Verdict.CHECKED,
                id="any-address-without-filter",
            ),
            pytest.param(ask(41, OK, token_id=READER.id), Verdict.TOKEN, id="within-the-cli-bound"),
            pytest.param(
                ask(42, OK, token_id=READER.id), Verdict.WRONG, id="deleted-past-the-cli-bound"
            ),
            pytest.param(ask(42, INVALID), Verdict.CHECKED, id="deleted-refused"),
            pytest.param(ask(10, STORE_DOWN), Verdict.SERVER_ERROR, id="503-without-outage"),
            pytest.param(ask(10, (500, "")), Verdict.SERVER_ERROR, id="500"),
            pytest.param(ask(10, (0, "timeout")), Verdict.NO_ANSWER, id="no-answer"),
        ],
    )
    def test_verdict(self, answer: Answer, verdict: Verdict) -> None:
        """Each answer gets the verdict its timing and the rules call for."""
        assert judge(answer, timeline()).verdict is verdict

    @pytest.mark.parametrize(
        ("answer", "verdict"),
        [
            pytest.param(ask(10, STORE_DOWN), Verdict.OUTAGE, id="uncached-token"),
            pytest.param(ask(10, STORE_DOWN, secret=UNKNOWN), Verdict.OUTAGE, id="unknown-token"),
            pytest.param(ask(10, OK, token_id=READER.id), Verdict.CHECKED, id="cached-token"),
            pytest.param(
                ask(10, STORE_DOWN, authorization=("Basic x",)),
                Verdict.SERVER_ERROR,
                id="malformed-needs-no-store",
            ),
            pytest.param(
                ask(10, STORE_DOWN, uri="/a/../b"),
                Verdict.SERVER_ERROR,
                id="bad-path-needs-no-store",
            ),
            pytest.param(ask(10, (503, "internal_error")), Verdict.SERVER_ERROR, id="other-503"),
            pytest.param(ask(10, INVALID), Verdict.WRONG, id="existing-token-said-unknown"),
        ],
    )
    def test_during_an_outage(self, answer: Answer, verdict: Verdict) -> None:
        """In an outage 503 store_unavailable is accepted only where a lookup was needed."""
        line = timeline()
        line.outage(T0 + 9, T0 + 11)
        assert judge(answer, line).verdict is verdict

    @pytest.mark.parametrize(
        ("at", "answered", "verdict"),
        [
            pytest.param(59, OK, Verdict.CHECKED, id="before"),
            pytest.param(59.9, OK, Verdict.EXPIRY, id="at-the-instant"),
            pytest.param(60.9, (401, "expired"), Verdict.EXPIRY, id="within-the-shown-second"),
            pytest.param(62, OK, Verdict.WRONG, id="allowed-after"),
            pytest.param(62, (401, "expired"), Verdict.CHECKED, id="expired-after"),
        ],
    )
    def test_expiry(self, at: float, answered: tuple[int, str], verdict: Verdict) -> None:
        """Answers around an expiry instant are skipped; an allow after it is wrong."""
        line = Timeline()
        line.configure(T0 - 10, T0 - 10, config())
        expiring = replace(READER, expires_at=T0 + 60)
        line.token(READER.id, T0, T0, TokenState(expiring, SECRET))
        assert judge(ask(at, answered, token_id=READER.id), line).verdict is verdict


class TestMemoryBound:
    @pytest.mark.parametrize(
        ("end_kb", "fails"),
        [
            pytest.param(50_000 + 10 * 1024, False, id="10MB-under"),
            pytest.param(50_000 + 26 * 1024, True, id="26MB-over"),
        ],
    )
    def test_growth_past_the_bound_fails(self, end_kb: int, fails: bool) -> None:
        """VmRSS growth after warm-up past the bound is a failure of the soak."""
        report = SoakReport("sqlite", 1.0, 1.0, 0, rss_warm_kb=50_000, rss_end_kb=end_kb)
        report.rss_bound_mb = 25.0
        assert any("memory grew" in text for text in report.failures()) is fails
