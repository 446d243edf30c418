"""Rotation with a grace period (SPEC §11) through the admin API and ``/auth``, on both
stores: both secrets work until the grace ends or the new secret is first used, whichever
comes first; what the token object, the allow headers and the audit log say about it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from multidict import CIMultiDictProxy

from authsvc.rules.durations import rfc3339
from authsvc.service.runtime import Runtime
from authsvc.store import StoreUnavailable
from tests.admin_helpers import (
    ABSENT,
    TOKENS,
    Reply,
    error_of,
    granting_admin,  # noqa: F401 - the admin fixture: it holds what it hands on
    send,
)
from tests.factories import FrozenClock
from tests.webapp import NOW, READ_ITEMS, Client, audit_entries, bearer, mint

HOUR = 3600.0


async def rotate(client: Client, admin_secret: str, token_id: str, body: Any = ABSENT) -> Reply:
    """POST .../rotate with ``body`` (absent: no body at all)."""
    return await send(client, "POST", f"{TOKENS}/{token_id}/rotate", admin_secret, body=body)


async def auth(
    client: Client, secret: str, uri: str = READ_ITEMS["X-Original-URI"]
) -> tuple[int, CIMultiDictProxy[str]]:
    """/auth's status and headers for a GET of ``uri`` presenting ``secret``."""
    headers = {**bearer(secret), **READ_ITEMS, "X-Original-URI": uri}
    async with client.get("/auth", headers=headers) as response:
        return response.status, response.headers


async def status(client: Client, secret: str) -> int:
    return (await auth(client, secret))[0]


async def shown(client: Client, admin_secret: str, token_id: str) -> dict[str, Any]:
    """The token object as GET shows it."""
    reply = await send(client, "GET", f"{TOKENS}/{token_id}", admin_secret)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.body
    return body


async def settled(runtime: Runtime) -> None:
    """Wait for the store writes the /auth handler started off the request path."""
    await runtime.service.graces.close()


class TestRotateWithGrace:
    """POST .../rotate {"grace": ...}: both secrets work, the object says until when."""

    async def test_both_secrets_work_during_the_grace(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """200 with the new secret; the old one keeps working; previous_secret_expires_at
        is the grace's end."""
        record, old = await mint(runtime, "Reader")
        reply = await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})
        assert reply.status == 200, reply.body
        assert reply.body["previous_secret_expires_at"] == rfc3339(NOW + HOUR)
        assert reply.body["token"] != old
        assert await status(auth_client, old) == 200
        assert await status(auth_client, old) == 200  # from the cache, too
        shown_now = await shown(admin_client, admin_secret, record.id)
        assert shown_now["previous_secret_expires_at"] == rfc3339(NOW + HOUR)
        assert await status(auth_client, reply.body["token"]) == 200

    async def test_the_previous_secret_stops_when_the_grace_ends(
        self,
        runtime: Runtime,
        clock: FrozenClock,
        admin_client: Client,
        auth_client: Client,
        admin_secret: str,
    ) -> None:
        """At the grace's end the old secret is refused as unknown (401 invalid_token),
        cached or not; the object shows null; the new secret works on."""
        record, old = await mint(runtime, "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        assert await status(auth_client, old) == 200  # cached now
        clock.advance(HOUR)
        code, headers = await auth(auth_client, old)
        assert (code, headers["X-Auth-Reason"]) == (401, "invalid_token")
        runtime.cache.clear()
        assert await status(auth_client, old) == 401  # read again from the store
        assert (await shown(admin_client, admin_secret, record.id))[
            "previous_secret_expires_at"
        ] is None
        assert await status(auth_client, new) == 200

    async def test_previous_secret_allows_say_when_it_stops(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """An allow by the previous secret carries X-Auth-Token-Expires = the grace's end
        and is never for nginx's micro-cache; the new secret's allow carries the token's
        own (here: none)."""
        record, old = await mint(runtime, "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "2h"})).body["token"]
        code, headers = await auth(auth_client, old)
        assert code == 200
        assert headers["X-Auth-Token-Expires"] == rfc3339(NOW + 2 * HOUR)
        assert headers["X-Accel-Expires"] == "0"
        code, headers = await auth(auth_client, new)
        assert code == 200
        assert "X-Auth-Token-Expires" not in headers
        assert headers["X-Accel-Expires"] == "1"

    async def test_a_token_expiring_first_bounds_the_previous_secret(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """When the token's own expiry comes before the grace's end, that is when the
        previous secret stops too, and what its allows say."""
        record, old = await mint(runtime, "Reader", expires_in="30m")
        reply = await rotate(admin_client, admin_secret, record.id, {"grace": "1d"})
        assert reply.body["previous_secret_expires_at"] == rfc3339(NOW + 1800)
        code, headers = await auth(auth_client, old)
        assert (code, headers["X-Auth-Token-Expires"]) == (200, rfc3339(NOW + 1800))

    @pytest.mark.parametrize(
        "body", [ABSENT, {}, {"grace": None}, {"grace": "0m"}, {"grace": "0d"}]
    )
    async def test_no_grace(
        self,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        admin_secret: str,
        body: Any,
    ) -> None:
        """No body, no key, null or a zero: the old secret stops at once, as before."""
        record, old = await mint(runtime, "Reader")
        assert await status(auth_client, old) == 200
        reply = await rotate(admin_client, admin_secret, record.id, body)
        assert reply.status == 200, reply.body
        assert reply.body["previous_secret_expires_at"] is None
        assert await status(auth_client, old) == 401
        assert audit_entries(runtime)[-1]["details"] == {"grace": None}

    async def test_the_longest_grace(
        self, runtime: Runtime, admin_client: Client, admin_secret: str
    ) -> None:
        """7d is allowed, and the audit record says the grace."""
        record, _ = await mint(runtime, "Reader")
        reply = await rotate(admin_client, admin_secret, record.id, {"grace": "168h"})
        assert reply.status == 200, reply.body
        assert reply.body["previous_secret_expires_at"] == rfc3339(NOW + 7 * 24 * HOUR)
        last = audit_entries(runtime)[-1]
        assert (last["action"], last["target"], last["details"]) == (
            "token.rotate",
            record.id,
            {"grace": "7d"},
        )

    @pytest.mark.parametrize(
        ("body", "code", "expected", "field"),
        [
            pytest.param({"grace": "8d"}, "grace_too_long", 422, "grace", id="8d"),
            pytest.param({"grace": "169h"}, "grace_too_long", 422, "grace", id="169h"),
            pytest.param({"grace": "30s"}, "invalid_grace", 422, "grace", id="seconds"),
            pytest.param({"grace": "1 h"}, "invalid_grace", 422, "grace", id="space"),
            pytest.param({"grace": "-1h"}, "invalid_grace", 422, "grace", id="negative"),
            pytest.param({"grace": ""}, "invalid_grace", 422, "grace", id="empty"),
            pytest.param({"grace": 60}, "invalid_field", 422, "grace", id="number"),
            pytest.param({"grace": "1h", "x": 1}, "unknown_field", 422, "x", id="unknown-key"),
            pytest.param(["1h"], "invalid_json", 400, None, id="not-an-object"),
        ],
    )
    async def test_bad_grace_changes_nothing(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        admin_secret: str,
        body: Any,
        code: str,
        expected: int,
        field: str | None,
    ) -> None:
        """A bad grace is a 4xx naming the field; the old secret still works, alone, and
        nothing is audited."""
        record, old = await mint(runtime, "Reader")
        before = len(audit_entries(runtime))
        reply = await rotate(admin_client, admin_secret, record.id, body)
        error_of(reply, code, expected, field=field)
        assert await status(auth_client, old) == 200
        assert len(audit_entries(runtime)) == before
        assert (await runtime.store.get(record.id)) == record

    async def test_grace_on_an_unknown_token(self, admin_client: Client, admin_secret: str) -> None:
        """404 as for any rotation."""
        reply = await rotate(admin_client, admin_secret, "tok_0123456789abcdef", {"grace": "1h"})
        error_of(reply, "not_found", 404)


class TestFirstUse:
    """The first successful /auth use of the new secret ends the grace."""

    async def test_ends_the_previous_secret_at_once(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """The old secret (cached) is refused right after the new one's first 200; the
        store forgets it; one token.grace_ended record names the token and the client."""
        record, old = await mint(runtime, "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        assert await status(auth_client, old) == 200
        assert await status(auth_client, new) == 200
        assert await status(auth_client, old) == 401
        assert await status(auth_client, new) == 200
        await settled(runtime)
        assert await runtime.store.get_by_digest(runtime.service.digest(old)) is None
        assert (await shown(admin_client, admin_secret, record.id))[
            "previous_secret_expires_at"
        ] is None
        ended = [e for e in audit_entries(runtime) if e["action"] == "token.grace_ended"]
        assert len(ended) == 1
        assert (ended[0]["actor"], ended[0]["target"], ended[0]["client"]) == (
            record.id,
            record.id,
            "127.0.0.1",
        )

    async def test_a_refused_use_does_not_end_the_grace(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """A 403 for the new secret is no proof of a switch: the old one works on."""
        record, old = await mint(runtime, "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        assert (await auth(auth_client, new, "/api/v1/elsewhere"))[0] == 403
        await settled(runtime)
        assert await status(auth_client, old) == 200

    async def test_admin_calls_with_the_new_secret_do_not_end_the_grace(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """Only /auth counts as use: an admin call with the new secret leaves both working."""
        record, old = await mint(runtime, "ViewOrganizationTokens", "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        assert (await send(admin_client, "GET", "/admin/v1/self", new)).status == 200
        assert (await send(admin_client, "GET", "/admin/v1/self", old)).status == 200
        await settled(runtime)
        assert await status(auth_client, old) == 200

    async def test_a_pending_store_write_does_not_let_the_previous_secret_back_in(
        self,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        admin_secret: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """While the end of the grace is still on its way to the store (which still finds
        the old secret), this instance refuses the old secret all the same."""
        record, old = await mint(runtime, "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        assert await status(auth_client, old) == 200
        gate = asyncio.Event()
        real = runtime.store.end_grace

        async def held(*args: Any, **kwargs: Any) -> tuple[bytes, bytes] | None:
            await gate.wait()
            return await real(*args, **kwargs)

        monkeypatch.setattr(runtime.store, "end_grace", held)
        assert await status(auth_client, new) == 200
        assert await runtime.store.get_by_digest(runtime.service.digest(old)) is not None
        assert await status(auth_client, old) == 401
        gate.set()
        await settled(runtime)
        assert await runtime.store.get_by_digest(runtime.service.digest(old)) is None

    async def test_the_write_is_retried_while_the_store_is_away(
        self,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        admin_secret: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """An unreachable store does not lose the end of the grace: it is written once the
        store answers again, and audited once."""
        record, old = await mint(runtime, "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        real = runtime.store.end_grace
        failures = [StoreUnavailable("down"), StoreUnavailable("still down")]

        async def flaky(*args: Any, **kwargs: Any) -> tuple[bytes, bytes] | None:
            if failures:
                raise failures.pop(0)
            return await real(*args, **kwargs)

        monkeypatch.setattr(runtime.store, "end_grace", flaky)
        assert await status(auth_client, new) == 200
        await settled(runtime)
        assert failures == []
        assert await runtime.store.get_by_digest(runtime.service.digest(old)) is None
        actions = [e["action"] for e in audit_entries(runtime)]
        assert actions.count("token.grace_ended") == 1

    async def test_a_new_grace_after_an_ended_one(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """After a first use ended one grace, the next rotation's grace works afresh, even
        when it ends at the very same instant (the test clock stands still)."""
        record, _ = await mint(runtime, "Reader")
        second = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body
        assert await status(auth_client, second["token"]) == 200  # ends the first grace
        await settled(runtime)
        third = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body
        assert third["previous_secret_expires_at"] == second["previous_secret_expires_at"]
        assert await status(auth_client, second["token"]) == 200
        assert await status(auth_client, third["token"]) == 200
        assert await status(auth_client, second["token"]) == 401


class TestAdminTokens:
    """An admin token's previous secret works on the admin API during its grace only."""

    async def test_previous_admin_secret_after_the_grace(
        self, runtime: Runtime, clock: FrozenClock, admin_client: Client, admin_secret: str
    ) -> None:
        """During the grace both secrets are admin tokens; after it the old one is 401."""
        record, old = await mint(runtime, "ViewOrganizationTokens")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        assert (await send(admin_client, "GET", "/admin/v1/self", old)).status == 200
        clock.advance(HOUR)
        error_of(await send(admin_client, "GET", "/admin/v1/self", old), "unauthorized", 401)
        assert (await send(admin_client, "GET", "/admin/v1/self", new)).status == 200


class TestChangesDuringAGrace:
    """Rotations, deletes and updates reach both secrets at once."""

    async def test_a_rotation_during_a_grace_ends_the_older_previous_secret(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """Only the newest two secrets work after a second rotation with a grace; only the
        newest after one without."""
        record, first = await mint(runtime, "Reader")
        second = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body
        assert await status(auth_client, first) == 200
        third = (await rotate(admin_client, admin_secret, record.id, {"grace": "2h"})).body
        assert third["previous_secret_expires_at"] == rfc3339(NOW + 2 * HOUR)
        assert await status(auth_client, first) == 401
        assert await status(auth_client, second["token"]) == 200
        fourth = (await rotate(admin_client, admin_secret, record.id)).body
        assert fourth["previous_secret_expires_at"] is None
        assert await status(auth_client, second["token"]) == 401
        assert await status(auth_client, third["token"]) == 401
        assert await status(auth_client, fourth["token"]) == 200

    async def test_delete_stops_both_secrets(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """A deleted token's previous secret brings nothing back, cached or not."""
        record, old = await mint(runtime, "Reader")
        new = (await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})).body["token"]
        assert await status(auth_client, old) == 200
        reply = await send(admin_client, "DELETE", f"{TOKENS}/{record.id}", admin_secret)
        assert reply.status == 204
        assert await status(auth_client, old) == 401
        assert await status(auth_client, new) == 401
        runtime.cache.clear()
        assert await status(auth_client, old) == 401

    async def test_narrowed_permissions_apply_to_both_secrets(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """PATCH during a grace applies at once to the previous secret's cached record."""
        record, old = await mint(runtime, "Reader")
        await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})
        assert await status(auth_client, old) == 200
        path = f"{TOKENS}/{record.id}"
        reply = await send(
            admin_client, "PATCH", path, admin_secret, body={"permissions": ["Writer"]}
        )
        assert reply.status == 200
        assert reply.body["previous_secret_expires_at"] == rfc3339(NOW + HOUR)
        assert await status(auth_client, old) == 403


class TestDelegation:
    """A rotation with a grace obeys the delegation bounds like any rotation."""

    async def test_beyond_the_caller_is_refused_and_changes_nothing(
        self, runtime: Runtime, admin_client: Client, auth_client: Client
    ) -> None:
        """403 exceeds_caller; the old secret works alone, no grace is kept."""
        _, caller = await mint(runtime, "ManageOrganizationTokens", "Writer")
        record, old = await mint(runtime, "Reader")
        reply = await rotate(admin_client, caller, record.id, {"grace": "1h"})
        error_of(reply, "exceeds_caller", 403)
        assert await runtime.store.get(record.id) == record
        assert await status(auth_client, old) == 200

    async def test_within_the_caller_is_allowed(
        self, runtime: Runtime, admin_client: Client, auth_client: Client
    ) -> None:
        """A caller holding the token's permissions rotates it with a grace."""
        _, caller = await mint(runtime, "ManageOrganizationTokens", "Reader")
        record, old = await mint(runtime, "Reader")
        reply = await rotate(admin_client, caller, record.id, {"grace": "1h"})
        assert reply.status == 200, reply.body
        assert await status(auth_client, old) == 200


class TestKnownDigests:
    """A previous secret in its grace counts as existing for the unknown-lookup budget."""

    async def test_previous_secret_is_looked_up_when_the_budget_is_spent(
        self, runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str
    ) -> None:
        """With the budget for unknown tokens spent, the old secret (not cached) still
        reaches the store: the set of existing tokens lists it."""
        record, old = await mint(runtime, "Reader")
        await rotate(admin_client, admin_secret, record.id, {"grace": "1h"})
        runtime.lookups.known.replace(await runtime.store.digest_prefixes())
        runtime.lookups.budget.resize(1)
        while runtime.lookups.budget.take():
            pass
        runtime.cache.clear()
        assert await status(auth_client, old) == 200
