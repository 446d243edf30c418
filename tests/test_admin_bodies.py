"""Hostile request bodies for create and PATCH (SECURITY 25): every one a 4xx in the error
shape naming the field at fault, never a 500, and nothing changed; the 64 KiB limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from authsvc.service.runtime import Runtime
from tests.admin_helpers import (
    TOKENS,
    UNKNOWN_ID,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    send,
)
from tests.webapp import Client, mint


def _json_text(value: Any) -> bytes:
    return json.dumps(value).encode()


_VALID = '"name": "n", "permissions": ["Reader"]'
# (raw body, status, code, field at fault): hostile bodies for POST /admin/v1/tokens
# (SECURITY 25). An unknown key is named as sent, cut to 40 characters as messages cut it.
HOSTILE_BODIES = [
    pytest.param(b"", 400, "invalid_json", None, id="empty"),
    pytest.param(b"not json", 400, "invalid_json", None, id="text"),
    pytest.param(b"{", 400, "invalid_json", None, id="truncated"),
    pytest.param(b"{'name': 'n'}", 400, "invalid_json", None, id="single-quotes"),
    pytest.param(b"null", 400, "invalid_json", None, id="null"),
    pytest.param(b"[]", 400, "invalid_json", None, id="array"),
    pytest.param(b'"x"', 400, "invalid_json", None, id="string"),
    pytest.param(b"1", 400, "invalid_json", None, id="number"),
    pytest.param(b"true", 400, "invalid_json", None, id="bool"),
    pytest.param(b"NaN", 400, "invalid_json", None, id="nan"),
    pytest.param(b"\xff\xfe\x00", 400, "invalid_json", None, id="not-utf8"),
    pytest.param(b"\x00" * 100, 400, "invalid_json", None, id="nul-bytes"),
    pytest.param(b"{" + _VALID.encode() + b"} trailing", 400, "invalid_json", None, id="trailing"),
    pytest.param(b"[" * 100_000, 413, "body_too_large", None, id="deep-open-100k"),
    pytest.param(b"[" * 60_000, 400, "invalid_json", None, id="deep-open-60k"),
    pytest.param(b"[" * 30_000 + b"]" * 30_000, 400, "invalid_json", None, id="deep-closed"),
    pytest.param(b'{"a":' * 10_000, 400, "invalid_json", None, id="deep-objects"),
    pytest.param(
        b'{"name":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        400,
        "invalid_json",
        None,
        id="deep-in-field",
    ),
    pytest.param(b'{"name": ' + b"9" * 5000 + b"}", 400, "invalid_json", None, id="5000-digit-int"),
    pytest.param(
        b'{"name": "\\ud800", "permissions": ["Reader"]}',
        400,
        "invalid_json",
        None,
        id="lone-surrogate-name",
    ),
    pytest.param(
        b'{"name": "n", "permissions": ["\\udfff"]}',
        400,
        "invalid_json",
        None,
        id="lone-surrogate-permission",
    ),
    pytest.param(b'{"\\ud800": 1}', 400, "invalid_json", None, id="lone-surrogate-key"),
    pytest.param(
        b'{"name": 1e999, "permissions": ["Reader"]}',
        422,
        "invalid_field",
        "name",
        id="infinite-name",
    ),
    pytest.param(
        b'{"name": NaN, "permissions": ["Reader"]}', 422, "invalid_field", "name", id="nan-name"
    ),
    pytest.param(
        _json_text({"name": 5, "permissions": ["Reader"]}),
        422,
        "invalid_field",
        "name",
        id="name-number",
    ),
    pytest.param(
        _json_text({"name": None, "permissions": ["Reader"]}),
        422,
        "invalid_field",
        "name",
        id="name-null",
    ),
    pytest.param(
        _json_text({"name": ["n"], "permissions": ["Reader"]}),
        422,
        "invalid_field",
        "name",
        id="name-list",
    ),
    pytest.param(
        _json_text({"name": {"n": 1}, "permissions": ["Reader"]}),
        422,
        "invalid_field",
        "name",
        id="name-object",
    ),
    pytest.param(
        _json_text({"name": True, "permissions": ["Reader"]}),
        422,
        "invalid_field",
        "name",
        id="name-bool",
    ),
    pytest.param(
        _json_text({"permissions": ["Reader"]}), 422, "invalid_field", "name", id="name-missing"
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": "x"}),
        422,
        "invalid_field",
        "permissions",
        id="permissions-string",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [1]}),
        422,
        "invalid_field",
        "permissions",
        id="permissions-number-item",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [None]}),
        422,
        "invalid_field",
        "permissions",
        id="permissions-null-item",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [["Reader"]]}),
        422,
        "invalid_field",
        "permissions",
        id="permissions-nested",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": {"Reader": True}}),
        422,
        "invalid_field",
        "permissions",
        id="permissions-object",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": None}),
        422,
        "invalid_field",
        "permissions",
        id="permissions-null",
    ),
    pytest.param(
        _json_text({"name": "n"}), 422, "invalid_field", "permissions", id="permissions-missing"
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "expires_in": 30}),
        422,
        "invalid_field",
        "expires_in",
        id="expires-in-number",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "expires_in": True}),
        422,
        "invalid_field",
        "expires_in",
        id="expires-in-bool",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "expires_in": ["1d"]}),
        422,
        "invalid_field",
        "expires_in",
        id="expires-in-list",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "ip_filter": 1}),
        422,
        "invalid_field",
        "ip_filter",
        id="ip-filter-number",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "ip_filter": ["office"]}),
        422,
        "invalid_field",
        "ip_filter",
        id="ip-filter-list",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "nam": "x"}),
        422,
        "unknown_field",
        "nam",
        id="unknown-field",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "id": UNKNOWN_ID}),
        422,
        "unknown_field",
        "id",
        id="field-id",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "created_by": "cli"}),
        422,
        "unknown_field",
        "created_by",
        id="field-created-by",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "token": "authsvc_x"}),
        422,
        "unknown_field",
        "token",
        id="field-token",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "__proto__": {}}),
        422,
        "unknown_field",
        "__proto__",
        id="field-proto",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "name\u0000": "x"}),
        422,
        "unknown_field",
        "name\u0000",
        id="field-with-nul",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"], "x" * 5000: 1}),
        422,
        "unknown_field",
        "x" * 40,
        id="field-5000-chars",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": [f"P{i}" for i in range(5000)]}),
        422,
        "unknown_permission",
        "permissions",
        id="5000-permissions",
    ),
    pytest.param(
        _json_text({"name": "n" * 60_000, "permissions": ["Reader"]}),
        422,
        "invalid_name",
        "name",
        id="60k-name",
    ),
    pytest.param(
        _json_text({"name": "n", "permissions": ["Reader"] * 5000}),
        201,
        None,
        None,
        id="repeated-permission",
    ),
]


async def _chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    """``data`` sent with Transfer-Encoding: chunked (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class TestHostileBodies:
    """Bad bodies get a 4xx in the error shape, never a 500, and change nothing."""

    @pytest.mark.parametrize(("raw", "status", "code", "field"), HOSTILE_BODIES)
    async def test_create(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        raw: bytes,
        status: int,
        code: str | None,
        field: str | None,
    ) -> None:
        """Each hostile create body answers its documented status, code and field."""
        reply = await send(
            admin_client,
            "POST",
            TOKENS,
            admin_secret,
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        if code is None:
            assert reply.status == status, reply.body
            return
        error_of(reply, code, status, field=field)
        assert len(await runtime.store.all_tokens()) == 1

    @pytest.mark.parametrize(("raw", "status", "code", "field"), HOSTILE_BODIES)
    async def test_patch_never_500s(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        raw: bytes,
        status: int,
        code: str | None,
        field: str | None,
    ) -> None:
        """The same bodies sent to PATCH get a 4xx in the error shape; the token is unchanged."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(admin_client, "PATCH", f"{TOKENS}/{target.id}", admin_secret, data=raw)
        if reply.status == 200:  # {"permissions": [...]} alone is a valid PATCH body
            assert set(json.loads(raw)) == {"permissions"}
            return
        assert 400 <= reply.status < 500, reply.body
        # PATCH judges the same body by other rules (a create key is unknown to it): the
        # code and field are its own, only the shape is checked here.
        error = reply.body["error"]
        error_of(reply, error["code"], reply.status, field=error.get("field"))
        assert (await runtime.service.get(target.id)).permissions == {"Reader"}

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    @pytest.mark.parametrize("method", ["POST", "PATCH"])
    async def test_body_over_64_kib_is_413(
        self,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        chunked: bool,
        method: str,
    ) -> None:
        """One byte over 64 KiB is 413 body_too_large, with or without Content-Length."""
        target, _ = await mint(runtime, "Reader")
        path = TOKENS if method == "POST" else f"{TOKENS}/{target.id}"
        raw = b'{"name": "' + b"n" * (64 * 1024 - 11) + b'"}'
        assert len(raw) == 64 * 1024 + 1
        data = _chunks(raw) if chunked else raw
        reply = await send(admin_client, method, path, admin_secret, data=data)
        error_of(reply, "body_too_large", 413)

    @pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
    async def test_body_of_exactly_64_kib_is_read(
        self, admin_client: Client, admin_secret: str, chunked: bool
    ) -> None:
        """A 64 KiB body is within the limit: it is parsed and judged on its content."""
        head = b'{"permissions": ["Reader"], "name": "'
        raw = head + b"n" * (64 * 1024 - len(head) - 2) + b'"}'
        assert len(raw) == 64 * 1024
        reply = await send(
            admin_client, "POST", TOKENS, admin_secret, data=_chunks(raw) if chunked else raw
        )
        error_of(reply, "invalid_name", 422, field="name")

    async def test_large_body_without_token_is_401(self, admin_client: Client) -> None:
        """Authentication comes first: an anonymous huge body gets 401, not 413."""
        reply = await send(admin_client, "POST", TOKENS, data=b"[" * 100_000)
        error_of(reply, "unauthorized", 401)
