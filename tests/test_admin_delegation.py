"""Delegation bounds through the admin API (SPEC §10, SECURITY 26): a calling token never
creates, widens or rotates a token beyond its own permissions, expiry and IP filter, a
refusal is 403 exceeds_caller and writes nothing, and deleting is never bounded. Also
GET /admin/v1/self, the calling token's own object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.durations import rfc3339
from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from tests.admin_helpers import ABSENT, DAY, TOKENS, error_of, new_token, send
from tests.factories import TOKEN_FIELDS
from tests.webapp import (
    MANAGE,
    NOW,
    VIEW,
    Client,
    audit_entries,
    auth_status,
    mint,
    use_config,
)

SELF = "/admin/v1/self"
#: The address filter the test client passes (it connects from 127.0.0.1).
HERE = "localhost"
#: Another filter, which the test client does not pass.
ELSEWHERE = "office"


async def caller(
    runtime: Runtime,
    *permissions: str,
    expires_in: str | None = None,
    ip_filter: str | None = None,
) -> tuple[TokenRecord, str]:
    """A calling admin token made with the CLI (unbounded): (record, secret)."""
    return await mint(
        runtime, *(permissions or (MANAGE,)), expires_in=expires_in, ip_filter=ip_filter
    )


async def written(runtime: Runtime) -> tuple[list[TokenRecord], int]:
    """Everything a refusal must leave alone: every stored record and the audit length."""
    return await runtime.store.all_tokens(), len(audit_entries(runtime))


# (calling token: permissions, expires_in, ip_filter; security_policy; create body fields;
# the field at fault)
CREATE_REFUSED = [
    pytest.param(
        (MANAGE,), None, None, {}, {"permissions": ["Reader"]}, "permissions", id="permission"
    ),
    pytest.param(
        (MANAGE, "Reader"),
        None,
        None,
        {},
        {"permissions": ["Reader", "Writer"]},
        "permissions",
        id="one-permission-of-two",
    ),
    pytest.param(
        (MANAGE, "Reader"), "10d", None, {}, {"expires_in": None}, "expires_in", id="no-expiry"
    ),
    pytest.param((MANAGE, "Reader"), "10d", None, {}, {}, "expires_in", id="expiry-absent"),
    pytest.param(
        (MANAGE, "Reader"), "10d", None, {}, {"expires_in": "11d"}, "expires_in", id="later"
    ),
    pytest.param(
        (MANAGE, "Reader"),
        "10d",
        None,
        {"max_lifetime": "90d"},
        {"expires_in": "241h"},
        "expires_in",
        id="later-under-max-lifetime",
    ),
    pytest.param(
        (MANAGE, "Reader"),
        None,
        HERE,
        {},
        {"ip_filter": ELSEWHERE},
        "ip_filter",
        id="other-filter",
    ),
]

# (calling token: permissions, expires_in, ip_filter; security_policy; create body fields;
# expected: permissions, expires_at, ip_filter of the new token)
CREATE_ALLOWED = [
    pytest.param(
        (MANAGE, "Reader"), None, None, {}, {}, (["Reader"], None, None), id="held-permission"
    ),
    pytest.param(
        (MANAGE,),
        None,
        None,
        {},
        {"permissions": [VIEW]},
        ([VIEW], None, None),
        id="manage-includes-view",
    ),
    pytest.param(
        (MANAGE,),
        None,
        None,
        {},
        {"permissions": [MANAGE, VIEW]},
        ([MANAGE, VIEW], None, None),
        id="manage-hands-on-manage",
    ),
    pytest.param(
        (MANAGE, "Reader"),
        "10d",
        None,
        {},
        {"expires_in": "10d"},
        (["Reader"], NOW + 10 * DAY, None),
        id="expires-with-caller",
    ),
    pytest.param(
        (MANAGE, "Reader"),
        "10d",
        None,
        {},
        {"expires_in": "239h"},
        (["Reader"], NOW + 239 * 3600, None),
        id="expires-before-caller",
    ),
    pytest.param(
        (MANAGE, "Reader"),
        None,
        HERE,
        {},
        {},
        (["Reader"], None, HERE),
        id="caller-filter-inherited",
    ),
    pytest.param(
        (MANAGE, "Reader"),
        None,
        HERE,
        {},
        {"ip_filter": HERE},
        (["Reader"], None, HERE),
        id="caller-filter-asked",
    ),
    pytest.param(
        (MANAGE, "Reader"),
        None,
        ELSEWHERE,
        {"enforce_ip_filter": HERE},
        {},
        (["Reader"], None, HERE),
        id="enforced-filter-not-compared",
    ),
]


class TestCreate:
    """POST /admin/v1/tokens within the caller's bounds."""

    @pytest.mark.parametrize(
        ("held", "expires_in", "ip_filter", "policy", "fields", "field"), CREATE_REFUSED
    )
    async def test_beyond_the_caller_is_refused_and_writes_nothing(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        held: tuple[str, ...],
        expires_in: str | None,
        ip_filter: str | None,
        policy: dict[str, Any],
        fields: dict[str, Any],
        field: str,
    ) -> None:
        """SECURITY 26: 403 exceeds_caller at the input at fault; no token, no audit."""
        _, secret = await caller(runtime, *held, expires_in=expires_in, ip_filter=ip_filter)
        use_config(runtime, tmp_path, security_policy=policy)
        before = await written(runtime)
        reply = await send(admin_client, "POST", TOKENS, secret, body=new_token(**fields))
        error_of(reply, "exceeds_caller", 403, field=field)
        assert await written(runtime) == before

    @pytest.mark.parametrize(
        ("held", "expires_in", "ip_filter", "policy", "fields", "expected"), CREATE_ALLOWED
    )
    async def test_within_the_caller_is_created(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        held: tuple[str, ...],
        expires_in: str | None,
        ip_filter: str | None,
        policy: dict[str, Any],
        fields: dict[str, Any],
        expected: tuple[list[str], float | None, str | None],
    ) -> None:
        """201 with what was asked, the caller's filter where the new token inherits it,
        and created_by naming the caller."""
        actor, secret = await caller(runtime, *held, expires_in=expires_in, ip_filter=ip_filter)
        use_config(runtime, tmp_path, security_policy=policy)
        reply = await send(admin_client, "POST", TOKENS, secret, body=new_token(**fields))
        assert reply.status == 201, reply.body
        permissions, expires_at, given_filter = expected
        assert reply.body["permissions"] == permissions
        assert reply.body["expires_at"] == (None if expires_at is None else rfc3339(expires_at))
        assert reply.body["ip_filter"] == given_filter
        assert reply.body["created_by"] == actor.id
        assert audit_entries(runtime)[-1]["actor"] == actor.id

    @pytest.mark.parametrize(
        ("policy", "fields", "code", "field"),
        [
            pytest.param(
                {},
                {"permissions": ["Writer", "Nope"]},
                "unknown_permission",
                "permissions",
                id="unknown-permission",
            ),
            pytest.param({}, {"expires_in": "30s"}, "invalid_expiry", "expires_in", id="syntax"),
            pytest.param(
                {"max_lifetime": "30d"},
                {"expires_in": None},
                "expiry_required",
                "expires_in",
                id="expiry-required",
            ),
            pytest.param(
                {"max_lifetime": "30d"},
                {"expires_in": "31d"},
                "expiry_too_long",
                "expires_in",
                id="expiry-too-long",
            ),
            pytest.param(
                {"enforce_ip_filter": HERE},
                {"ip_filter": ELSEWHERE},
                "ip_filter_enforced",
                "ip_filter",
                id="filter-enforced",
            ),
            pytest.param({}, {"ip_filter": "nope"}, "unknown_ip_filter", "ip_filter", id="filter"),
            pytest.param({}, {"name": ""}, "invalid_name", "name", id="name"),
        ],
    )
    async def test_the_policy_answers_before_the_bounds(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        policy: dict[str, Any],
        fields: dict[str, Any],
        code: str,
        field: str,
    ) -> None:
        """A request that breaks a policy rule and exceeds the caller is the policy's 422."""
        _, secret = await caller(runtime, MANAGE, expires_in="1d", ip_filter=HERE)
        use_config(runtime, tmp_path, security_policy=policy)
        body = new_token(**{"permissions": ["Writer"], "expires_in": "90d", **fields})
        reply = await send(admin_client, "POST", TOKENS, secret, body=body)
        error_of(reply, code, 422, field=field)

    async def test_a_new_name_is_not_taken_by_a_refusal(
        self, runtime: Runtime, admin_client: Client
    ) -> None:
        """After a refusal the name is still free: the caller can retry within bounds."""
        _, secret = await caller(runtime, MANAGE, "Reader")
        refused = new_token("retry", permissions=["Writer"])
        error_of(
            await send(admin_client, "POST", TOKENS, secret, body=refused),
            "exceeds_caller",
            403,
            field="permissions",
        )
        allowed = await send(admin_client, "POST", TOKENS, secret, body=new_token("retry"))
        assert allowed.status == 201


class TestPatch:
    """PATCH /admin/v1/tokens/{id}: the target's permissions and the new ones held."""

    @pytest.mark.parametrize(
        ("current", "new", "field"),
        [
            pytest.param(["Reader"], ["Writer"], "permissions", id="widened"),
            pytest.param(["Writer"], ["Reader"], None, id="target-beyond"),
            pytest.param(["Reader", "Writer"], ["Reader"], None, id="narrowing-beyond"),
        ],
    )
    async def test_beyond_the_caller_is_refused_and_writes_nothing(
        self,
        runtime: Runtime,
        admin_client: Client,
        current: list[str],
        new: list[str],
        field: str | None,
    ) -> None:
        """SECURITY 26: 403 exceeds_caller (at permissions when the new set is at fault,
        none when the target itself is beyond); the token and the audit log unchanged."""
        _, secret = await caller(runtime, MANAGE, "Reader")
        target, _ = await mint(runtime, *current)
        before = await written(runtime)
        path = f"{TOKENS}/{target.id}"
        reply = await send(admin_client, "PATCH", path, secret, body={"permissions": new})
        error_of(reply, "exceeds_caller", 403, field=field)
        assert await written(runtime) == before

    @pytest.mark.parametrize(
        ("held", "current", "new"),
        [
            pytest.param((MANAGE, "Reader"), ["Reader"], ["Reader", VIEW], id="adds-view"),
            pytest.param((MANAGE,), [VIEW], [MANAGE], id="view-to-manage"),
            pytest.param((MANAGE, "Reader", "Writer"), ["Reader"], ["Writer"], id="swap"),
        ],
    )
    async def test_within_the_caller_is_changed(
        self,
        runtime: Runtime,
        admin_client: Client,
        held: tuple[str, ...],
        current: list[str],
        new: list[str],
    ) -> None:
        """200 with the new set, audited with the caller as actor."""
        actor, secret = await caller(runtime, *held)
        target, _ = await mint(runtime, *current)
        path = f"{TOKENS}/{target.id}"
        reply = await send(admin_client, "PATCH", path, secret, body={"permissions": new})
        assert (reply.status, reply.body["permissions"]) == (200, sorted(new))
        assert audit_entries(runtime)[-1]["actor"] == actor.id

    @pytest.mark.parametrize(
        ("policy", "new", "status", "code", "field"),
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
                {}, ["Writer", "Nope"], 422, "unknown_permission", "permissions", id="unknown"
            ),
            pytest.param({}, [], 422, "invalid_permissions", "permissions", id="empty"),
        ],
    )
    async def test_the_policy_answers_before_the_bounds(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        policy: dict[str, Any],
        new: list[str],
        status: int,
        code: str,
        field: str | None,
    ) -> None:
        """Against a target beyond the caller, the policy's refusal still comes first."""
        _, secret = await caller(runtime, MANAGE)
        target, _ = await mint(runtime, "Writer")
        use_config(runtime, tmp_path, security_policy=policy)
        path = f"{TOKENS}/{target.id}"
        reply = await send(admin_client, "PATCH", path, secret, body={"permissions": new})
        error_of(reply, code, status, field=field)


# (calling token: permissions, expires_in, ip_filter; security_policy; target: permissions,
# expires_in, ip_filter)
ROTATE_REFUSED = [
    pytest.param((MANAGE,), None, None, {}, (["Reader"], None, None), id="permission"),
    pytest.param(
        (MANAGE, "Reader"), None, None, {}, (["Reader", "Writer"], None, None), id="one-of-two"
    ),
    pytest.param((MANAGE, "Reader"), "1d", None, {}, (["Reader"], None, None), id="no-expiry"),
    pytest.param((MANAGE, "Reader"), "1d", None, {}, (["Reader"], "2d", None), id="later"),
    pytest.param((MANAGE, "Reader"), None, HERE, {}, (["Reader"], None, None), id="unfiltered"),
    pytest.param(
        (MANAGE, "Reader"), None, HERE, {}, (["Reader"], None, ELSEWHERE), id="other-filter"
    ),
]
ROTATE_ALLOWED = [
    pytest.param((MANAGE, "Reader"), None, None, {}, (["Reader"], "2d", HERE), id="within"),
    pytest.param((MANAGE,), None, None, {}, ([VIEW], None, None), id="view-through-manage"),
    pytest.param((MANAGE, "Reader"), "2d", HERE, {}, (["Reader"], "1d", HERE), id="narrower"),
    pytest.param(
        (MANAGE, "Reader"),
        None,
        ELSEWHERE,
        {"enforce_ip_filter": HERE},
        (["Reader"], None, None),
        id="enforced-filter-not-compared",
    ),
]


class TestRotate:
    """POST /admin/v1/tokens/{id}/rotate only for a target within the caller's reach."""

    @pytest.mark.parametrize(
        ("held", "expires_in", "ip_filter", "policy", "target_fields"), ROTATE_REFUSED
    )
    async def test_beyond_the_caller_is_refused_and_writes_nothing(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        auth_client: Client,
        held: tuple[str, ...],
        expires_in: str | None,
        ip_filter: str | None,
        policy: dict[str, Any],
        target_fields: tuple[list[str], str | None, str | None],
    ) -> None:
        """SECURITY 26: no takeover; 403 exceeds_caller without a field, no secret in the
        answer, the target's secret keeps working, nothing written."""
        _, secret = await caller(runtime, *held, expires_in=expires_in, ip_filter=ip_filter)
        permissions, target_expiry, target_filter = target_fields
        target, target_secret = await mint(
            runtime, *permissions, expires_in=target_expiry, ip_filter=target_filter
        )
        use_config(runtime, tmp_path, security_policy=policy)
        before = await written(runtime)
        reply = await send(admin_client, "POST", f"{TOKENS}/{target.id}/rotate", secret)
        error_of(reply, "exceeds_caller", 403)
        assert await written(runtime) == before
        assert (await runtime.store.get_by_digest(runtime.service.digest(target_secret))) == target
        if "Reader" in permissions and target_filter is None:
            assert await auth_status(auth_client, target_secret) == 200

    @pytest.mark.parametrize(
        ("held", "expires_in", "ip_filter", "policy", "target_fields"), ROTATE_ALLOWED
    )
    async def test_within_the_caller_is_rotated(
        self,
        *,
        runtime: Runtime,
        tmp_path: Path,
        admin_client: Client,
        held: tuple[str, ...],
        expires_in: str | None,
        ip_filter: str | None,
        policy: dict[str, Any],
        target_fields: tuple[list[str], str | None, str | None],
    ) -> None:
        """200 with the new secret, audited with the caller as actor."""
        actor, secret = await caller(runtime, *held, expires_in=expires_in, ip_filter=ip_filter)
        permissions, target_expiry, target_filter = target_fields
        target, _ = await mint(
            runtime, *permissions, expires_in=target_expiry, ip_filter=target_filter
        )
        use_config(runtime, tmp_path, security_policy=policy)
        reply = await send(admin_client, "POST", f"{TOKENS}/{target.id}/rotate", secret)
        assert (reply.status, reply.body["id"]) == (200, target.id), reply.body
        assert reply.body["token"]
        assert audit_entries(runtime)[-1]["actor"] == actor.id

    async def test_a_target_widened_during_the_rotation_gets_no_secret_out(
        self,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Widened by someone else between the check and the swap: the new secret is
        withheld (403 exceeds_caller) and the audit log says the old one was replaced."""
        actor, secret = await caller(runtime, MANAGE, "Reader")
        target, old_secret = await mint(runtime, "Reader")
        swap = runtime.store.replace_digest

        async def widened_first(token_id: str, digest: bytes) -> Any:
            await runtime.store.update_permissions(token_id, frozenset({"Reader", "Writer"}))
            return await swap(token_id, digest)

        monkeypatch.setattr(runtime.store, "replace_digest", widened_first)
        reply = await send(admin_client, "POST", f"{TOKENS}/{target.id}/rotate", secret)
        error_of(reply, "exceeds_caller", 403)
        assert "authsvc_" not in reply.text
        assert await auth_status(auth_client, old_secret) == 401
        last = audit_entries(runtime)[-1]
        assert (last["action"], last["actor"], last["target"]) == (
            "token.rotate",
            actor.id,
            target.id,
        )
        assert "secret_withheld" in last["details"]


class TestDelete:
    """DELETE is never bounded: any Manage token can revoke any token."""

    @pytest.mark.parametrize(
        ("permissions", "expires_in", "ip_filter"),
        [
            pytest.param([MANAGE, "Reader", "Writer"], None, None, id="stronger"),
            pytest.param(["Writer"], None, ELSEWHERE, id="other-filter"),
            pytest.param(["Reader"], "90d", None, id="lives-longer"),
        ],
    )
    async def test_any_token_can_be_deleted(
        self,
        *,
        runtime: Runtime,
        admin_client: Client,
        auth_client: Client,
        permissions: list[str],
        expires_in: str | None,
        ip_filter: str | None,
    ) -> None:
        """A narrow, short-lived, filtered Manage token deletes a token beyond it: 204."""
        _, secret = await caller(runtime, MANAGE, expires_in="1h", ip_filter=HERE)
        target, target_secret = await mint(
            runtime, *permissions, expires_in=expires_in, ip_filter=ip_filter
        )
        reply = await send(admin_client, "DELETE", f"{TOKENS}/{target.id}", secret)
        assert reply.status == 204
        assert await runtime.store.get(target.id) is None
        assert await auth_status(auth_client, target_secret) == 401


class TestSelf:
    """GET /admin/v1/self: the calling token's own object."""

    @pytest.mark.parametrize(
        ("permissions", "expires_in", "ip_filter"),
        [
            pytest.param([VIEW], None, None, id="view"),
            pytest.param([MANAGE, "Reader"], "30d", HERE, id="manage"),
        ],
    )
    async def test_answers_the_callers_token_object(
        self,
        runtime: Runtime,
        admin_client: Client,
        permissions: list[str],
        expires_in: str | None,
        ip_filter: str | None,
    ) -> None:
        """200, no-store, the token object of the presented token and no secret."""
        actor, secret = await caller(
            runtime, *permissions, expires_in=expires_in, ip_filter=ip_filter
        )
        reply = await send(admin_client, "GET", SELF, secret)
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert set(reply.body) == TOKEN_FIELDS
        assert (reply.body["id"], reply.body["permissions"]) == (actor.id, sorted(permissions))
        assert reply.body["ip_filter"] == ip_filter
        assert secret not in reply.text

    @pytest.mark.parametrize(
        ("who", "status", "code"),
        [
            pytest.param("reader", 403, "forbidden", id="no-admin-permission"),
            pytest.param("nobody", 401, "unauthorized", id="no-token"),
        ],
    )
    async def test_needs_an_admin_token(
        self, runtime: Runtime, admin_client: Client, who: str, status: int, code: str
    ) -> None:
        """A token without View or Manage, or no token, is refused like any read."""
        secret = (await mint(runtime, "Reader"))[1] if who == "reader" else None
        error_of(await send(admin_client, "GET", SELF, secret), code, status)

    async def test_no_other_method(self, runtime: Runtime, admin_client: Client) -> None:
        """Only GET: HEAD and writes are 405."""
        _, secret = await caller(runtime, MANAGE)
        for method in ("HEAD", "POST", "DELETE"):
            reply = await send(admin_client, method, SELF, secret, body=ABSENT)
            assert reply.status == 405, method


class TestService:
    """TokenService is bounded by the record of a calling token, never by its id alone."""

    @pytest.mark.parametrize("change", ["create", "update", "rotate"])
    async def test_a_token_id_without_its_record_fails_closed(
        self, runtime: Runtime, change: str
    ) -> None:
        """A caller that names a token as actor but passes no record is a programming
        error (TypeError), not an unbounded change; nothing is written."""
        actor, _ = await caller(runtime, MANAGE)
        target, _ = await mint(runtime, "Writer")
        before = await written(runtime)
        service = runtime.service
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "create": lambda: service.create(
                actor=actor.id,
                client=None,
                name="sneaky",
                permissions=["Writer"],
                expires_in=None,
                ip_filter=None,
            ),
            "update": lambda: service.update_permissions(
                actor=actor.id, client=None, token_id=target.id, permissions=["Writer"]
            ),
            "rotate": lambda: service.rotate(actor=actor.id, client=None, token_id=target.id),
        }
        with pytest.raises(TypeError):
            await calls[change]()
        assert await written(runtime) == before
