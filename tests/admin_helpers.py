"""Helpers shared by the admin API test modules (tests/test_admin_*.py): one call and its
answer, the error shape, a create body, and the tables of read and write calls.

The fixtures they use (``runtime``, ``admin_client``, ``admin_secret``...) come from
``tests.webapp``, except ``admin``: a module that imports :func:`granting_admin` gets an
admin token that holds every permission of the test catalog, so that it may hand them on
(the delegation bounds of docs/admin-api.md). This module is imported, not loaded as a
plugin, so pytest does not rewrite its asserts: each one carries its own message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from tests.webapp import MANAGE, Client, assert_error, bearer, mint

TOKENS = "/admin/v1/tokens"
UNKNOWN_ID = "tok_0123456789abcdef"
DAY = 86400
#: "Send no body" (None would send the JSON ``null``).
ABSENT: Any = object()
#: Every permission an admin token needs to hand on what the tests ask for.
GRANTING = (MANAGE, "Reader", "Writer")


@pytest.fixture(name="admin")
async def granting_admin(runtime: Runtime) -> tuple[TokenRecord, str]:
    """The ``admin`` of the modules that import this: ManageOrganizationTokens plus every
    catalog permission, minted through the CLI path; (record, secret)."""
    return await mint(runtime, *GRANTING, name="admin")


@dataclass(frozen=True, slots=True)
class Reply:
    """One admin API answer: status, headers and the parsed JSON body (None if not JSON)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: Any
    text: str


async def send(
    client: Client,
    method: str,
    path: str | URL,
    secret: str | None = None,
    *,
    body: Any = ABSENT,
    data: Any = None,
    headers: dict[str, str] | CIMultiDict[str] | None = None,
) -> Reply:
    """Make one call, presenting ``secret`` (if any) and ``body`` as JSON (if given)."""
    sent: CIMultiDict[str] = CIMultiDict(bearer(secret) if secret else {})
    sent.extend(headers or {})
    if body is not ABSENT:
        data = json.dumps(body)
        sent.setdefault("Content-Type", "application/json")
    async with client.request(method, path, data=data, headers=sent) as response:
        text = await response.text()
        is_json = text and response.content_type == "application/json"
        parsed = json.loads(text) if is_json else None
        return Reply(response.status, response.headers, parsed, text)


def error_of(reply: Reply, code: str, status: int, *, field: str | None = None) -> None:
    """``reply`` is an error in the documented shape, naming ``field`` as the input at
    fault (None: the error is about the whole request and has no ``field`` key)."""
    assert_error(reply.status, reply.body, code, status, field=field)
    cache_control = reply.headers["Cache-Control"]
    assert cache_control == "no-store", f"Cache-Control {cache_control!r}, expected no-store"


def new_token(name: str = "ci deploys", **fields: Any) -> dict[str, Any]:
    """A create request body."""
    return {"name": name, "permissions": ["Reader"], **fields}


# (method, path with "{id}" for a target token, body): every read and every write.
READS = [
    pytest.param("GET", TOKENS, ABSENT, id="list"),
    pytest.param("GET", f"{TOKENS}/{{id}}", ABSENT, id="show"),
    pytest.param("GET", "/admin/v1/permissions", ABSENT, id="permissions"),
    pytest.param("GET", "/admin/v1/ip-filters", ABSENT, id="ip-filters"),
    pytest.param("GET", "/admin/v1/policy", ABSENT, id="policy"),
    pytest.param("GET", f"{TOKENS}/{{id}}/usage", ABSENT, id="usage"),
]
WRITES = [
    pytest.param("POST", TOKENS, new_token("new"), id="create"),
    pytest.param("PATCH", f"{TOKENS}/{{id}}", {"permissions": ["Writer"]}, id="patch"),
    pytest.param("POST", f"{TOKENS}/{{id}}/rotate", ABSENT, id="rotate"),
    pytest.param("DELETE", f"{TOKENS}/{{id}}", ABSENT, id="delete"),
]
