"""Changes to one token through the admin API (SPEC §4, §6): PATCH, rotate and delete,
ids of every wrong shape, immediate effect on /auth, and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from yarl import URL

from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import SECRET_PATTERN, TokenRecord
from authsvc.service.runtime import Runtime
from tests.admin_helpers import (
    ABSENT,
    TOKENS,
    UNKNOWN_ID,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    new_token,
    send,
)
from tests.factories import TOKEN_FIELDS
from tests.webapp import (
    NOW,
    VIEW,
    Client,
    audit_entries,
    audit_text,
    auth_status,
    mint,
    use_config,
)


class TestPatch:
    """PATCH /admin/v1/tokens/{id}: replace permissions."""

    async def test_answers_200_with_the_updated_object(
        self, runtime: Runtime, admin_client: Client, admin_secret: str
    ) -> None:
        """200, the token object (no secret), permissions replaced, no-store."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(
            admin_client,
            "PATCH",
            f"{TOKENS}/{target.id}",
            admin_secret,
            body={"permissions": ["Writer", VIEW]},
        )
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert set(reply.body) == TOKEN_FIELDS
        assert (reply.body["id"], reply.body["permissions"]) == (target.id, [VIEW, "Writer"])

    @pytest.mark.parametrize(
        ("policy", "permissions", "status", "code", "field"),
        [
            pytest.param(
                {"allow_permission_updates": False},
                ["Writer"],
                403,
                "permission_updates_disabled",
                None,
                id="updates-disabled",
            ),
            pytest.param(
                {"tokens_enabled": False},
                ["Writer"],
                403,
                "tokens_disabled",
                None,
                id="tokens-disabled",
            ),
            pytest.param(
                {}, ["Nope"], 422, "unknown_permission", "permissions", id="unknown-permission"
            ),
            pytest.param({}, [], 422, "invalid_permissions", "permissions", id="empty-list"),
            pytest.param({}, "Writer", 422, "invalid_field", "permissions", id="string-not-list"),
            pytest.param({}, [1], 422, "invalid_field", "permissions", id="number-in-list"),
            pytest.param({}, None, 422, "invalid_field", "permissions", id="null"),
        ],
    )
    async def test_refusals(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        admin_secret: str,
        policy: dict[str, Any],
        permissions: Any,
        status: int,
        code: str,
        field: str | None,
    ) -> None:
        """Each refusal has its status, code and field, and leaves the token unchanged."""
        target, _ = await mint(runtime, "Reader")
        use_config(runtime, tmp_path, security_policy=policy)
        reply = await send(
            admin_client,
            "PATCH",
            f"{TOKENS}/{target.id}",
            admin_secret,
            body={"permissions": permissions},
        )
        error_of(reply, code, status, field=field)
        assert (await runtime.service.get(target.id)).permissions == {"Reader"}

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param({"permissions": ["Writer"], "name": "renamed"}, "name", id="name"),
            pytest.param(
                {"permissions": ["Writer"], "expires_in": "1d"}, "expires_in", id="expires_in"
            ),
            pytest.param({"rate_limit": "5/s", "ip_filter": None}, "ip_filter", id="ip_filter"),
        ],
    )
    async def test_only_permissions_and_rate_limit_can_change(
        self,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        body: dict[str, Any],
        field: str,
    ) -> None:
        """Fields other than permissions and rate_limit are unknown (422), naming the
        field (an empty object: tests/test_admin_rate_limit.py)."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(admin_client, "PATCH", f"{TOKENS}/{target.id}", admin_secret, body=body)
        assert reply.status == 422
        assert reply.body["error"]["code"] in ("unknown_field", "invalid_field")
        assert reply.body["error"]["field"] == field


class TestRotateAndDelete:
    """POST /admin/v1/tokens/{id}/rotate and DELETE /admin/v1/tokens/{id}."""

    async def test_rotate_answers_200_with_a_new_secret(
        self, runtime: Runtime, admin_client: Client, admin_secret: str
    ) -> None:
        """200, the same token object plus a different secret, no-store."""
        target, old = await mint(runtime, "Reader")
        reply = await send(admin_client, "POST", f"{TOKENS}/{target.id}/rotate", admin_secret)
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert set(reply.body) == TOKEN_FIELDS | {"token"}
        assert reply.body["id"] == target.id
        assert SECRET_PATTERN.fullmatch(reply.body["token"])
        assert reply.body["token"] != old

    async def test_delete_answers_204_and_the_token_is_gone(
        self, runtime: Runtime, admin_client: Client, admin_secret: str
    ) -> None:
        """204 with an empty body; then GET, DELETE and rotate of that id are 404."""
        target, _ = await mint(runtime, "Reader")
        reply = await send(admin_client, "DELETE", f"{TOKENS}/{target.id}", admin_secret)
        assert (reply.status, reply.text) == (204, "")
        for method, suffix in [("GET", ""), ("DELETE", ""), ("POST", "/rotate")]:
            again = await send(admin_client, method, f"{TOKENS}/{target.id}{suffix}", admin_secret)
            error_of(again, "not_found", 404)


BAD_IDS = [
    pytest.param(UNKNOWN_ID, id="unknown"),
    pytest.param("tok_0123456789ABCDEF", id="upper-case-hex"),
    pytest.param("tok_0123", id="short"),
    pytest.param("..%2Fx", id="encoded-dot-dot-slash"),
    pytest.param("%00", id="nul"),
    pytest.param("%E2%80%AE", id="bidi"),
    pytest.param("a" * 4000, id="very-long"),
    pytest.param("tok_0123456789abcdef%0A", id="trailing-newline"),
]


class TestTokenIds:
    """Unknown ids and ids of the wrong shape are 404 in the error shape on every call."""

    @pytest.mark.parametrize("token_id", BAD_IDS)
    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            pytest.param("GET", "", ABSENT, id="get"),
            pytest.param("PATCH", "", {"permissions": ["Reader"]}, id="patch"),
            pytest.param("POST", "/rotate", ABSENT, id="rotate"),
            pytest.param("DELETE", "", ABSENT, id="delete"),
        ],
    )
    async def test_bad_id_is_404(
        self,
        *,
        admin_client: Client,
        admin_secret: str,
        token_id: str,
        method: str,
        suffix: str,
        body: Any,
    ) -> None:
        """404 not_found, and the id is not echoed back."""
        path = URL(f"{TOKENS}/{token_id}{suffix}", encoded=True)
        reply = await send(admin_client, method, path, admin_secret, body=body)
        error_of(reply, "not_found", 404)

    async def test_secret_in_the_id_position_is_not_echoed(
        self, admin_client: Client, admin_secret: str
    ) -> None:
        """A secret pasted where the id belongs does not come back in the 404 body."""
        reply = await send(admin_client, "GET", f"{TOKENS}/{admin_secret}", admin_secret)
        error_of(reply, "not_found", 404)
        assert admin_secret[:20] not in reply.text


def is_cached(runtime: Runtime, secret: str) -> bool:
    """The record cache holds the token of ``secret``."""
    return runtime.cache.get(runtime.service.digest(secret)) is not None


class TestChangesTakeEffectAtOnce:
    """A change through the admin API reaches /auth at once, past the record cache (SPEC §6)."""

    async def test_patch(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """Removing the permission that grants the request denies it on the next request."""
        target, secret = await mint(runtime, "Reader")
        assert await auth_status(auth_client, secret) == 200
        assert is_cached(runtime, secret)
        path = f"{TOKENS}/{target.id}"
        await send(admin_client, "PATCH", path, admin_secret, body={"permissions": ["Writer"]})
        assert await auth_status(auth_client, secret) == 403
        await send(admin_client, "PATCH", path, admin_secret, body={"permissions": ["Reader"]})
        assert await auth_status(auth_client, secret) == 200

    async def test_rotate(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """The old secret is refused on the next request; the new one is accepted."""
        target, old = await mint(runtime, "Reader")
        assert await auth_status(auth_client, old) == 200
        assert is_cached(runtime, old)
        reply = await send(admin_client, "POST", f"{TOKENS}/{target.id}/rotate", admin_secret)
        assert await auth_status(auth_client, old) == 401
        assert await auth_status(auth_client, reply.body["token"]) == 200

    async def test_delete(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """A deleted token is refused on the next request."""
        target, secret = await mint(runtime, "Reader")
        assert await auth_status(auth_client, secret) == 200
        assert is_cached(runtime, secret)
        await send(admin_client, "DELETE", f"{TOKENS}/{target.id}", admin_secret)
        assert await auth_status(auth_client, secret) == 401

    async def test_admin_token_deleting_itself(
        self, runtime: Runtime, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """An admin token that deletes itself is refused on its next call."""
        record, secret = admin
        assert (await send(admin_client, "GET", TOKENS, secret)).status == 200
        assert is_cached(runtime, secret)
        assert (await send(admin_client, "DELETE", f"{TOKENS}/{record.id}", secret)).status == 204
        error_of(await send(admin_client, "GET", TOKENS, secret), "unauthorized", 401)

    async def test_admin_token_rotating_itself(
        self, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """After rotating itself, only the new admin secret works."""
        record, old = admin
        reply = await send(admin_client, "POST", f"{TOKENS}/{record.id}/rotate", old)
        error_of(await send(admin_client, "GET", TOKENS, old), "unauthorized", 401)
        assert (await send(admin_client, "GET", TOKENS, reply.body["token"])).status == 200

    async def test_admin_token_demoted_to_view(
        self, runtime: Runtime, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """An admin token patched down to View can read but no longer write, at once."""
        record, secret = admin
        path = f"{TOKENS}/{record.id}"
        assert (
            await send(admin_client, "PATCH", path, secret, body={"permissions": [VIEW]})
        ).status == 200
        assert (await send(admin_client, "GET", TOKENS, secret)).status == 200
        reply = await send(admin_client, "POST", TOKENS, secret, body=new_token())
        error_of(reply, "forbidden", 403)


class TestAuditLog:
    """Each successful change is one JSON line without secrets; failures write nothing."""

    async def test_each_change_writes_one_line(
        self, runtime: Runtime, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        """create, update, rotate and delete: action, actor, target, client and time."""
        actor, secret = admin
        start = len(audit_entries(runtime))
        created = await send(admin_client, "POST", TOKENS, secret, body=new_token())
        token_id = created.body["id"]
        path = f"{TOKENS}/{token_id}"
        await send(admin_client, "PATCH", path, secret, body={"permissions": ["Writer"]})
        rotated = await send(admin_client, "POST", f"{path}/rotate", secret)
        await send(admin_client, "DELETE", path, secret, headers={"X-Real-IP": "10.9.8.7"})
        entries = audit_entries(runtime)[start:]
        assert [entry["action"] for entry in entries] == [
            "token.create",
            "token.update",
            "token.rotate",
            "token.delete",
        ]
        for entry in entries:
            assert {"time", "action", "actor", "target", "client"} <= set(entry)
            assert (entry["time"], entry["actor"], entry["target"]) == (
                rfc3339(NOW),
                actor.id,
                token_id,
            )
        assert [entry["client"] for entry in entries] == ["127.0.0.1"] * 3 + ["10.9.8.7"]
        text = audit_text(runtime)
        for leaked in (secret, created.body["token"], rotated.body["token"]):
            assert leaked not in text
        assert SECRET_PATTERN.search(text) is None

    @pytest.mark.parametrize(
        ("method", "path", "body", "status"),
        [
            pytest.param("POST", TOKENS, new_token("admin"), 409, id="name-taken"),
            pytest.param("POST", TOKENS, new_token(permissions=["Nope"]), 422, id="unknown-perm"),
            pytest.param("POST", TOKENS, {"name": "x"}, 422, id="no-permissions"),
            pytest.param("POST", TOKENS, [1], 400, id="not-an-object"),
            pytest.param(
                "PATCH",
                f"{TOKENS}/{UNKNOWN_ID}",
                {"permissions": ["Reader"]},
                404,
                id="patch-unknown",
            ),
            pytest.param("PATCH", f"{TOKENS}/{{id}}", {"permissions": []}, 422, id="patch-empty"),
            pytest.param("POST", f"{TOKENS}/{UNKNOWN_ID}/rotate", ABSENT, 404, id="rotate-unknown"),
            pytest.param("DELETE", f"{TOKENS}/{UNKNOWN_ID}", ABSENT, 404, id="delete-unknown"),
            pytest.param("DELETE", f"{TOKENS}/x", ABSENT, 404, id="delete-bad-id"),
        ],
    )
    async def test_failed_changes_write_nothing(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        admin_secret: str,
        method: str,
        path: str,
        body: Any,
        status: int,
    ) -> None:
        """A refused change leaves the audit log as it was."""
        target, _ = await mint(runtime, "Reader")
        before = audit_text(runtime)
        reply = await send(admin_client, method, path.format(id=target.id), admin_secret, body=body)
        assert reply.status == status
        assert audit_text(runtime) == before

    async def test_refused_callers_write_nothing(
        self, runtime: Runtime, admin_client: Client
    ) -> None:
        """Unauthenticated and unauthorized change attempts leave no audit record."""
        target, _ = await mint(runtime, "Reader")
        _, view = await mint(runtime, VIEW)
        before = audit_text(runtime)
        for secret in (None, view):
            for method, path in [("POST", TOKENS), ("DELETE", f"{TOKENS}/{target.id}")]:
                body = new_token() if method == "POST" else ABSENT
                reply = await send(admin_client, method, path, secret, body=body)
                assert reply.status in (401, 403)
        assert audit_text(runtime) == before
