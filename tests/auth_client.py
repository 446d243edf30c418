"""Test clients for both listeners exactly as ``serve`` builds them (server classes and
options included), for the pytest-aiohttp ``aiohttp_client`` fixture."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient

from authsvc.service.runtime import Runtime
from authsvc.web.app import create_admin_app
from authsvc.web.auth import create_auth_server
from authsvc.web.protocol import QuietAppRunner


class AuthTestServer(BaseTestServer):
    """A test server around :func:`create_auth_server`, options and all."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self._runtime = runtime

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return web.ServerRunner(create_auth_server(self._runtime))


async def auth_client(aiohttp_client: Any, runtime: Runtime) -> TestClient[Any, Any]:
    """``aiohttp_client`` (the pytest-aiohttp fixture) on the auth listener of ``runtime``."""
    client: TestClient[Any, Any] = await aiohttp_client(AuthTestServer(runtime))
    return client


class AdminTestServer(BaseTestServer):
    """A test server around :func:`create_admin_app` behind :class:`QuietAppRunner`."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.app = create_admin_app(runtime)

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return QuietAppRunner(self.app)


async def admin_client(aiohttp_client: Any, runtime: Runtime) -> TestClient[Any, Any]:
    """``aiohttp_client`` on the admin listener of ``runtime``."""
    client: TestClient[Any, Any] = await aiohttp_client(AdminTestServer(runtime))
    return client
