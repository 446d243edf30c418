"""The admin API's errors (SPEC §4, SECURITY 14): no secret in any error body (``message``
or ``field``), unknown routes and wrong methods, the store gone, oversized request heads."""

from __future__ import annotations

from typing import Any

import pytest
from yarl import URL

from authsvc.service.runtime import Runtime
from tests.admin_helpers import (
    READS,
    TOKENS,
    UNKNOWN_ID,
    WRITES,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    new_token,
    send,
)
from tests.webapp import Client, audit_text, mint

REDACTED = "authsvc_[redacted]"


class TestSecretsNeverInErrors:
    """Error bodies never carry a secret, even one pasted into the wrong field (SECURITY 14)."""

    @pytest.mark.parametrize(
        ("make_body", "code", "field"),
        [
            pytest.param(
                lambda s: new_token(permissions=[s]), "unknown_permission", "permissions", id="perm"
            ),
            pytest.param(
                lambda s: new_token(ip_filter=s), "unknown_ip_filter", "ip_filter", id="ip-filter"
            ),
            pytest.param(
                lambda s: new_token(expires_in=s), "invalid_expiry", "expires_in", id="expiry"
            ),
            # The unknown key is the secret itself: its field is redacted like the message.
            pytest.param(
                lambda s: {**new_token(), s: 1}, "unknown_field", REDACTED, id="field-name"
            ),
        ],
    )
    async def test_pasted_secret_is_not_echoed(
        self, admin_client: Client, admin_secret: str, make_body: Any, code: str, field: str
    ) -> None:
        """The refusal explains itself without repeating the secret (or 20 chars of it)."""
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=make_body(admin_secret))
        error_of(reply, code, 422, field=field)
        assert admin_secret[8:28] not in reply.text

    async def test_secret_as_query_parameter_is_not_echoed(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A secret sent as an unknown list parameter is named only redacted."""
        path = URL(f"{TOKENS}?{admin_secret}=1", encoded=True)
        reply = await send(admin_client, "GET", path, admin_secret)
        error_of(reply, "invalid_query", 400, field=REDACTED)
        assert admin_secret[8:28] not in reply.text

    async def test_name_taken_with_a_secret_as_name(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A 409 about a token named like a secret does not repeat that name."""
        body = new_token(name=admin_secret)
        assert (await send(admin_client, "POST", TOKENS, admin_secret, body=body)).status == 201
        reply = await send(admin_client, "POST", TOKENS, admin_secret, body=body)
        error_of(reply, "name_taken", 409, field="name")
        assert admin_secret not in reply.text


class TestRoutingErrors:
    """Unknown routes and wrong methods answer in the error shape too."""

    @pytest.mark.parametrize(
        "path",
        [
            "/admin",
            "/admin/v1",
            "/admin/v1/",
            "/admin/v2/tokens",
            "/admin/v1/tokens/",
            "/admin/v1/nope",
            "/admin/v1/Tokens",
            f"/admin/v1/tokens/{UNKNOWN_ID}/rotate/x",
            "/admin/v1/permissions/",
            "/.env",
            "/admin/v1/%2e%2e/healthz",
        ],
    )
    @pytest.mark.parametrize("authenticated", [False, True], ids=["anonymous", "admin"])
    async def test_unknown_route_is_404(
        self, admin_client: Client, admin_secret: str, path: str, authenticated: bool
    ) -> None:
        """404 not_found in the error shape, with or without a token."""
        secret = admin_secret if authenticated else None
        reply = await send(admin_client, "GET", URL(path, encoded=True), secret)
        error_of(reply, "not_found", 404)

    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("PUT", TOKENS, {"GET", "POST"}),
            ("DELETE", TOKENS, {"GET", "POST"}),
            ("PATCH", TOKENS, {"GET", "POST"}),
            ("PUT", f"{TOKENS}/{UNKNOWN_ID}", {"GET", "PATCH", "DELETE"}),
            ("POST", f"{TOKENS}/{UNKNOWN_ID}", {"GET", "PATCH", "DELETE"}),
            ("GET", f"{TOKENS}/{UNKNOWN_ID}/rotate", {"POST"}),
            ("POST", "/admin/v1/permissions", {"GET"}),
            ("POST", "/admin/v1/ip-filters", {"GET"}),
            ("PUT", "/admin/v1/policy", {"GET"}),
            ("POST", "/admin/v1/openapi.json", {"GET"}),
            ("POST", "/healthz", {"GET", "HEAD"}),
            ("DELETE", "/metrics", {"GET", "HEAD"}),
        ],
    )
    async def test_wrong_method_is_405(
        self, admin_client: Client, admin_secret: str, method: str, path: str, allowed: set[str]
    ) -> None:
        """405 method_not_allowed in the error shape, with an Allow header."""
        reply = await send(admin_client, method, path, admin_secret)
        error_of(reply, "method_not_allowed", 405)
        assert set(reply.headers["Allow"].split(",")) == allowed

    async def test_head_on_admin_reads_is_405(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """HEAD is not a read of the admin API (allow_head is off): 405, never a 500."""
        reply = await send(admin_client, "HEAD", TOKENS, admin_secret)
        assert reply.status == 405


ALL_CALLS = [*READS, *WRITES]


class TestStoreUnavailable:
    """With the store gone, every admin call that needs it is 503 store_unavailable."""

    @pytest.mark.parametrize(("method", "path", "body"), ALL_CALLS)
    @pytest.mark.parametrize("warm", [False, True], ids=["cold-cache", "admin-cached"])
    async def test_every_call_is_503(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        method: str,
        path: str,
        body: Any,
        warm: bool,
    ) -> None:
        """503 in the error shape; nothing is written; an uncached admin token cannot be
        checked, so then even configuration reads are 503."""
        target, _ = await mint(runtime, "Reader")
        if warm:
            assert (await send(admin_client, "GET", TOKENS, admin_secret)).status == 200
        before = audit_text(runtime)
        await runtime.store.close()
        reply = await send(admin_client, method, path.format(id=target.id), admin_secret, body=body)
        if warm and not path.startswith(TOKENS):
            # The catalog, filters and policy live in the configuration: with the admin
            # token cached (as /auth serves cached tokens, SECURITY 19) they still answer.
            assert reply.status == 200, reply.body
        else:
            error_of(reply, "store_unavailable", 503)
        assert audit_text(runtime) == before
        assert admin_secret not in reply.text


class TestOversizedRequestHead:
    """Request lines and headers beyond the server's limits (SECURITY 10, 14, 25)."""

    async def test_oversized_authorization_does_not_echo_the_secret(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A 9 KiB Authorization header starting with a real secret is refused without
        sending the secret back."""
        headers = {"Authorization": f"Bearer {admin_secret}" + "a" * 9000}
        reply = await send(admin_client, "GET", TOKENS, headers=headers)
        assert 400 <= reply.status < 500
        assert admin_secret not in reply.text

    async def test_very_long_path_is_in_the_error_shape(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A 9000-character id is a 4xx in the documented error shape."""
        reply = await send(admin_client, "GET", f"{TOKENS}/{'a' * 9000}", admin_secret)
        assert 400 <= reply.status < 500
        assert isinstance(reply.body, dict), reply.text[:200]
        error_of(reply, reply.body["error"]["code"], reply.status)
