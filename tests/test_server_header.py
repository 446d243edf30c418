"""Neither listener names its software: no ``Server: Python/… aiohttp/…`` header on any
answer, parser refusals included (an empty ``Server`` is what aiohttp leaves)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from authsvc.service.runtime import Runtime
from tests.webapp import READ_ITEMS, bearer, mint

Client = TestClient[web.Request, web.Application]


def assert_anonymous(headers: Mapping[str, str], what: str) -> None:
    server = headers.get("Server", "")
    assert server == "", f"{what} names the server: {server!r}"


async def raw_exchange(port: int | None, request: bytes) -> bytes:
    """Send ``request`` as raw bytes and return everything the server answers."""
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read(65536)
    writer.close()
    await writer.wait_closed()
    return answer


class TestAuthListener:
    """Every answer of the auth listener."""

    @pytest.mark.parametrize(
        ("path", "method", "headers"),
        [
            pytest.param("/auth", "GET", {}, id="missing-token-401"),
            pytest.param("/auth", "GET", {"Authorization": "Bearer junk"}, id="junk-401"),
            pytest.param("/auth", "POST", {}, id="method-405"),
            pytest.param("/elsewhere", "GET", {}, id="path-404"),
        ],
    )
    async def test_refusals(
        self, auth_client: Client, path: str, method: str, headers: dict[str, str]
    ) -> None:
        """401, 404 and 405 carry no server name."""
        response = await auth_client.request(method, path, headers={**READ_ITEMS, **headers})
        assert_anonymous(response.headers, f"{method} {path}")

    async def test_allow_and_deny(self, auth_client: Client, runtime: Runtime) -> None:
        """200 and 403 carry no server name."""
        _, secret = await mint(runtime, "Reader")
        allowed = await auth_client.get("/auth", headers={**bearer(secret), **READ_ITEMS})
        assert allowed.status == 200
        assert_anonymous(allowed.headers, "an allow")
        denied = await auth_client.get(
            "/auth", headers={**bearer(secret), **READ_ITEMS, "X-Original-Method": "DELETE"}
        )
        assert denied.status == 403
        assert_anonymous(denied.headers, "a denial")

    async def test_unparseable_request(self, auth_client: Client) -> None:
        """The parser's own 400 names no server either."""
        answer = await raw_exchange(auth_client.port, b"GET /auth HTTP/1.1\r\nBad Header\r\n\r\n")
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        assert head.split("\r\n", 1)[0].endswith("400 bad request")
        assert "aiohttp" not in head
        assert "python" not in head


class TestAdminListener:
    """Every kind of answer of the admin listener."""

    @pytest.mark.parametrize(
        "path",
        [
            pytest.param("/healthz", id="health"),
            pytest.param("/metrics", id="metrics"),
            pytest.param("/", id="page"),
            pytest.param("/app.js", id="static"),
            pytest.param("/admin/v1/openapi.json", id="openapi"),
            pytest.param("/admin/v1/tokens", id="api-401"),
            pytest.param("/no/such/route", id="route-404"),
        ],
    )
    async def test_answers(self, admin_client: Client, path: str) -> None:
        """Pages, API answers, refusals and router 404s carry no server name."""
        response = await admin_client.get(path)
        assert_anonymous(response.headers, f"GET {path} ({response.status})")

    async def test_unparseable_request(self, admin_client: Client) -> None:
        """The parser's own 400 names no server either."""
        answer = await raw_exchange(admin_client.port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        assert head.split("\r\n", 1)[0].endswith("400 bad request")
        assert "aiohttp" not in head
        assert "python" not in head
