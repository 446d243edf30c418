"""``rate_limit`` through the admin API (SPEC §12): set at create and by PATCH, refused
beyond the policy's ``max_rate_limit`` and beyond a limited caller, shown on the token
object and the policy, recorded in the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from tests.admin_helpers import (
    TOKENS,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    new_token,
    send,
)
from tests.webapp import Client, audit_entries, mint, use_config

pytest_plugins = ("tests.webapp",)


class TestCreate:
    async def test_limit_is_kept_as_written(
        self, admin_client: Client, admin: tuple[TokenRecord, str], runtime: Runtime
    ) -> None:
        reply = await send(
            admin_client, "POST", TOKENS, admin[1], body=new_token(rate_limit="600/m")
        )
        assert reply.status == 201
        assert reply.body["rate_limit"] == "600/m"
        shown = await send(admin_client, "GET", f"{TOKENS}/{reply.body['id']}", admin[1])
        assert shown.body["rate_limit"] == "600/m"
        assert (await runtime.store.get(reply.body["id"])) is not None
        created = audit_entries(runtime)[-1]
        assert created["action"] == "token.create"
        assert created["details"]["rate_limit"] == "600/m"

    async def test_no_limit_is_null(
        self, admin_client: Client, admin: tuple[TokenRecord, str]
    ) -> None:
        reply = await send(admin_client, "POST", TOKENS, admin[1], body=new_token())
        assert reply.body["rate_limit"] is None

    @pytest.mark.parametrize("value", ["0/s", "5/d", "five per second", 5, True, ["5/s"]])
    async def test_invalid(
        self, admin_client: Client, admin: tuple[TokenRecord, str], value: object
    ) -> None:
        reply = await send(admin_client, "POST", TOKENS, admin[1], body=new_token(rate_limit=value))
        error_of(reply, "invalid_rate_limit", 422, field="rate_limit")

    async def test_policy_maximum(
        self,
        admin_client: Client,
        admin: tuple[TokenRecord, str],
        runtime: Runtime,
        tmp_path: Path,
    ) -> None:
        use_config(runtime, tmp_path, security_policy={"max_rate_limit": "10/s"})
        before = len(await runtime.store.all_tokens())
        for asked, code in ((None, "rate_limit_required"), ("11/s", "rate_limit_too_high")):
            body = new_token(rate_limit=asked)
            reply = await send(admin_client, "POST", TOKENS, admin[1], body=body)
            error_of(reply, code, 422, field="rate_limit")
            assert "10/s" in reply.body["error"]["message"]
        assert len(await runtime.store.all_tokens()) == before  # nothing written
        ok = await send(admin_client, "POST", TOKENS, admin[1], body=new_token(rate_limit="600/m"))
        assert ok.status == 201

    async def test_limited_caller_hands_on_no_more(
        self, admin_client: Client, runtime: Runtime
    ) -> None:
        """SPEC §10: a caller limited to 10/s cannot create an unlimited or faster token."""
        caller = await runtime.service.create(
            actor="cli",
            client=None,
            name="limited admin",
            permissions=["ManageOrganizationTokens", "Reader"],
            expires_in=None,
            ip_filter=None,
            rate_limit="10/s",
        )
        secret = caller[1]
        for asked in (None, "11/s"):
            reply = await send(
                admin_client, "POST", TOKENS, secret, body=new_token(rate_limit=asked)
            )
            error_of(reply, "exceeds_caller", 403, field="rate_limit")
        ok = await send(admin_client, "POST", TOKENS, secret, body=new_token(rate_limit="10/s"))
        assert ok.status == 201


class TestPatch:
    async def test_set_change_and_clear(
        self, admin_client: Client, admin: tuple[TokenRecord, str], runtime: Runtime
    ) -> None:
        record, _ = await mint(runtime, "Reader")
        path = f"{TOKENS}/{record.id}"
        reply = await send(admin_client, "PATCH", path, admin[1], body={"rate_limit": "5/s"})
        assert (reply.status, reply.body["rate_limit"]) == (200, "5/s")
        assert reply.body["permissions"] == ["Reader"]  # untouched
        stored = await runtime.store.get(record.id)
        assert stored is not None
        assert stored.rate_limit == "5/s"
        reply = await send(admin_client, "PATCH", path, admin[1], body={"rate_limit": None})
        assert reply.body["rate_limit"] is None
        updated = [e for e in audit_entries(runtime) if e["action"] == "token.update"]
        assert updated[-1]["details"] == {"rate_limit_before": "5/s", "rate_limit": None}

    async def test_permissions_and_limit_together(
        self, admin_client: Client, admin: tuple[TokenRecord, str], runtime: Runtime
    ) -> None:
        record, _ = await mint(runtime, "Reader")
        body = {"permissions": ["Writer"], "rate_limit": "1/h"}
        reply = await send(admin_client, "PATCH", f"{TOKENS}/{record.id}", admin[1], body=body)
        assert (reply.body["permissions"], reply.body["rate_limit"]) == (["Writer"], "1/h")

    async def test_a_permission_change_keeps_the_limit(
        self, admin_client: Client, admin: tuple[TokenRecord, str], runtime: Runtime
    ) -> None:
        path = f"{TOKENS}/{(await mint(runtime, 'Reader'))[0].id}"
        await send(admin_client, "PATCH", path, admin[1], body={"rate_limit": "7/m"})
        reply = await send(admin_client, "PATCH", path, admin[1], body={"permissions": ["Writer"]})
        assert reply.body["rate_limit"] == "7/m"

    async def test_empty_patch_is_refused(
        self, admin_client: Client, admin: tuple[TokenRecord, str], runtime: Runtime
    ) -> None:
        record, _ = await mint(runtime, "Reader")
        reply = await send(admin_client, "PATCH", f"{TOKENS}/{record.id}", admin[1], body={})
        error_of(reply, "invalid_field", 422)

    async def test_limit_change_while_permission_updates_are_off(
        self,
        admin_client: Client,
        admin: tuple[TokenRecord, str],
        runtime: Runtime,
        tmp_path: Path,
    ) -> None:
        """``allow_permission_updates: false`` refuses only a change of permissions."""
        record, _ = await mint(runtime, "Reader")
        use_config(runtime, tmp_path, security_policy={"allow_permission_updates": False})
        path = f"{TOKENS}/{record.id}"
        reply = await send(admin_client, "PATCH", path, admin[1], body={"rate_limit": "5/s"})
        assert reply.status == 200
        both = {"rate_limit": "6/s", "permissions": ["Writer"]}
        reply = await send(admin_client, "PATCH", path, admin[1], body=both)
        error_of(reply, "permission_updates_disabled", 403)
        stored = await runtime.store.get(record.id)
        assert stored is not None
        assert stored.rate_limit == "5/s"  # nothing of a refused PATCH is written

    async def test_policy_maximum_and_invalid(
        self,
        admin_client: Client,
        admin: tuple[TokenRecord, str],
        runtime: Runtime,
        tmp_path: Path,
    ) -> None:
        record, _ = await mint(runtime, "Reader")
        use_config(runtime, tmp_path, security_policy={"max_rate_limit": "1/s"})
        path = f"{TOKENS}/{record.id}"
        cases = [
            (None, "rate_limit_required"),
            ("2/s", "rate_limit_too_high"),
            ("0/m", "invalid_rate_limit"),
        ]
        for value, code in cases:
            reply = await send(admin_client, "PATCH", path, admin[1], body={"rate_limit": value})
            error_of(reply, code, 422, field="rate_limit")


async def test_policy_shows_the_maximum(
    admin_client: Client, admin: tuple[TokenRecord, str], runtime: Runtime, tmp_path: Path
) -> None:
    use_config(runtime, tmp_path, security_policy={"max_rate_limit": "600/m"})
    reply = await send(admin_client, "GET", "/admin/v1/policy", admin[1])
    assert reply.body["max_rate_limit"] == "600/m"
