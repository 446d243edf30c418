"""Shared fixtures for tests of the admin listener (admin API, health, metrics, OpenAPI).

Load it from a test module with ``pytest_plugins = ("tests.webapp",)``. It provides:

- ``clock``: a :class:`FrozenClock` at a fixed, realistic time;
- ``runtime``: a :class:`Runtime` opened on ``make_config(tmp_path)`` (closed at teardown);
- ``admin_client`` / ``auth_client``: aiohttp test clients for the admin and auth apps;
- ``admin``: a ``ManageOrganizationTokens`` token minted through the CLI path, and
  ``admin_secret``, its secret alone;

and helpers to mint tokens, swap the configuration in force and read the audit log.

Test modules import the helpers before pytest loads this module as a plugin, too late
for assertion rewriting; the marker PYTEST_DONT_REWRITE says that is expected (the
helpers' asserts carry their own messages).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from tests.auth_client import admin_client as make_admin_client
from tests.auth_client import auth_client as make_auth_client
from tests.factories import FrozenClock, make_config

Client = TestClient[web.Request, web.Application]
ClientMaker = Callable[[web.Application], Awaitable[Client]]

ENVIRON = {"AUTHSVC_SECRET_KEY": "x" * 40}
NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
MANAGE = "ManageOrganizationTokens"
VIEW = "ViewOrganizationTokens"
#: A request the catalog's ``Reader`` permission grants, for GET /auth.
READ_ITEMS = {"X-Original-Method": "GET", "X-Original-URI": "/api/v1/items/42"}

_names = itertools.count(1)


def bearer(secret: str) -> dict[str, str]:
    """The Authorization header presenting ``secret``."""
    return {"Authorization": f"Bearer {secret}"}


async def mint(
    runtime: Runtime,
    *permissions: str,
    name: str | None = None,
    expires_in: str | None = None,
    ip_filter: str | None = None,
) -> tuple[TokenRecord, str]:
    """Create a token the way the CLI does (actor ``cli``); (record, secret)."""
    return await runtime.service.create(
        actor="cli",
        client=None,
        name=name or f"token {next(_names)}",
        permissions=list(permissions or (MANAGE,)),
        expires_in=expires_in,
        ip_filter=ip_filter,
    )


def use_config(runtime: Runtime, tmp_path: Path, **overrides: Any) -> None:
    """Put ``make_config(tmp_path, **overrides)`` in force, as a reload would."""
    runtime.live.current = make_config(tmp_path, **overrides)


def audit_entries(runtime: Runtime) -> list[dict[str, Any]]:
    """Every record of the audit log so far (none if the file does not exist yet)."""
    path = runtime.live.current.audit_log
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def audit_text(runtime: Runtime) -> str:
    """The audit log's raw text ('' if it does not exist yet)."""
    path = runtime.live.current.audit_log
    return path.read_text() if path.exists() else ""


def assert_error(
    status: int, body: Any, code: str, expected: int, *, field: str | None = None
) -> None:
    """``body`` is the admin API error shape with ``code``, answered with ``expected``,
    naming ``field`` as the input at fault (None: no ``field`` key at all)."""
    assert status == expected, f"status {status}, expected {expected}: {body!r}"
    assert isinstance(body, dict), f"not a JSON object: {body!r}"
    assert set(body) == {"error"}, f"not the error shape: {body!r}"
    keys = {"code", "message"} if field is None else {"code", "message", "field"}
    assert set(body["error"]) == keys, f"not the error shape naming {field!r}: {body!r}"
    assert body["error"]["code"] == code, f"code {body['error']['code']!r}, expected {code!r}"
    assert body["error"].get("field") == field, f"field of {body!r}, expected {field!r}"
    message = body["error"]["message"]
    assert isinstance(message, str), f"message is not a string: {body!r}"
    assert message, "the message is empty"


async def auth_status(
    auth_client: Client, secret: str, headers: Iterable[tuple[str, str]] = ()
) -> int:
    """The status GET /auth answers for ``secret`` on a ``Reader`` request."""
    response = await auth_client.get(
        "/auth", headers={**bearer(secret), **READ_ITEMS, **dict(headers)}
    )
    return response.status


@pytest.fixture
def clock() -> FrozenClock:
    """Wall time for expiry and the audit log, frozen at NOW."""
    return FrozenClock(NOW)


@pytest.fixture
async def runtime(tmp_path: Path, clock: FrozenClock, store_url: str) -> AsyncIterator[Runtime]:
    """A runtime on a fresh store of each kind (SQLite file, PostgreSQL schema); closed at
    teardown."""
    config = make_config(tmp_path, store=store_url)
    opened = await Runtime.open(config, clock=clock, environ=ENVIRON)
    yield opened
    await opened.close()


@pytest.fixture
async def admin_client(runtime: Runtime, aiohttp_client: ClientMaker) -> Client:
    """A client of the admin listener (admin API, OpenAPI, health, metrics)."""
    return await make_admin_client(aiohttp_client, runtime)


@pytest.fixture
async def auth_client(runtime: Runtime, aiohttp_client: ClientMaker) -> Client:
    """A client of the auth listener on the same runtime."""
    return await make_auth_client(aiohttp_client, runtime)


@pytest.fixture
async def admin(runtime: Runtime) -> tuple[TokenRecord, str]:
    """A token holding ManageOrganizationTokens: (record, secret)."""
    return await mint(runtime, MANAGE, name="admin")


@pytest.fixture
def admin_secret(admin: tuple[TokenRecord, str]) -> str:
    """The secret of the ``admin`` fixture's Manage token."""
    return admin[1]
