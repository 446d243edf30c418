"""POST /admin/v1/tokens/revoke (SPEC §11 "Revoking a leaked secret"), on both stores:
holding the secret is the proof; a current secret deletes its token, a previous secret in
its grace ends only that grace; what it answers for anything else, and what it costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.policy import Refused
from authsvc.rules.tokens import SECRET_PATTERN, TokenRecord, checksum, new_secret
from authsvc.service.runtime import Runtime
from tests.admin_helpers import ABSENT, TOKENS, Reply, error_of, send
from tests.auth_client import admin_client as make_admin_client
from tests.auth_client import auth_client as make_auth_client
from tests.factories import FrozenClock, make_config
from tests.webapp import (
    ENVIRON,
    Client,
    ClientMaker,
    audit_entries,
    audit_text,
    auth_status,
    mint,
    use_config,
)

REVOKE = f"{TOKENS}/revoke"


async def revoke(client: Client, body: Any, headers: dict[str, str] | None = None) -> Reply:
    """The revoke call, with no admin token unless ``headers`` bring one."""
    return await send(client, "POST", REVOKE, body=body, headers=headers)


def wrong_checksum(secret: str) -> str:
    """``secret`` with its last character changed: the right shape, a wrong checksum."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


class TestRevoke:
    """What a secret opens is revoked; the answer says what."""

    async def test_a_current_secret_deletes_its_token(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """200 {"id", "revoked": "token"}: the token is gone, as after a delete."""
        record, secret = await mint(runtime, "Reader")
        assert await auth_status(auth_client, secret) == 200  # cached
        reply = await revoke(admin_client, {"token": secret})
        assert (reply.status, reply.body) == (200, {"id": record.id, "revoked": "token"})
        assert reply.headers["Cache-Control"] == "no-store"
        assert await auth_status(auth_client, secret) == 401
        gone = await send(admin_client, "GET", f"{TOKENS}/{record.id}", admin_secret)
        error_of(gone, "not_found", 404)

    async def test_a_previous_secret_ends_only_its_grace(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """200 {"revoked": "previous_secret"}: the old secret stops, the new one works,
        the token stays."""
        record, old = await mint(runtime, "Reader")
        _, new = await runtime.service.rotate(
            actor="cli", client=None, token_id=record.id, grace="1h"
        )
        assert await auth_status(auth_client, old) == 200  # cached
        reply = await revoke(admin_client, {"token": old})
        assert (reply.status, reply.body) == (
            200,
            {"id": record.id, "revoked": "previous_secret"},
        )
        assert await auth_status(auth_client, old) == 401
        assert await auth_status(auth_client, new) == 200
        shown = await send(admin_client, "GET", f"{TOKENS}/{record.id}", admin_secret)
        assert shown.body["previous_secret_expires_at"] is None
        again = await revoke(admin_client, {"token": old})
        error_of(again, "not_found", 404)

    async def test_the_audit_names_the_secret_holder(
        self, runtime: Runtime, admin_client: Client
    ) -> None:
        """token.revoke_leaked, actor secret-holder, the client address; never the secret."""
        record, secret = await mint(runtime, "Reader")
        await revoke(admin_client, {"token": secret}, headers={"X-Real-IP": "10.1.2.3"})
        last = audit_entries(runtime)[-1]
        assert {k: last[k] for k in ("action", "actor", "target", "client", "details")} == {
            "action": "token.revoke_leaked",
            "actor": "secret-holder",
            "target": record.id,
            "client": "10.1.2.3",
            "details": {"revoked": "token"},
        }
        assert SECRET_PATTERN.search(audit_text(runtime)) is None

    @pytest.mark.parametrize(
        "authorization",
        [
            pytest.param(None, id="none"),
            pytest.param("Bearer junk", id="junk"),
            pytest.param(f"Bearer {new_secret()}", id="unknown-token"),
            pytest.param("Basic dXNlcjpwdw==", id="other-scheme"),
        ],
    )
    async def test_no_admin_token_is_needed_and_any_is_ignored(
        self, runtime: Runtime, admin_client: Client, authorization: str | None
    ) -> None:
        """Whatever the Authorization header says (or if there is none), the secret decides."""
        record, secret = await mint(runtime, "Reader")
        headers = {} if authorization is None else {"Authorization": authorization}
        reply = await revoke(admin_client, {"token": secret}, headers=headers)
        assert (reply.status, reply.body) == (200, {"id": record.id, "revoked": "token"})

    async def test_works_while_tokens_are_switched_off(
        self, runtime: Runtime, admin_client: Client, tmp_path: Path
    ) -> None:
        """Revocation is never refused by the policy: it only takes away."""
        record, secret = await mint(runtime, "Reader")
        use_config(runtime, tmp_path, security_policy={"tokens_enabled": False})
        reply = await revoke(admin_client, {"token": secret})
        assert (reply.status, reply.body["id"]) == (200, record.id)


class TestNothingToRevoke:
    """404 when nothing live has the secret; 422 when it is no secret; nothing changes."""

    async def test_unknown_secret(self, runtime: Runtime, admin_client: Client) -> None:
        """A well-formed secret no token has: 404 not_found, no audit record."""
        before = len(audit_entries(runtime))
        error_of(await revoke(admin_client, {"token": new_secret()}), "not_found", 404)
        assert len(audit_entries(runtime)) == before

    async def test_a_rotated_away_secret(self, runtime: Runtime, admin_client: Client) -> None:
        """An old secret after a rotation without grace opens nothing: 404, and the
        token (with its new secret) stays."""
        record, old = await mint(runtime, "Reader")
        await runtime.service.rotate(actor="cli", client=None, token_id=record.id)
        error_of(await revoke(admin_client, {"token": old}), "not_found", 404)
        assert await runtime.store.get(record.id) is not None

    async def test_a_previous_secret_after_its_grace(
        self, runtime: Runtime, admin_client: Client, clock: FrozenClock
    ) -> None:
        """A previous secret whose grace is over matches nothing live: 404."""
        record, old = await mint(runtime, "Reader")
        await runtime.service.rotate(actor="cli", client=None, token_id=record.id, grace="1h")
        clock.advance(3600)
        error_of(await revoke(admin_client, {"token": old}), "not_found", 404)
        assert await runtime.store.get(record.id) is not None

    async def test_a_secret_rotated_away_meanwhile_revokes_nothing(self, runtime: Runtime) -> None:
        """The lookup found the token by this secret, but a rotation replaced the secret
        before the delete: nothing is deleted (the leaked secret opens nothing any more)."""
        record, old = await mint(runtime, "Reader")
        found = await runtime.service.lookup(runtime.service.digest(old))
        await runtime.service.rotate(actor="cli", client=None, token_id=record.id)

        async def stale(_: bytes) -> TokenRecord | None:
            return found

        with pytest.raises(Refused) as refused:
            await runtime.service.revoke_leaked(actor="cli", client=None, secret=old, find=stale)
        assert refused.value.code == "not_found"
        assert await runtime.store.get(record.id) is not None

    @pytest.mark.parametrize(
        "secret",
        [
            pytest.param("", id="empty"),
            pytest.param("not a token", id="junk"),
            pytest.param("authsvc_short", id="short"),
            pytest.param("xyzsvc_" + "a" * 50, id="other-prefix"),
            pytest.param("checksum", id="wrong-checksum"),
            pytest.param(" padded ", id="white-space"),
        ],
    )
    async def test_malformed_secret(
        self, runtime: Runtime, admin_client: Client, secret: str
    ) -> None:
        """422 malformed_token naming the field; nothing is revoked or echoed."""
        record, real = await mint(runtime, "Reader")
        if secret == "checksum":
            secret = wrong_checksum(real)
        elif secret == " padded ":
            secret = f" {real} "
        reply = await revoke(admin_client, {"token": secret})
        error_of(reply, "malformed_token", 422, field="token")
        assert real not in reply.text
        assert await runtime.store.get(record.id) == record

    @pytest.mark.parametrize(
        ("body", "code", "status", "field"),
        [
            pytest.param({}, "invalid_field", 422, "token", id="missing"),
            pytest.param({"token": None}, "invalid_field", 422, "token", id="null"),
            pytest.param({"token": ["x"]}, "invalid_field", 422, "token", id="list"),
            pytest.param({"token": "x", "id": "y"}, "unknown_field", 422, "id", id="extra"),
            pytest.param(["x"], "invalid_json", 400, None, id="array"),
            pytest.param(ABSENT, "invalid_json", 400, None, id="no-body"),
        ],
    )
    async def test_bad_bodies(
        self,
        *,
        admin_client: Client,
        body: Any,
        code: str,
        status: int,
        field: str | None,
    ) -> None:
        """Bodies that are not {"token": "<string>"}: the usual 4xx with the field."""
        error_of(await revoke(admin_client, body), code, status, field=field)


class TestLookupBudget:
    """Unknown secrets spend the instance's budget of store lookups for unknown tokens."""

    @pytest.fixture
    async def spent(
        self, store_url: str, tmp_path: Path, aiohttp_client: ClientMaker
    ) -> AsyncIterator[tuple[Runtime, Client, Client]]:
        """A runtime allowing 2 unknown lookups (its budget clock frozen: no refill), the
        set of existing tokens loaded; (runtime, admin client, auth client)."""
        config = make_config(tmp_path, store=store_url, cache={"unknown_lookups_per_second": 2})
        runtime = await Runtime.open(config, environ=ENVIRON, cache_timer=FrozenClock())
        runtime.lookups.known.replace(await runtime.store.digest_prefixes())
        admin = await make_admin_client(aiohttp_client, runtime)
        auth = await make_auth_client(aiohttp_client, runtime)
        yield runtime, admin, auth
        await runtime.close()

    async def test_past_the_budget_unknown_secrets_get_429(
        self, spent: tuple[Runtime, Client, Client]
    ) -> None:
        """Two unknown secrets are looked up (404); the third gets 429 with Retry-After,
        without a lookup; a real token's secret still revokes it."""
        runtime, admin, _ = spent
        record, secret = await mint(runtime, "Reader")
        runtime.lookups.known.add(runtime.service.digest(secret))
        for _ in range(2):
            error_of(await revoke(admin, {"token": new_secret()}), "not_found", 404)
        reply = await revoke(admin, {"token": new_secret()})
        error_of(reply, "too_many_requests", 429)
        assert int(reply.headers["Retry-After"]) >= 1
        skipped = runtime.metrics.registry.get_sample_value("authsvc_unknown_lookups_skipped_total")
        assert skipped == 1
        ok = await revoke(admin, {"token": secret})
        assert (ok.status, ok.body) == (200, {"id": record.id, "revoked": "token"})

    async def test_revoke_and_auth_share_the_budget(
        self, spent: tuple[Runtime, Client, Client]
    ) -> None:
        """Unknown secrets sent to /auth spend the same budget: the revoke call is no way
        around it."""
        runtime, admin, auth = spent
        for _ in range(2):
            assert await auth_status(auth, new_secret()) == 401
        error_of(await revoke(admin, {"token": new_secret()}), "too_many_requests", 429)
        assert (
            runtime.metrics.registry.get_sample_value(
                "authsvc_store_lookups_total", {"result": "not_found"}
            )
            == 2
        )


def test_wrong_checksum_helper() -> None:
    """The helper really breaks the checksum (so the 422 above is about the checksum)."""
    broken = wrong_checksum(new_secret())
    assert checksum(broken[:-6]) != broken[-6:]
