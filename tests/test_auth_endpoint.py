"""GET /auth: every status, reason and header of SPEC §3, through aiohttp."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from authsvc.rules.tokens import TokenRecord, new_secret
from authsvc.service.runtime import Runtime
from tests.auth_client import auth_client as make_auth_client
from tests.factories import FrozenClock, make_config
from tests.webapp import ENVIRON, READ_ITEMS, Client, ClientMaker, bearer, mint


def count_lookups(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Wrap the store's digest lookup; the returned list grows by one digest per lookup."""
    seen: list[bytes] = []
    real = runtime.store.get_by_digest

    async def counted(digest: bytes) -> TokenRecord | None:
        seen.append(digest)
        return await real(digest)

    monkeypatch.setattr(runtime.store, "get_by_digest", counted)
    return seen


# ``clock``, ``runtime`` (one per store kind) and ``auth_client`` come from tests/webapp.py.
def presenting(secret: str, **headers: str) -> dict[str, str]:
    """The headers of a request ``Reader`` grants, presenting ``secret``, plus ``headers``."""
    return {**bearer(secret), **READ_ITEMS, **headers}


def reason_of(response: Any) -> str:
    return str(response.headers["X-Auth-Reason"])


class TestAllow:
    async def test_allowed_request_gets_identity_headers(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """200 with X-Auth-Token-Id and X-Auth-Token-Name."""
        record, secret = await mint(runtime, "Reader", name="deploy bot")
        response = await auth_client.get("/auth", headers=presenting(secret))
        assert response.status == 200
        assert reason_of(response) == "ok"
        assert response.headers["X-Auth-Token-Id"] == record.id
        assert response.headers["X-Auth-Token-Name"] == "deploy bot"

    async def test_unicode_name_is_percent_encoded_in_header(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """Header values stay ASCII: non-ASCII names are UTF-8 percent-encoded."""
        _, secret = await mint(runtime, "Reader", name="Zähler 100%")
        response = await auth_client.get("/auth", headers=presenting(secret))
        assert response.headers["X-Auth-Token-Name"] == "Z%C3%A4hler 100%25"

    async def test_bearer_scheme_is_case_insensitive(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """RFC 7235: the auth scheme name is case-insensitive."""
        _, secret = await mint(runtime, "Reader")
        headers = {**READ_ITEMS, "Authorization": f"bearer {secret}"}
        assert (await auth_client.get("/auth", headers=headers)).status == 200

    async def test_successful_use_is_recorded_off_the_request_path(
        self, auth_client: Client, runtime: Runtime, clock: FrozenClock
    ) -> None:
        """last_used_at / last_used_ip reach the store when the usage batch is flushed."""
        record, secret = await mint(runtime, "Reader")
        await auth_client.get("/auth", headers=presenting(secret, **{"X-Real-IP": "10.1.2.3"}))
        assert (await runtime.store.get(record.id)).last_used_at is None  # type: ignore[union-attr]
        await runtime.usage.flush()
        stored = await runtime.store.get(record.id)
        assert stored is not None
        assert stored.last_used_at == clock.now
        assert stored.last_used_ip == "10.1.2.3"


class TestTokenDenials:
    async def test_missing_token(self, auth_client: Client) -> None:
        """401 missing_token with a plain Bearer challenge and an empty body."""
        response = await auth_client.get("/auth", headers=READ_ITEMS)
        assert response.status == 401
        assert reason_of(response) == "missing_token"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="authsvc"'
        assert await response.read() == b""

    @pytest.mark.parametrize(
        "authorization",
        [
            pytest.param("Bearer", id="scheme-only"),
            pytest.param("Bearer ", id="empty-token"),
            pytest.param("Basic dXNlcjpwYXNz", id="basic-auth"),
            pytest.param("Token " + new_secret(), id="other-scheme"),
            pytest.param("Bearer authsvc_" + "A" * 49, id="bad-checksum"),
            pytest.param("Bearer " + "A" * 8192, id="8KiB-junk"),
            pytest.param("Bearer " + new_secret() + " extra", id="trailing-words"),
        ],
    )
    async def test_malformed_token(self, auth_client: Client, authorization: str) -> None:
        """401 malformed_token with error="invalid_token"."""
        response = await auth_client.get(
            "/auth", headers={**READ_ITEMS, "Authorization": authorization}
        )
        assert response.status == 401
        assert reason_of(response) == "malformed_token"
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]

    async def test_two_authorization_headers_are_refused(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """Two Authorization headers (even both valid) → 401 (SECURITY 9)."""
        _, secret = await mint(runtime, "Reader")
        headers = CIMultiDict(READ_ITEMS)
        headers.add("Authorization", f"Bearer {secret}")
        headers.add("Authorization", f"Bearer {secret}")
        response = await auth_client.get("/auth", headers=headers)
        assert response.status == 401
        assert reason_of(response) == "malformed_token"

    async def test_token_in_query_or_cookie_is_not_a_credential(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """Only the Authorization header counts (SECURITY 9)."""
        _, secret = await mint(runtime, "Reader")
        headers = {
            "X-Original-Method": "GET",
            "X-Original-URI": f"/api/v1/items?access_token={secret}",
            "Cookie": f"token={secret}; access_token={secret}",
        }
        response = await auth_client.get(f"/auth?access_token={secret}", headers=headers)
        assert response.status == 401
        assert reason_of(response) == "missing_token"

    async def test_unknown_and_deleted_tokens_answer_alike(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """Unknown and deleted tokens: same status, reason, headers and body (SECURITY 11)."""
        record, secret = await mint(runtime, "Reader")
        await runtime.service.delete(actor="cli", client=None, token_id=record.id)
        deleted = await auth_client.get("/auth", headers=presenting(secret))
        unknown = await auth_client.get("/auth", headers=presenting(new_secret()))
        for response in (deleted, unknown):
            assert response.status == 401
            assert reason_of(response) == "invalid_token"
        assert await deleted.text() == await unknown.text()
        assert dict(deleted.headers.items()).keys() == dict(unknown.headers.items()).keys()

    async def test_expiry_edge(
        self, auth_client: Client, runtime: Runtime, clock: FrozenClock
    ) -> None:
        """Allowed one second before expires_at; 401 expired at exactly expires_at."""
        record, secret = await mint(runtime, "Reader", expires_in="1h")
        assert record.expires_at is not None
        clock.now = record.expires_at - 1
        assert (await auth_client.get("/auth", headers=presenting(secret))).status == 200
        clock.now = record.expires_at
        response = await auth_client.get("/auth", headers=presenting(secret))
        assert response.status == 401
        assert reason_of(response) == "expired"

    async def test_tokens_disabled(
        self, auth_client: Client, runtime: Runtime, tmp_path: Path
    ) -> None:
        """Switching tokens off refuses a cached, valid token on the next request."""
        _, secret = await mint(runtime, "Reader")
        assert (await auth_client.get("/auth", headers=presenting(secret))).status == 200
        runtime.live.current = make_config(tmp_path, security_policy={"tokens_enabled": False})
        response = await auth_client.get("/auth", headers=presenting(secret))
        assert response.status == 401
        assert reason_of(response) == "tokens_disabled"


class TestRequestDenials:
    async def test_permission_denied(self, auth_client: Client, runtime: Runtime) -> None:
        """403 permission_denied when no permission covers method and path."""
        _, secret = await mint(runtime, "Reader")
        response = await auth_client.get(
            "/auth", headers=presenting(secret, **{"X-Original-Method": "POST"})
        )
        assert response.status == 403
        assert reason_of(response) == "permission_denied"

    async def test_ip_filter(self, auth_client: Client, runtime: Runtime) -> None:
        """403 ip_not_allowed."""
        _, secret = await mint(runtime, "Reader", ip_filter="office")
        inside = await auth_client.get(
            "/auth", headers=presenting(secret, **{"X-Real-IP": "10.0.0.9"})
        )
        assert inside.status == 200
        outside = await auth_client.get(
            "/auth", headers=presenting(secret, **{"X-Real-IP": "192.0.2.9"})
        )
        assert outside.status == 403
        assert reason_of(outside) == "ip_not_allowed"
        assert await outside.read() == b""

    async def test_mapped_ipv4_matches_ipv4_rules(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """::ffff:10.0.0.9 is 10.0.0.9 for the filter (SECURITY 15)."""
        _, secret = await mint(runtime, "Reader", ip_filter="office")
        headers = presenting(secret, **{"X-Real-IP": "::ffff:10.0.0.9"})
        assert (await auth_client.get("/auth", headers=headers)).status == 200

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            pytest.param({"X-Original-Method": None}, "bad_request", id="no-method"),
            pytest.param({"X-Original-URI": None}, "bad_request", id="no-uri"),
            pytest.param({"X-Original-Method": "get"}, "bad_request", id="lowercase-method"),
            pytest.param({"X-Real-IP": "not-an-ip"}, "bad_request", id="bad-real-ip"),
            pytest.param({"X-Original-URI": "/api/v1/items/../admin"}, "bad_path", id="dotdot"),
            pytest.param({"X-Original-URI": "/api/v1/items/%2e%2e/x"}, "bad_path", id="enc-dots"),
            pytest.param({"X-Original-URI": "/api/v1/items%2F42"}, "bad_path", id="enc-slash"),
            pytest.param({"X-Original-URI": "/api/v1/items/42%00"}, "bad_path", id="nul"),
            pytest.param({"X-Original-URI": "/api/v1//items/42"}, "bad_path", id="empty-seg"),
            pytest.param({"X-Original-URI": "/api/v1/items/42;x"}, "bad_path", id="semicolon"),
            pytest.param({"X-Original-URI": "/api/v1/items/4%zz"}, "bad_path", id="bad-escape"),
        ],
    )
    async def test_unusable_descriptions_are_denied(
        self, auth_client: Client, runtime: Runtime, overrides: dict[str, str | None], reason: str
    ) -> None:
        """403 bad_request / bad_path, never the subrequest's own method or path."""
        _, secret = await mint(runtime, "Reader")
        headers = {k: v for k, v in {**presenting(secret), **overrides}.items() if v is not None}
        response = await auth_client.get("/auth", headers=headers)
        assert response.status == 403
        assert reason_of(response) == reason

    async def test_query_string_takes_no_part_in_matching(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """/api/v1/admin?x=/api/v1/items is matched as /api/v1/admin (SECURITY 2)."""
        _, secret = await mint(runtime, "Reader")
        headers = presenting(secret, **{"X-Original-URI": "/api/v1/admin?x=/api/v1/items"})
        assert (await auth_client.get("/auth", headers=headers)).status == 403
        headers = presenting(secret, **{"X-Original-URI": "/api/v1/items/42?x=/admin"})
        assert (await auth_client.get("/auth", headers=headers)).status == 200

    async def test_untrusted_peer_cannot_choose_its_address(
        self, aiohttp_client: ClientMaker, tmp_path: Path, clock: FrozenClock
    ) -> None:
        """With no trusted proxies, X-Real-IP is ignored: the peer is the client."""
        config = make_config(tmp_path, trusted_proxies=[])
        runtime = await Runtime.open(config, clock=clock, environ=ENVIRON)
        try:
            client = await make_auth_client(aiohttp_client, runtime)
            _, secret = await mint(runtime, "Reader", ip_filter="office")
            headers = presenting(secret, **{"X-Real-IP": "10.0.0.9"})  # claims to be inside
            response = await client.get("/auth", headers=headers)
            assert response.status == 403
            assert reason_of(response) == "ip_not_allowed"
        finally:
            await runtime.close()


class TestCacheAndStore:
    async def test_malformed_token_never_reaches_the_store(
        self, auth_client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Junk is rejected before any store lookup and is not counted as a cache miss
        (SECURITY 10). A token-shaped secret with a wrong checksum is looked for in memory
        only: no issued secret has it, so it never meets a cached record."""
        lookups = count_lookups(runtime, monkeypatch)
        misses = runtime.metrics.registry.get_sample_value
        misses_before = misses("authsvc_cache_misses_total")
        for junk in ("x", "authsvc_" + "A" * 49, "A" * 8000):
            await auth_client.get(
                "/auth", headers={**READ_ITEMS, "Authorization": f"Bearer {junk}"}
            )
        assert len(lookups) == 0
        assert misses("authsvc_cache_misses_total") == misses_before

    async def test_cache_hit_does_not_touch_the_store(
        self, auth_client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The store is read once; later requests are served from the cache."""
        lookups = count_lookups(runtime, monkeypatch)
        _, secret = await mint(runtime, "Reader")
        for _ in range(5):
            assert (await auth_client.get("/auth", headers=presenting(secret))).status == 200
        assert len(lookups) == 1

    async def test_concurrent_misses_share_one_lookup(
        self, auth_client: Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A burst for one uncached token costs one store query."""
        lookups = count_lookups(runtime, monkeypatch)
        _, secret = await mint(runtime, "Reader")
        responses = await asyncio.gather(
            *(auth_client.get("/auth", headers=presenting(secret)) for _ in range(20))
        )
        assert {r.status for r in responses} == {200}
        assert len(lookups) <= 2  # requests may straddle the first lookup's completion

    async def test_store_unavailable_fails_closed_for_uncached_tokens_only(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """503 store_unavailable for an uncached token; a cached one keeps working."""
        _, cached = await mint(runtime, "Reader", name="cached")
        _, uncached = await mint(runtime, "Reader", name="uncached")
        assert (await auth_client.get("/auth", headers=presenting(cached))).status == 200
        await runtime.store.close()
        response = await auth_client.get("/auth", headers=presenting(uncached))
        assert response.status == 503
        assert reason_of(response) == "store_unavailable"
        assert (await auth_client.get("/auth", headers=presenting(cached))).status == 200

    async def test_change_outside_this_instance_is_honoured_within_ttl(
        self, aiohttp_client: ClientMaker, tmp_path: Path, clock: FrozenClock
    ) -> None:
        """A delete made straight in the store (the CLI) is honoured once cache.ttl passes."""
        timer = FrozenClock(0.0)
        config = make_config(tmp_path, cache={"ttl": "5s"})
        runtime = await Runtime.open(config, clock=clock, cache_timer=timer, environ=ENVIRON)
        try:
            client = await make_auth_client(aiohttp_client, runtime)
            record, secret = await mint(runtime, "Reader")
            assert (await client.get("/auth", headers=presenting(secret))).status == 200
            await runtime.store.delete(record.id)  # as the CLI in another process would
            timer.advance(4.9)
            assert (await client.get("/auth", headers=presenting(secret))).status == 200  # cached
            timer.advance(0.2)
            response = await client.get("/auth", headers=presenting(secret))
            assert response.status == 401
            assert reason_of(response) == "invalid_token"
        finally:
            await runtime.close()


class TestOnlyDocumentedStatuses:
    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({"Authorization": "Bearer authsvc_é"}, id="non-ascii-token"),
            pytest.param({"Authorization": "Bearer ", "X-Original-URI": "x" * 9000}, id="long-uri"),
            pytest.param({"X-Original-Method": "G" * 5000}, id="long-method"),
            pytest.param({"X-Real-IP": "1" * 5000}, id="long-real-ip"),
            pytest.param({"X-Original-URI": "http://evil/api/v1/items"}, id="absolute-form"),
        ],
    )
    async def test_hostile_headers_get_a_documented_status(
        self, auth_client: Client, runtime: Runtime, headers: dict[str, str]
    ) -> None:
        """Whatever arrives, /auth answers 200, 401, 403 or 503 — never 500 (nginx → 500)."""
        _, secret = await mint(runtime, "Reader")
        for base in ({}, presenting(secret)):
            response = await auth_client.get("/auth", headers={**base, **headers})
            assert response.status in (401, 403)
            assert response.headers["X-Auth-Reason"]


class TestUnparseableRequests:
    async def test_header_beyond_the_limit_is_refused_without_echo(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """A 40 KiB Authorization header starting with a real secret: 400, secret not echoed."""
        _, secret = await mint(runtime, "Reader")
        headers = {**READ_ITEMS, "Authorization": f"Bearer {secret}" + "a" * 40_000}
        response = await auth_client.get("/auth", headers=headers)
        assert response.status == 400
        assert secret not in await response.text()

    async def test_other_paths_and_methods(self, auth_client: Client) -> None:
        """Only GET and HEAD /auth are served; HEAD answers without a body."""
        assert (await auth_client.get("/other")).status == 404
        response = await auth_client.post("/auth")
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
        head = await auth_client.head("/auth", headers=READ_ITEMS)
        assert head.status == 401
        assert head.headers["X-Auth-Reason"] == "missing_token"
        assert await head.read() == b""


class TestMicrocacheHint:
    async def test_allow_may_be_reused_for_a_second(
        self, auth_client: Client, runtime: Runtime
    ) -> None:
        """An allow carries X-Accel-Expires: 1 (used only by the optional nginx micro-cache)."""
        _, secret = await mint(runtime, "Reader")
        response = await auth_client.get("/auth", headers=presenting(secret))
        assert response.headers["X-Accel-Expires"] == "1"

    async def test_allow_of_a_token_about_to_expire_is_not_reusable(
        self, auth_client: Client, runtime: Runtime, clock: FrozenClock
    ) -> None:
        """Less than two seconds left (nginx may reuse a 1 s hint for up to 2 s):
        X-Accel-Expires: 0, so no cache outlives the token."""
        record, secret = await mint(runtime, "Reader", expires_in="1m")
        assert record.expires_at is not None
        clock.now = record.expires_at - 1.5
        response = await auth_client.get("/auth", headers=presenting(secret))
        assert response.status == 200
        assert response.headers["X-Accel-Expires"] == "0"

    async def test_denials_are_never_reusable(self, auth_client: Client, runtime: Runtime) -> None:
        """Every denial says X-Accel-Expires: 0."""
        _, secret = await mint(runtime, "Reader")
        for headers in (READ_ITEMS, presenting(secret, **{"X-Original-Method": "POST"})):
            response = await auth_client.get("/auth", headers=headers)
            assert response.status in (401, 403)
            assert response.headers["X-Accel-Expires"] == "0"
