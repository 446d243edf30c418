"""The admin listener's access log never carries a secret (SECURITY 14)."""

from __future__ import annotations

import logging
import re

import pytest

from authsvc.service.runtime import Runtime
from tests.webapp import Client, bearer, mint

SECRET = re.compile(r"authsvc_[0-9A-Za-z]{49}")


class TestAdminAccessLog:
    async def test_query_string_and_headers_are_not_logged(
        self, admin_client: Client, runtime: Runtime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A token pasted into a query string, Referer or User-Agent stays out of the log,
        while the request itself is logged (method, path, status: 400 for the unknown
        query parameter)."""
        _, secret = await mint(runtime, "ViewOrganizationTokens", name="viewer")
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            response = await admin_client.get(
                f"/admin/v1/tokens?access_token={secret}",
                headers={
                    **bearer(secret),
                    "Referer": f"https://x/?t={secret}",
                    "User-Agent": secret,
                },
            )
            await response.read()
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        assert any('"GET /admin/v1/tokens" 400' in line for line in lines), lines
        assert not any(SECRET.search(line) for line in lines)

    @pytest.mark.parametrize(
        "path",
        [
            pytest.param("/admin/v1/tokens/{secret}", id="whole-secret-as-id"),
            pytest.param("/admin/v1/tokens/{secret}/rotate", id="secret-mid-path"),
            pytest.param("/{cut}", id="secret-cut-short"),
            pytest.param("/admin/v1/tokens/x%2F{secret}", id="after-an-encoded-slash"),
        ],
    )
    async def test_secret_in_the_path_is_redacted(
        self, admin_client: Client, runtime: Runtime, caplog: pytest.LogCaptureFixture, path: str
    ) -> None:
        """A secret pasted into the path is logged as authsvc_[redacted], not as itself."""
        _, secret = await mint(runtime, "ViewOrganizationTokens", name="viewer")
        target = path.format(secret=secret, cut=secret[:30])
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            response = await admin_client.get(target, headers={"Authorization": f"Bearer {secret}"})
            await response.read()
        lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
        assert any("authsvc_[redacted]" in line for line in lines), lines
        assert not any(secret[8:28] in line for line in lines), lines
