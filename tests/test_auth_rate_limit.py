"""Rate limits on ``/auth`` (SPEC §12): a limited token's allows carry its counts and are
never reusable by nginx's micro-cache; past the limit the answer is 403 ``rate_limited``
with ``Retry-After``; the policy's maximum applies at use; only allowed requests count.

Limits here are per hour, so that no refill can happen while a test runs, whatever the
machine's speed (the bucket itself, and its refill, are tested in tests/test_ratelimit_*.py).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import ClientResponse

from authsvc.service.runtime import Runtime
from tests.webapp import READ_ITEMS, Client, bearer, mint, use_config

pytest_plugins = ("tests.webapp",)

WRITE_ITEMS = {"X-Original-Method": "POST", "X-Original-URI": "/api/v1/items"}


async def limited(runtime: Runtime, rate_limit: str) -> str:
    """The secret of a new Reader token with ``rate_limit``."""
    _, secret = await runtime.service.create(
        actor="cli",
        client=None,
        name=f"limited {rate_limit}",
        permissions=["Reader"],
        expires_in=None,
        ip_filter=None,
        rate_limit=rate_limit,
    )
    return secret


async def ask(
    auth_client: Client, secret: str, request: dict[str, str] = READ_ITEMS
) -> ClientResponse:
    response = await auth_client.get("/auth", headers={**bearer(secret), **request})
    await response.read()
    return response


async def test_allows_then_refuses_with_retry_after(auth_client: Client, runtime: Runtime) -> None:
    secret = await limited(runtime, "2/h")
    for remaining in (1, 0):
        allowed = await ask(auth_client, secret)
        assert allowed.status == 200
        assert allowed.headers["X-RateLimit-Limit"] == "2"
        assert allowed.headers["X-RateLimit-Remaining"] == str(remaining)
        assert 0 < int(allowed.headers["X-RateLimit-Reset"]) <= 3600
        # never served by the micro-cache without being counted
        assert allowed.headers["X-Accel-Expires"] == "0"
        assert allowed.headers["X-Auth-Reason"] == "ok"
        assert allowed.headers["Content-Length"] == "0"
    refused = await ask(auth_client, secret)
    assert refused.status == 403
    assert refused.headers["X-Auth-Reason"] == "rate_limited"
    # one of two per hour comes back after half an hour: whole seconds, rounded up
    assert 1 <= int(refused.headers["Retry-After"]) <= 1800
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["Cache-Control"] == "no-store"
    assert refused.headers["X-Accel-Expires"] == "0"
    assert "WWW-Authenticate" not in refused.headers
    metrics = runtime.metrics.hot.decisions
    assert metrics[next(r for r in metrics if r.value == "rate_limited")] == 1


async def test_a_token_without_a_limit_carries_no_counts(
    auth_client: Client, runtime: Runtime
) -> None:
    _, secret = await mint(runtime, "Reader")
    for _ in range(5):
        allowed = await ask(auth_client, secret)
        assert allowed.status == 200
        assert "X-RateLimit-Limit" not in allowed.headers
        assert allowed.headers["X-Accel-Expires"] == "1"  # reusable: nothing to count


async def test_refusals_for_other_reasons_take_nothing(
    auth_client: Client, runtime: Runtime
) -> None:
    """Only allowed requests count: a permission_denied leaves the bucket full."""
    secret = await limited(runtime, "1/h")
    for _ in range(3):
        assert (await ask(auth_client, secret, WRITE_ITEMS)).status == 403
    assert (await ask(auth_client, secret)).status == 200
    denied = await ask(auth_client, secret)
    assert denied.headers["X-Auth-Reason"] == "rate_limited"


async def test_the_policy_maximum_applies_at_use(
    auth_client: Client, runtime: Runtime, tmp_path: Path
) -> None:
    """A token made before the maximum (with no limit, or a higher one) is held to it."""
    _, unlimited = await mint(runtime, "Reader")
    higher = await limited(runtime, "100/h")
    use_config(runtime, tmp_path, security_policy={"max_rate_limit": "1/h"})
    for secret in (unlimited, higher):
        first = await ask(auth_client, secret)
        assert (first.status, first.headers["X-RateLimit-Limit"]) == (200, "1")
        assert (await ask(auth_client, secret)).headers["X-Auth-Reason"] == "rate_limited"


async def test_a_lower_limit_by_patch_takes_effect_at_once(
    auth_client: Client, runtime: Runtime
) -> None:
    secret = await limited(runtime, "100/h")
    assert (await ask(auth_client, secret)).status == 200
    record = await runtime.service.lookup(runtime.service.digest(secret))
    assert record is not None
    await runtime.service.update(actor="cli", client=None, token_id=record.id, rate_limit="1/h")
    # the bucket shrinks to the new capacity (it was fuller): one more, then refused
    allowed = await ask(auth_client, secret)
    assert (allowed.status, allowed.headers["X-RateLimit-Limit"]) == (200, "1")
    assert (await ask(auth_client, secret)).headers["X-Auth-Reason"] == "rate_limited"


async def test_both_secrets_of_a_rotation_share_one_bucket(
    auth_client: Client, runtime: Runtime
) -> None:
    old = await limited(runtime, "2/h")
    record = await runtime.service.lookup(runtime.service.digest(old))
    assert record is not None
    assert (await ask(auth_client, old)).status == 200
    _, new = await runtime.service.rotate(actor="cli", client=None, token_id=record.id, grace="1h")
    assert (await ask(auth_client, old)).status == 200  # still in its grace
    refused = await ask(auth_client, old)
    assert refused.headers["X-Auth-Reason"] == "rate_limited"
    assert (await ask(auth_client, new)).headers["X-Auth-Reason"] == "rate_limited"


async def explained(admin_client: Client, admin_secret: str, secret: str) -> dict[str, object]:
    """POST /admin/v1/explain for the token of ``secret`` on the Reader request."""
    body = {"token": secret, "method": "GET", "uri": READ_ITEMS["X-Original-URI"]}
    response = await admin_client.post("/admin/v1/explain", json=body, headers=bearer(admin_secret))
    assert response.status == 200
    answer: dict[str, object] = await response.json()
    return answer


async def test_explain_says_rate_limited_and_takes_nothing(
    auth_client: Client, admin_client: Client, admin_secret: str, runtime: Runtime
) -> None:
    """SPEC §11: explain answers what /auth would, a token over its limit included, and
    explaining counts nothing against the limit."""
    secret = await limited(runtime, "1/h")
    for _ in range(3):
        answer = await explained(admin_client, admin_secret, secret)
        assert (answer["status"], answer["reason"]) == (200, "ok")
    assert (await ask(auth_client, secret)).status == 200  # the one request was still there
    answer = await explained(admin_client, admin_secret, secret)
    assert (answer["status"], answer["reason"]) == (403, "rate_limited")
    checks = answer["checks"]
    assert isinstance(checks, list)
    rate = next(check for check in checks if check["check"] == "rate_limit")
    assert rate["passed"] is False
    assert "1/h" in rate["detail"]
