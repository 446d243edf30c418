"""/healthz, /readyz and /metrics on the admin listener (SPEC §7): no token needed,
readiness follows the store, Prometheus text with every documented metric, no secret."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from authsvc.rules.tokens import SECRET_PATTERN, TokenRecord, new_secret
from authsvc.service.runtime import Runtime
from tests.admin_helpers import (
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on (rotate)
)
from tests.webapp import NOW, Client, auth_status, bearer, mint

METRIC_NAMES = [
    "authsvc_decisions_total",
    "authsvc_decision_latency_seconds",
    "authsvc_cache_hits_total",
    "authsvc_cache_misses_total",
    "authsvc_store_errors_total",
    "authsvc_config_last_reload_successful",
    "authsvc_config_last_reload_success_timestamp_seconds",
]
# Presenting junk must not turn an open endpoint into a 401.
NO_TOKEN_VARIANTS = [
    pytest.param({}, id="no-token"),
    pytest.param({"Authorization": "Bearer junk"}, id="junk-token"),
]


async def samples(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) → value."""
    response = await client.get("/metrics")
    assert response.status == 200
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class TestHealthz:
    """GET /healthz: the process is alive."""

    @pytest.mark.parametrize("headers", NO_TOKEN_VARIANTS)
    async def test_ok_without_token(self, admin_client: Client, headers: dict[str, str]) -> None:
        """200 'ok' with no or a junk token."""
        response = await admin_client.get("/healthz", headers=headers)
        assert (response.status, await response.text()) == (200, "ok\n")

    async def test_ok_while_store_is_down(self, runtime: Runtime, admin_client: Client) -> None:
        """Liveness does not depend on the store."""
        await runtime.store.close()
        assert (await admin_client.get("/healthz")).status == 200


class TestReadyz:
    """GET /readyz: store reachable and configuration loaded."""

    @pytest.mark.parametrize("headers", NO_TOKEN_VARIANTS)
    async def test_ready(self, admin_client: Client, headers: dict[str, str]) -> None:
        """200 when the store answers, with no or a junk token."""
        response = await admin_client.get("/readyz", headers=headers)
        assert response.status == 200
        assert (await response.text()).startswith("ready")

    async def test_store_down_is_503_with_reason(
        self, runtime: Runtime, admin_client: Client
    ) -> None:
        """503 naming the store as the reason, and one more store error in the metrics."""
        await runtime.store.close()
        response = await admin_client.get("/readyz")
        assert response.status == 503
        assert "store" in await response.text()
        found = await samples(admin_client)
        assert found[("authsvc_store_errors_total", (("operation", "ping"),))] == 1.0

    async def test_failed_reload_is_reported_but_ready(
        self, runtime: Runtime, admin_client: Client
    ) -> None:
        """A failed reload keeps the last good configuration serving: still 200, with the error."""
        runtime.live.last_error = "authsvc.yaml: line 3: bad YAML"
        response = await admin_client.get("/readyz")
        text = await response.text()
        assert response.status == 200
        assert "line 3: bad YAML" in text


class TestMetrics:
    """GET /metrics: Prometheus text format, every documented metric, no secret."""

    @pytest.mark.parametrize("headers", NO_TOKEN_VARIANTS)
    async def test_every_documented_metric(
        self, admin_client: Client, headers: dict[str, str]
    ) -> None:
        """200, the Prometheus content type, and each metric of SPEC §7 present."""
        response = await admin_client.get("/metrics", headers=headers)
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
        for name in METRIC_NAMES:
            # declared (HELP line) even before its first sample: labelled counters such as
            # store errors have no series until something fails
            assert f"# HELP {name} " in text, name

    async def test_config_gauges(self, admin_client: Client) -> None:
        """The last load succeeded, at the runtime's clock time."""
        found = await samples(admin_client)
        assert found[("authsvc_config_last_reload_successful", ())] == 1.0
        assert found[("authsvc_config_last_reload_success_timestamp_seconds", ())] == NOW

    async def test_decisions_and_cache_are_counted(
        self, runtime: Runtime, admin_client: Client, auth_client: Client
    ) -> None:
        """/auth decisions by reason, their latency, and cache hits and misses."""
        _, secret = await mint(runtime, "Reader")
        assert await auth_status(auth_client, secret) == 200  # miss, then cached
        assert await auth_status(auth_client, secret) == 200  # hit
        assert await auth_status(auth_client, new_secret()) == 401  # miss, unknown
        found = await samples(admin_client)
        assert found[("authsvc_decisions_total", (("reason", "ok"),))] == 2.0
        assert found[("authsvc_decisions_total", (("reason", "invalid_token"),))] == 1.0
        assert found[("authsvc_decision_latency_seconds_count", ())] == 3.0
        assert found[("authsvc_cache_hits_total", ())] == 1.0
        assert found[("authsvc_cache_misses_total", ())] == 2.0

    async def test_admin_responses_are_counted_by_status(
        self, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """authsvc_admin_requests_total counts admin listener answers by status."""
        assert (await admin_client.get("/admin/v1/tokens")).status == 401
        ok = await admin_client.get("/admin/v1/tokens", headers=bearer(admin[1]))
        assert ok.status == 200
        found = await samples(admin_client)
        assert found[("authsvc_admin_requests_total", (("status", "401"),))] == 1.0
        assert found[("authsvc_admin_requests_total", (("status", "200"),))] == 1.0

    async def test_no_secret_anywhere(
        self,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        admin: tuple[TokenRecord, str],
    ) -> None:
        """After tokens are created, used, rotated and refused, no secret is in any answer."""
        target, secret = await mint(runtime, "Reader")
        await auth_status(auth_client, secret)
        rotated = await admin_client.post(
            f"/admin/v1/tokens/{target.id}/rotate", headers=bearer(admin[1])
        )
        new = (await rotated.json())["token"]
        await auth_status(auth_client, secret)
        await auth_status(auth_client, new)
        for path in ("/metrics", "/healthz", "/readyz"):
            text = await (await admin_client.get(path)).text()
            assert SECRET_PATTERN.search(text) is None, path
            for leaked in (admin[1], secret, new):
                assert leaked not in text
