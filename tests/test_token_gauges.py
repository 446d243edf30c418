"""The token gauges of /metrics (SPEC §11): ``authsvc_tokens{status}`` and
``authsvc_tokens_expiring{within}``, counted in the store by a background task at least once a
minute and right after a policy change, kept through store outages; and the example alert
rule in deploy/prometheus/ that reads them."""

from __future__ import annotations

import asyncio
import http.client
import logging
import re
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from authsvc.service.runtime import Runtime
from authsvc.service.token_gauges import (
    EXPIRING_WINDOWS,
    REFRESH_INTERVAL,
    STATUSES,
    TokenGauges,
)
from authsvc.store import ListQuery, StoreUnavailable, TokenStore
from tests.factories import FrozenClock
from tests.processes import REPO, AuthsvcServer, free_port, write_authsvc_config
from tests.webapp import NOW, mint, use_config

DAY = 86400
ALERTS = REPO / "deploy" / "prometheus" / "authsvc-alerts.yml"
DEADLINE = 10.0  # seconds; a hang guard, never reached when healthy

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(exposition: bytes | str) -> Samples:
    """Every sample of a /metrics text: (name, sorted labels) → value."""
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def token_gauges(found: Samples, **extra: str) -> dict[str, float]:
    """The token gauges among ``found`` as ``{"active": n, ..., "7d": n, ...}``, for the
    series carrying the labels ``extra`` (e.g. ``worker="0"``)."""
    wanted = [("authsvc_tokens", "status", s) for s in STATUSES] + [
        ("authsvc_tokens_expiring", "within", w) for w, _ in EXPIRING_WINDOWS
    ]
    result = {}
    for name, label, value in wanted:
        key = (name, tuple(sorted({label: value, **extra}.items())))
        if key in found:
            result[value] = found[key]
    return result


def gauges_of(runtime: Runtime) -> dict[str, float]:
    return token_gauges(samples(runtime.metrics.exposition()))


async def eventually(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds (fail after DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def populated(runtime: Runtime, clock: FrozenClock) -> None:
    """At NOW: 'admin' (never expires), 'hours' (6h), 'days' (5d), 'weeks' (20d), 'old'
    (made 40 days earlier with 30d: expired)."""
    await mint(runtime, name="admin")
    await mint(runtime, "Reader", name="hours", expires_in="6h")
    await mint(runtime, "Reader", name="days", expires_in="5d")
    await mint(runtime, "Reader", name="weeks", expires_in="20d")
    clock.now = NOW - 40 * DAY
    await mint(runtime, "Reader", name="old", expires_in="30d")
    clock.now = NOW


EXPECTED = {"active": 4, "expired": 1, "blocked": 0, "1d": 1, "7d": 2, "30d": 3}


class FlakyStore:
    """The runtime's store, whose counts fail while ``down`` is set."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.down = False

    async def count_tokens(self, queries: Sequence[ListQuery]) -> list[int]:
        if self.down:
            raise StoreUnavailable("token store: connection refused")
        return await self.store.count_tokens(queries)


class TestCounts:
    """One count sets every gauge from the store, under the policy in force."""

    async def test_counts_by_status_and_window(self, runtime: Runtime, populated: None) -> None:
        """Each status and each window has its series with the store's count, and the
        timestamp says when it was counted."""
        await runtime.token_gauges().refresh()
        found = samples(runtime.metrics.exposition())
        assert token_gauges(found) == EXPECTED
        assert found[("authsvc_tokens_counted_timestamp_seconds", ())] == NOW

    async def test_no_series_before_the_first_count(self, runtime: Runtime) -> None:
        """Until a count has worked there are no token series, not made-up zeros; the
        timestamp says 0 (never), which the staleness alert reads as very old."""
        found = samples(runtime.metrics.exposition())
        assert token_gauges(found) == {}
        assert found[("authsvc_tokens_counted_timestamp_seconds", ())] == 0

    async def test_policy_decides_the_statuses(
        self, runtime: Runtime, populated: None, tmp_path: Path
    ) -> None:
        """A max_lifetime expires and brings closer what the tokens' own expiry does not;
        tokens switched off are all blocked and none active or expiring."""
        gauges = runtime.token_gauges()
        use_config(runtime, tmp_path, security_policy={"max_lifetime": "3d"})
        await gauges.refresh()
        # 'weeks' and 'days' (made at NOW) now stop at NOW + 3d, 'admin' too
        assert gauges_of(runtime) == {
            "active": 4,
            "expired": 1,
            "blocked": 0,
            "1d": 1,
            "7d": 4,
            "30d": 4,
        }
        use_config(runtime, tmp_path, security_policy={"tokens_enabled": False})
        await gauges.refresh()
        assert gauges_of(runtime) == {
            "active": 0,
            "expired": 0,
            "blocked": 5,
            "1d": 0,
            "7d": 0,
            "30d": 0,
        }


class TestOutage:
    """A store that cannot count leaves the last values in place and is logged once."""

    async def test_keeps_last_values_and_logs_once(
        self, runtime: Runtime, populated: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Failed counts change no gauge and warn once; the next good count updates them
        and says so once."""
        flaky = FlakyStore(runtime.store)
        gauges = TokenGauges(flaky, runtime.live, runtime.metrics, runtime.clock)  # type: ignore[arg-type]  # only count_tokens is used
        await gauges.refresh()
        flaky.down = True
        await mint(runtime, "Reader", name="later", expires_in="1h")
        with caplog.at_level(logging.INFO, logger="authsvc.token_gauges"):
            for _ in range(3):
                await gauges.refresh()
            assert gauges_of(runtime) == EXPECTED
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            assert "keeping the last counts" in warnings[0].getMessage()
            errors = samples(runtime.metrics.exposition())
            assert errors[("authsvc_store_errors_total", (("operation", "count"),))] == 3
            flaky.down = False
            await gauges.refresh()
            await gauges.refresh()
        assert gauges_of(runtime) == {**EXPECTED, "active": 5, "1d": 2, "7d": 3, "30d": 4}
        assert sum("works again" in r.getMessage() for r in caplog.records) == 1

    async def test_the_loop_survives_failing_counts(
        self, runtime: Runtime, populated: None
    ) -> None:
        """The background loop survives failing counts and counts again when it can."""
        flaky = FlakyStore(runtime.store)
        flaky.down = True
        gauges = TokenGauges(
            flaky,  # type: ignore[arg-type]  # only count_tokens is used
            runtime.live,
            runtime.metrics,
            runtime.clock,
            interval=0.02,
        )
        gauges.start()
        try:
            await asyncio.sleep(0.1)
            assert gauges_of(runtime) == {}
            flaky.down = False
            await eventually(lambda: gauges_of(runtime) == EXPECTED)
        finally:
            await gauges.stop()


class TestBackground:
    """The running task: at start, periodically, and right after a policy change."""

    async def test_counts_at_start_and_every_interval(
        self, runtime: Runtime, populated: None
    ) -> None:
        """A count at once, and again after each interval picks up new tokens."""
        gauges = TokenGauges(
            runtime.store, runtime.live, runtime.metrics, runtime.clock, interval=0.05
        )
        gauges.start()
        try:
            await eventually(lambda: gauges_of(runtime) == EXPECTED)
            await mint(runtime, "Reader", name="later", expires_in="1h")
            await eventually(lambda: gauges_of(runtime).get("1d") == 2)
        finally:
            await gauges.stop()

    async def test_counts_again_right_after_a_policy_change(
        self, runtime: Runtime, populated: None, tmp_path: Path
    ) -> None:
        """With an hour between periodic counts, a reload switching tokens off still shows
        within a moment."""
        gauges = TokenGauges(
            runtime.store,
            runtime.live,
            runtime.metrics,
            runtime.clock,
            interval=3600,
            policy_check=0.01,
        )
        gauges.start()
        try:
            await eventually(lambda: gauges_of(runtime) == EXPECTED)
            use_config(runtime, tmp_path, security_policy={"tokens_enabled": False})
            await eventually(lambda: gauges_of(runtime).get("blocked") == 5)
        finally:
            await gauges.stop()

    def test_default_interval_is_within_a_minute(self) -> None:
        """The contract: refreshed at least once a minute."""
        assert REFRESH_INTERVAL <= 60


class ServedMetrics:
    """A real ``authsvc serve`` whose tokens exist before it starts."""

    def __init__(self, workdir: Path, store_url: str, serve_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.store_url = store_url
        auth, admin = free_port(), free_port()
        self.ports = (auth, admin)
        self.server = AuthsvcServer(
            self.write(), workdir, auth_port=auth, admin_port=admin, serve_args=serve_args
        )

    def write(self, **policy: Any) -> Path:
        auth, admin = self.ports
        return write_authsvc_config(
            self.workdir,
            auth_port=auth,
            admin_port=admin,
            store=self.store_url,
            security_policy=policy,
        )

    def scrape(self) -> Samples:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.admin_port, timeout=5)
        try:
            connection.request("GET", "/metrics")
            return samples(connection.getresponse().read())
        finally:
            connection.close()

    def wait_for(self, check: Callable[[Samples], bool]) -> Samples:
        deadline = time.monotonic() + DEADLINE
        while True:
            found = self.scrape()
            if check(found):
                return found
            assert time.monotonic() < deadline, f"not in time: {found}\n{self.server.log()}"
            time.sleep(0.05)


@pytest.fixture
def served(tmp_path: Path, store_url: str) -> ServedMetrics:
    return ServedMetrics(tmp_path, store_url)


class TestServe:
    """``authsvc serve`` runs the gauges: counted at start, recounted after SIGHUP."""

    def test_serve_counts_and_recounts_after_a_reload(self, served: ServedMetrics) -> None:
        """Tokens made by the CLI before the start are counted; a reload switching tokens
        off shows them blocked at once, not a periodic interval later."""
        served.server.create_token("Reader", expires_in="2h")
        served.server.create_token("Reader", expires_in="10d")
        served.server.create_token("Reader")
        served.server.start()
        try:
            expected = {"active": 3, "expired": 0, "blocked": 0, "1d": 1, "7d": 1, "30d": 2}
            served.wait_for(lambda found: token_gauges(found) == expected)
            served.write(tokens_enabled=False)
            served.server.send(signal.SIGHUP)
            found = served.wait_for(lambda found: token_gauges(found).get("blocked") == 3)
            assert token_gauges(found)["active"] == 0
        finally:
            served.server.stop()

    def test_every_worker_reports_the_same_counts(self, tmp_path: Path, store_url: str) -> None:
        """With --workers 2 each worker shows its own series (label worker), all equal."""
        served = ServedMetrics(tmp_path, store_url, ("--workers", "2"))
        served.server.create_token("Reader", expires_in="3d")
        served.server.start()
        try:
            expected = {"active": 1, "expired": 0, "blocked": 0, "1d": 0, "7d": 1, "30d": 1}

            def both_counted(found: Samples) -> bool:
                return all(token_gauges(found, worker=w) == expected for w in ("0", "1"))

            served.wait_for(both_counted)
        finally:
            served.server.stop()


class TestAlertRule:
    """deploy/prometheus/authsvc-alerts.yml is a Prometheus rule file that reads the real
    metrics."""

    @pytest.fixture
    def rules(self) -> list[dict[str, Any]]:
        document = yaml.safe_load(ALERTS.read_text())
        assert set(document) == {"groups"}
        found = []
        for group in document["groups"]:
            assert set(group) == {"name", "rules"}
            assert isinstance(group["name"], str)
            assert group["name"]
            found += group["rules"]
        return found

    def test_rule_file_shape(self, rules: list[dict[str, Any]]) -> None:
        """Every rule is an alerting rule with the keys Prometheus knows, a duration in
        ``for`` and string labels and annotations."""
        assert rules
        for rule in rules:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert re.fullmatch(r"([0-9]+[smhdwy])+", rule["for"])
            assert isinstance(rule["expr"], str)
            assert rule["expr"].count("(") == rule["expr"].count(")")
            assert all(isinstance(v, str) for v in rule["labels"].values())
            assert {"summary", "description"} <= set(rule["annotations"])

    async def test_expiry_rule_reads_the_real_metric(
        self, rules: list[dict[str, Any]], runtime: Runtime, populated: None
    ) -> None:
        """The 7-day rule selects a series authsvc really exposes: the metric name and the
        ``within`` value appear in /metrics."""
        [rule] = [r for r in rules if "authsvc_tokens_expiring" in r["expr"]]
        selector = re.search(r"(authsvc_tokens_expiring)\{within=\"([^\"]+)\"\}", rule["expr"])
        assert selector is not None, rule["expr"]
        assert selector[2] == "7d"
        await runtime.token_gauges().refresh()
        exposed = samples(runtime.metrics.exposition())
        assert (selector[1], (("within", selector[2]),)) in exposed
        assert re.search(r"\) > 0$", rule["expr"])

    async def test_every_metric_named_is_exposed(
        self, rules: list[dict[str, Any]], runtime: Runtime, populated: None
    ) -> None:
        """No rule reads a metric authsvc does not have."""
        await runtime.token_gauges().refresh()
        exposed = {name for name, _ in samples(runtime.metrics.exposition())}
        for rule in rules:
            for name in re.findall(r"\bauthsvc_[a-z_]+", rule["expr"]):
                assert name in exposed, name
