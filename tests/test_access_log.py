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
