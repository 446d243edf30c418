"""Explaining a decision (docs/admin-api.md, ``POST /admin/v1/explain``): every check with
its outcome, the answer ``/auth`` would give, the template and filter rule that decided;
who may ask, what bad bodies get, and that asking counts nothing and echoes no secret.

The pure rules come first (``authsvc.rules.explain`` against ``decide``), then the call."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest

from authsvc.rules.decision import AUTH_STATUS, Reason, decide
from authsvc.rules.endpoints import PermissionMatcher, compile_template, split_path
from authsvc.rules.explain import (
    CHECK_NAMES,
    UNKNOWN_SECRET,
    Explanation,
    TokenFound,
    explain,
    secret_problem,
)
from authsvc.rules.ipfilter import DEFAULT_DENY, IPAddress, compile_ip_filter
from authsvc.rules.request import Described, describe
from authsvc.rules.tokens import TokenRecord, new_secret
from authsvc.service.lookups import LookupBudget
from authsvc.service.runtime import Runtime
from authsvc.store import StoreUnavailable
from authsvc.web.admin_explain import EXPLAIN_FIELDS, INTROSPECT_FIELDS
from authsvc.web.openapi import DOCUMENT
from tests.admin_helpers import ABSENT, UNKNOWN_ID, Reply, error_of, send
from tests.factories import FrozenClock, make_config, make_record
from tests.test_architecture import PACKAGE, PURE, PURE_STDLIB, imports_of
from tests.webapp import VIEW, Client, bearer, mint, use_config

EXPLAIN = "/admin/v1/explain"
ITEM = "/api/v1/items/42"
OFFICE_IP = "10.1.2.3"
OUTSIDE_IP = "192.0.2.7"
NOW = 2_000_000.0


def mistyped() -> str:
    """A secret of the right shape whose checksum is wrong."""
    good = new_secret()
    return good[:-6] + ("000000" if good[-6:] != "000000" else "000001")


def pure(record: TokenRecord, method: str, uri: str, ip: str | None, **config: Any) -> Explanation:
    """The pure explanation of a request, under ``make_config(**config)`` at NOW."""
    address: IPAddress | None = None if ip is None else IPv4Address(ip)
    return explain(
        TokenFound(record, "found by its id"),
        method=method,
        uri=uri,
        client_ip=address,
        config=make_config(**config),
        now=NOW,
    )


def by_check(explanation: Explanation | dict[str, Any]) -> dict[str, tuple[bool, str]]:
    """check name → (passed, detail)."""
    checks = (
        explanation["checks"] if isinstance(explanation, dict) else explanation.as_json()["checks"]
    )
    return {c["check"]: (c["passed"], c["detail"]) for c in checks}


class TestPureRules:
    """authsvc.rules.explain: the outcome of each check, and the answer decide() gives."""

    @pytest.mark.parametrize(
        ("fields", "uri", "ip", "config", "reason"),
        [
            pytest.param({}, ITEM, None, {}, Reason.OK, id="allowed"),
            pytest.param({}, "/api/v1/other", None, {}, Reason.PERMISSION_DENIED, id="no-template"),
            pytest.param(
                {"ip_filter": "office"}, ITEM, OUTSIDE_IP, {}, Reason.IP_NOT_ALLOWED, id="filter"
            ),
            pytest.param(
                {"expires_at": NOW}, ITEM, None, {}, Reason.EXPIRED, id="expired-at-the-instant"
            ),
            pytest.param(
                {"created_at": NOW - 7200},
                ITEM,
                None,
                {"security_policy": {"max_lifetime": "1h"}},
                Reason.EXPIRED,
                id="max-lifetime",
            ),
            pytest.param(
                {"expires_at": NOW - 1, "ip_filter": "office"},
                "/nope",
                OUTSIDE_IP,
                {"security_policy": {"tokens_enabled": False}},
                Reason.TOKENS_DISABLED,
                id="disabled-first",
            ),
            pytest.param(
                {"expires_at": NOW - 1, "ip_filter": "office"},
                "/nope",
                OUTSIDE_IP,
                {},
                Reason.EXPIRED,
                id="expired-before-filter",
            ),
            pytest.param(
                {"ip_filter": "office"},
                "/nope",
                OUTSIDE_IP,
                {},
                Reason.IP_NOT_ALLOWED,
                id="filter-before-permission",
            ),
            pytest.param(
                {"expires_at": NOW - 1}, "/a/../b", None, {}, Reason.BAD_PATH, id="request-first"
            ),
        ],
    )
    def test_answer_is_decides(
        self,
        fields: dict[str, Any],
        uri: str,
        ip: str | None,
        config: dict[str, Any],
        reason: Reason,
    ) -> None:
        """The reason is the first refusal in decide()'s order, and equals decide()'s own."""
        record = make_record(**{"created_at": NOW - 60, **fields})
        explanation = pure(record, "GET", uri, ip, **config)
        assert explanation.reason is reason
        assert explanation.status == AUTH_STATUS[reason]
        described = describe(
            "GET", uri, ip or "127.0.0.1", "127.0.0.1", make_config().trusted_proxies
        )
        if isinstance(described, Described):
            assert decide(record, described, make_config(**config), NOW) is reason

    def test_every_check_is_shown_even_after_a_refusal(self) -> None:
        """A refused filter does not hide the later checks: the permission and the
        template that would grant the request are shown (the spec's example)."""
        record = make_record(created_at=NOW - 60, ip_filter="office")
        explanation = pure(record, "GET", ITEM, OUTSIDE_IP)
        assert [c.check for c in explanation.checks] == list(CHECK_NAMES)
        checks = by_check(explanation)
        assert checks["ip_filter"] == (False, "office: deny all")
        assert checks["permission"] == (True, "Reader: GET /api/v1/items/{id}")
        assert explanation.matched_endpoint == "Reader: GET /api/v1/items/{id}"
        assert explanation.ip_rule == "deny all"
        assert explanation.reason is Reason.IP_NOT_ALLOWED

    @pytest.mark.parametrize(
        ("rules", "ip", "passed", "rule", "detail"),
        [
            pytest.param(
                "allow 10.0.0.0/8\ndeny 10.9.0.0/16",
                "10.9.1.1",
                True,
                "allow 10.0.0.0/8",
                "office: allow 10.0.0.0/8",
                id="first-match-decides",
            ),
            pytest.param(
                "deny 10.9.0.0/16\nallow 10.0.0.0/8",
                "10.9.1.1",
                False,
                "deny 10.9.0.0/16",
                "office: deny 10.9.0.0/16",
                id="deny-rule",
            ),
            pytest.param(
                "allow 10.0.0.0/8",
                "192.0.2.1",
                False,
                "default deny",
                "office: default deny (no rule matches 192.0.2.1).",
                id="default-deny",
            ),
            pytest.param(
                "allow 10.0.0.0/8  # the office",
                "10.0.0.1",
                True,
                "allow 10.0.0.0/8",
                "office: allow 10.0.0.0/8",
                id="comment-not-shown",
            ),
        ],
    )
    def test_the_rule_that_decided(
        self, rules: str, ip: str, passed: bool, rule: str, detail: str
    ) -> None:
        """ip_rule is the first matching rule as written, or "default deny"."""
        record = make_record(created_at=NOW - 60, ip_filter="office")
        explanation = pure(record, "GET", ITEM, ip, ip_filters={"office": rules})
        assert by_check(explanation)["ip_filter"] == (passed, detail)
        assert explanation.ip_rule == rule

    def test_no_filter_no_rule(self) -> None:
        """Without an effective filter, the check passes and ip_rule is null."""
        explanation = pure(make_record(created_at=NOW - 60), "GET", ITEM, None)
        assert by_check(explanation)["ip_filter"][0] is True
        assert explanation.ip_rule is None

    def test_no_address_fails_any_filter(self) -> None:
        """No client address: a filter (even one allowing all) cannot pass."""
        record = make_record(created_at=NOW - 60, ip_filter="open")
        explanation = pure(record, "GET", ITEM, None, ip_filters={"open": "allow all"})
        passed, detail = by_check(explanation)["ip_filter"]
        assert (passed, explanation.reason) == (False, Reason.IP_NOT_ALLOWED)
        assert "no client address" in detail
        assert explanation.ip_rule == "default deny"

    def test_enforced_filter_overrides_and_says_so(self) -> None:
        """The policy's enforced filter decides, and the detail names it as enforced."""
        record = make_record(created_at=NOW - 60, ip_filter="localhost")
        explanation = pure(
            record, "GET", ITEM, OFFICE_IP, security_policy={"enforce_ip_filter": "office"}
        )
        passed, detail = by_check(explanation)["ip_filter"]
        assert passed is True
        assert detail.startswith("office (enforced by the security policy): allow 10.0.0.0/8")

    def test_vanished_filter_denies(self) -> None:
        """A filter no longer in the configuration denies every address, and says why."""
        record = make_record(created_at=NOW - 60, ip_filter="gone")
        explanation = pure(record, "GET", ITEM, OFFICE_IP)
        passed, detail = by_check(explanation)["ip_filter"]
        assert (passed, explanation.reason) == (False, Reason.IP_NOT_ALLOWED)
        assert "no longer exists" in detail
        assert explanation.ip_rule == "default deny"

    def test_permission_denied_names_what_the_token_holds(self) -> None:
        """The detail names the token's permissions and those gone from the catalog."""
        record = make_record(created_at=NOW - 60, permissions=frozenset({"Reader", "Retired"}))
        explanation = pure(record, "POST", "/api/v1/items", None)
        passed, detail = by_check(explanation)["permission"]
        assert (passed, explanation.matched_endpoint) == (False, None)
        assert "Reader, Retired" in detail
        assert "No longer in the catalog, so granting nothing: Retired." in detail

    def test_matched_endpoint_names_the_permission(self) -> None:
        """Of two permissions, the one whose template grants the request is named."""
        record = make_record(created_at=NOW - 60, permissions=frozenset({"Reader", "Writer"}))
        explanation = pure(record, "DELETE", ITEM, None)
        assert explanation.matched_endpoint == "Writer: DELETE /api/v1/items/{id}"
        head = pure(record, "HEAD", ITEM, None)
        assert head.matched_endpoint == "Reader: GET /api/v1/items/{id}"

    @pytest.mark.parametrize(
        ("fields", "config", "words"),
        [
            pytest.param({}, {}, "no expiry", id="none"),
            pytest.param(
                {"expires_at": NOW + 60}, {}, "Expires at 1970-01-24T03:34:20Z.", id="own"
            ),
            pytest.param(
                {"created_at": NOW - 60},
                {"security_policy": {"max_lifetime": "1h"}},
                "max_lifetime 1h",
                id="policy",
            ),
        ],
    )
    def test_expiry_detail(
        self, fields: dict[str, Any], config: dict[str, Any], words: str
    ) -> None:
        """The expiry detail says when, and whether the policy's maximum set it."""
        record = make_record(**{"created_at": NOW - 60, **fields})
        assert words in by_check(pure(record, "GET", ITEM, None, **config))["expiry"][1]

    def test_request_detail_shows_the_path_as_matched(self) -> None:
        """Escapes of unreserved characters are decoded before matching, and the detail
        says so; the query is not part of it."""
        record = make_record(created_at=NOW - 60)
        explanation = pure(record, "GET", "/api/%761/items/42?q=1", None)
        detail = by_check(explanation)["request"][1]
        assert detail.startswith("GET /api/v1/items/42 (the path as matched")
        assert explanation.reason is Reason.OK

    def test_secrets_in_the_path_are_redacted(self) -> None:
        """A secret pasted into the path is not echoed by any detail."""
        secret = new_secret()
        record = make_record(created_at=NOW - 60)
        text = json.dumps(pure(record, "GET", f"/api/v1/{secret}", None).as_json())
        assert secret not in text
        assert "authsvc_[redacted]" in text

    @pytest.mark.parametrize(
        ("secret", "uri"),
        [
            pytest.param("junk", ITEM, id="shape"),
            pytest.param("junk", "/a/../b", id="shape-before-request"),
            pytest.param("mistyped", ITEM, id="checksum"),
            pytest.param("mistyped", "/a/../b", id="checksum-before-request"),
        ],
    )
    def test_malformed_secrets_come_before_the_request(self, secret: str, uri: str) -> None:
        """A secret of the wrong shape or checksum is refused before the request is read:
        the order /auth uses."""
        problem = secret_problem(mistyped() if secret == "mistyped" else secret)
        assert problem is not None
        explanation = explain(
            problem, method="GET", uri=uri, client_ip=None, config=make_config(), now=NOW
        )
        assert (explanation.status, explanation.reason) == (401, Reason.MALFORMED_TOKEN)
        assert (explanation.matched_endpoint, explanation.ip_rule) == (None, None)

    @pytest.mark.parametrize(
        ("uri", "reason"),
        [
            pytest.param(ITEM, Reason.INVALID_TOKEN, id="unknown"),
            pytest.param("/a/../b", Reason.BAD_PATH, id="request-first"),
        ],
    )
    def test_unknown_secret_comes_after_the_request(self, uri: str, reason: Reason) -> None:
        """An unknown secret is 401 invalid_token once the request is usable, and only
        token and request are shown."""
        explanation = explain(
            UNKNOWN_SECRET, method="GET", uri=uri, client_ip=None, config=make_config(), now=NOW
        )
        assert explanation.reason is reason
        assert [c.check for c in explanation.checks] == ["token", "request"]


class TestRuleReporting:
    """The matcher and the filters say which template and which rule decided, and still
    answer exactly as before."""

    def test_first_match_prefers_literal_segments(self) -> None:
        """Of overlapping templates, the most literal from the left is reported."""
        templates = ["GET /a/{rest...}", "GET /a/{id}", "GET /a/b"]
        matcher = PermissionMatcher([compile_template(t) for t in templates])
        found = {
            path: getattr(matcher.first_match("GET", split_path(path)), "text", None)
            for path in ("/a/b", "/a/c", "/a/c/d", "/a", "/a/")
        }
        assert found == {
            "/a/b": "GET /a/b",
            "/a/c": "GET /a/{id}",
            "/a/c/d": "GET /a/{rest...}",
            "/a": None,
            "/a/": None,
        }
        assert matcher.matches("GET", split_path("/a/c/d")) is True
        assert matcher.matches("GET", split_path("/a/")) is False

    def test_filter_reports_its_rule(self) -> None:
        """rule_for() is the first matching rule (IPv4-mapped clients as IPv4), else
        DEFAULT_DENY; allows() follows it."""
        office = compile_ip_filter("office", "deny 10.9.0.0/16\nallow 10.0.0.0/8\nallow ::1")
        assert office.rule_for(IPv4Address("10.9.0.1")).text == "deny 10.9.0.0/16"
        assert office.rule_for(IPv6Address("::ffff:10.1.0.1")).text == "allow 10.0.0.0/8"
        assert office.rule_for(IPv6Address("::1")).text == "allow ::1"
        assert office.rule_for(IPv4Address("192.0.2.1")) is DEFAULT_DENY
        assert office.allows(IPv4Address("10.1.0.1")) is True
        assert office.allows(IPv4Address("10.9.0.1")) is False

    def test_explain_module_is_pure(self) -> None:
        """rules/explain.py imports only pure modules and computation."""
        imported = imports_of(PACKAGE / "rules" / "explain.py")
        assert {m for m in imported if m.startswith("authsvc") and m not in PURE} == set()
        assert {m for m in imported if not m.startswith("authsvc")} <= PURE_STDLIB


# -- the admin API -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rig:
    """Both listeners on one runtime, and a Manage token to ask with."""

    runtime: Runtime
    admin: Client
    auth: Client
    secret: str

    async def ask(self, body: Any, secret: str | None = None) -> Reply:
        """POST /admin/v1/explain with ``body``, as the Manage token (or ``secret``)."""
        return await send(self.admin, "POST", EXPLAIN, secret or self.secret, body=body)

    async def auth_answer(self, secret: str, method: str, uri: str, ip: str) -> tuple[int, str]:
        """(status, X-Auth-Reason) of GET /auth for this request from ``ip``."""
        headers = {
            **bearer(secret),
            "X-Original-Method": method,
            "X-Original-URI": uri,
            "X-Real-IP": ip,
        }
        response = await self.auth.get("/auth", headers=headers)
        return response.status, response.headers["X-Auth-Reason"]


@pytest.fixture
def rig(runtime: Runtime, admin_client: Client, auth_client: Client, admin_secret: str) -> Rig:
    return Rig(runtime, admin_client, auth_client, admin_secret)


def answer_of(reply: Reply) -> tuple[int, str]:
    assert reply.status == 200, reply.text
    return reply.body["status"], reply.body["reason"]


class TestExplainCall:
    """POST /admin/v1/explain."""

    async def test_by_id(self, rig: Rig) -> None:
        """200 with status, reason, every check, the template and the rule; no-store."""
        record, _ = await mint(rig.runtime, "Reader", ip_filter="office")
        reply = await rig.ask(
            {"token_id": record.id, "method": "GET", "uri": ITEM, "ip": OUTSIDE_IP}
        )
        assert (reply.status, reply.headers["Cache-Control"]) == (200, "no-store")
        assert set(reply.body) == {"status", "reason", "checks", "matched_endpoint", "ip_rule"}
        assert answer_of(reply) == (403, "ip_not_allowed")
        assert reply.body["matched_endpoint"] == "Reader: GET /api/v1/items/{id}"
        assert reply.body["ip_rule"] == "deny all"
        assert [c["check"] for c in reply.body["checks"]] == list(CHECK_NAMES)
        assert all(set(c) == {"check", "passed", "detail"} for c in reply.body["checks"])

    @pytest.mark.parametrize(
        "request_",
        [
            pytest.param(("GET", ITEM, OFFICE_IP), id="allowed"),
            pytest.param(("GET", ITEM, OUTSIDE_IP), id="filter"),
            pytest.param(("GET", ITEM, "::ffff:10.1.2.3"), id="mapped-address"),
            pytest.param(("HEAD", ITEM, OFFICE_IP), id="head-as-get"),
            pytest.param(("POST", ITEM, OFFICE_IP), id="permission"),
            pytest.param(("get", ITEM, OFFICE_IP), id="lower-case-method"),
            pytest.param(("GET", "/api/v1/items/%2e%2e/x", OFFICE_IP), id="dot-segment"),
            pytest.param(("GET", "/api/%761/items/42?x=1", OFFICE_IP), id="escape"),
            pytest.param(("GET", "", OFFICE_IP), id="empty-target"),
            pytest.param(("", ITEM, OFFICE_IP), id="empty-method"),
        ],
    )
    async def test_agrees_with_auth(self, rig: Rig, request_: tuple[str, str, str]) -> None:
        """By id and by secret, status and reason are what GET /auth answers."""
        method, uri, ip = request_
        record, secret = await mint(rig.runtime, "Reader", ip_filter="office")
        expected = await rig.auth_answer(secret, method, uri, ip)
        for subject in ({"token_id": record.id}, {"token": secret}):
            reply = await rig.ask({**subject, "method": method, "uri": uri, "ip": ip})
            assert answer_of(reply) == expected, subject

    @pytest.mark.parametrize(
        ("secret", "case"),
        [
            pytest.param("not a token", (ITEM, 401, "malformed_token"), id="shape"),
            pytest.param("not a token", ("/a//b", 401, "malformed_token"), id="shape-first"),
            pytest.param("checksum", (ITEM, 401, "malformed_token"), id="checksum"),
            pytest.param("checksum", ("/a//b", 401, "malformed_token"), id="checksum-first"),
            pytest.param("unknown", (ITEM, 401, "invalid_token"), id="unknown"),
            pytest.param("unknown", ("/a;b", 403, "bad_path"), id="unknown-after-path"),
            pytest.param("deleted", (ITEM, 401, "invalid_token"), id="deleted"),
        ],
    )
    async def test_secrets_that_name_no_token(
        self, rig: Rig, secret: str, case: tuple[str, int, str]
    ) -> None:
        """Malformed, unknown and deleted secrets explain as /auth answers them, and the
        secret is not echoed."""
        uri, *expected = case
        if secret == "checksum":
            secret = mistyped()
        elif secret == "unknown":
            secret = new_secret()
        elif secret == "deleted":
            record, secret = await mint(rig.runtime, "Reader")
            await rig.runtime.service.delete(actor="cli", client=None, token_id=record.id)
        reply = await rig.ask({"token": secret, "method": "GET", "uri": uri})
        assert answer_of(reply) == tuple(expected)
        assert await rig.auth_answer(secret, "GET", uri, OFFICE_IP) == tuple(expected)
        assert secret not in reply.text

    async def test_surrounding_white_space_is_ignored(self, rig: Rig) -> None:
        """A pasted secret with a newline or spaces around it is still the secret."""
        _, secret = await mint(rig.runtime, "Reader")
        reply = await rig.ask({"token": f"  {secret}\n", "method": "GET", "uri": ITEM})
        assert answer_of(reply) == (200, "ok")

    async def test_expired_token(self, rig: Rig, clock: FrozenClock) -> None:
        """An expired token explains as 401 expired (the admin token does not expire)."""
        record, _ = await mint(rig.runtime, "Reader", expires_in="1m")
        clock.advance(120)
        reply = await rig.ask({"token_id": record.id, "method": "GET", "uri": ITEM})
        assert answer_of(reply) == (401, "expired")
        assert by_check(reply.body)["expiry"][0] is False

    async def test_the_configuration_in_force_is_explained(self, rig: Rig, tmp_path: Path) -> None:
        """After a reload the new configuration is the one explained."""
        record, _ = await mint(rig.runtime, "Reader")
        body = {"token_id": record.id, "method": "GET", "uri": ITEM, "ip": OFFICE_IP}
        assert answer_of(await rig.ask(body)) == (200, "ok")
        use_config(rig.runtime, tmp_path, security_policy={"enforce_ip_filter": "localhost"})
        reply = await rig.ask(body)
        assert answer_of(reply) == (403, "ip_not_allowed")
        assert reply.body["ip_rule"] == "deny all"

    async def test_previous_secret_in_and_after_its_grace(
        self, rig: Rig, clock: FrozenClock
    ) -> None:
        """After a rotation with a grace the previous secret explains as allowed, saying
        so, until the grace ends; then as invalid_token. /auth agrees each time."""
        record, old = await mint(rig.runtime, "Reader")
        await rig.runtime.service.rotate(actor="cli", client=None, token_id=record.id, grace="1h")
        body = {"token": old, "method": "GET", "uri": ITEM}
        reply = await rig.ask(body)
        assert answer_of(reply) == (200, "ok")
        assert await rig.auth_answer(old, "GET", ITEM, OFFICE_IP) == (200, "ok")
        assert "previous secret" in by_check(reply.body)["token"][1]
        clock.advance(3600)
        reply = await rig.ask(body)
        assert answer_of(reply) == (401, "invalid_token")
        assert await rig.auth_answer(old, "GET", ITEM, OFFICE_IP) == (401, "invalid_token")
        assert "grace" in by_check(reply.body)["token"][1]

    async def test_grace_ended_here_by_first_use(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Once the new secret is used, the previous one explains as invalid_token at
        once, even while the store still holds it (its write not done yet)."""
        record, old = await mint(rig.runtime, "Reader")
        _, new = await rig.runtime.service.rotate(
            actor="cli", client=None, token_id=record.id, grace="1h"
        )

        async def not_yet(token_id: str, digest: bytes) -> None:
            return None  # as if another instance were ending it: the store keeps it for now

        monkeypatch.setattr(rig.runtime.store, "end_grace", not_yet)
        assert await rig.auth_answer(new, "GET", ITEM, OFFICE_IP) == (200, "ok")
        reply = await rig.ask({"token": old, "method": "GET", "uri": ITEM})
        assert answer_of(reply) == (401, "invalid_token")
        assert await rig.auth_answer(old, "GET", ITEM, OFFICE_IP) == (401, "invalid_token")

    async def test_unknown_id_is_404(self, rig: Rig) -> None:
        """An id that names no token is 404 not_found."""
        reply = await rig.ask({"token_id": UNKNOWN_ID, "method": "GET", "uri": "/"})
        error_of(reply, "not_found", 404)

    async def test_secret_in_the_id_is_404_and_not_echoed(self, rig: Rig) -> None:
        """A secret sent as token_id is 404 and does not come back."""
        secret = new_secret()
        reply = await rig.ask({"token_id": secret, "method": "GET", "uri": "/"})
        error_of(reply, "not_found", 404)
        assert secret not in reply.text

    async def test_store_outage_explains_as_auth_answers(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A secret not in the cache while the store is down explains as 503
        store_unavailable, as /auth answers it."""
        # a first call puts the admin token in the cache, so it is let in during the outage
        await rig.ask({"token": "x", "method": "GET", "uri": "/"})

        async def down(digest: bytes) -> TokenRecord | None:
            raise StoreUnavailable("down")

        monkeypatch.setattr(rig.runtime.store, "get_by_digest", down)
        reply = await rig.ask({"token": new_secret(), "method": "GET", "uri": ITEM})
        assert answer_of(reply) == (503, "store_unavailable")


class TestWhoMayAsk:
    """Explaining needs ViewOrganizationTokens (Manage includes it)."""

    async def test_view_token_may_ask(self, rig: Rig) -> None:
        """A View-only token gets its explanation."""
        record, view = await mint(rig.runtime, VIEW)
        reply = await rig.ask({"token_id": record.id, "method": "GET", "uri": "/"}, view)
        assert answer_of(reply) == (403, "permission_denied")

    async def test_without_view_is_403(self, rig: Rig) -> None:
        """A token without an admin permission is 403 forbidden, before the body is read."""
        record, reader = await mint(rig.runtime, "Reader")
        reply = await rig.ask({"token_id": record.id, "method": "GET", "uri": "/"}, reader)
        error_of(reply, "forbidden", 403)
        error_of(await rig.ask(ABSENT, reader), "forbidden", 403)

    async def test_without_a_token_is_401(self, rig: Rig) -> None:
        """No admin token: 401, and nothing is explained or echoed."""
        _, secret = await mint(rig.runtime, "Reader")
        body = {"token": secret, "method": "GET", "uri": "/"}
        reply = await send(rig.admin, "POST", EXPLAIN, body=body)
        error_of(reply, "unauthorized", 401)
        assert secret not in reply.text


_ANY = {"method": "GET", "uri": "/"}
_ID = {"token_id": UNKNOWN_ID, **_ANY}


class TestBadBodies:
    """Bad bodies are 400/422 in the error shape, naming the input at fault."""

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            pytest.param("[]", ("invalid_json", 400, None), id="not-an-object"),
            pytest.param("{", ("invalid_json", 400, None), id="not-json"),
            pytest.param(_ANY, ("invalid_field", 422, None), id="no-token"),
            pytest.param({**_ID, "token": "x"}, ("invalid_field", 422, None), id="both"),
            pytest.param({**_ANY, "token_id": 5}, ("invalid_field", 422, "token_id"), id="id-type"),
            pytest.param({**_ANY, "token": None}, ("invalid_field", 422, "token"), id="token-type"),
            pytest.param(
                {**_ID, "method": None}, ("invalid_field", 422, "method"), id="method-type"
            ),
            pytest.param(
                {"token_id": UNKNOWN_ID, "uri": "/"},
                ("invalid_field", 422, "method"),
                id="no-method",
            ),
            pytest.param({**_ID, "uri": ["/"]}, ("invalid_field", 422, "uri"), id="uri-type"),
            pytest.param({**_ID, "ip": 10}, ("invalid_field", 422, "ip"), id="ip-type"),
            pytest.param({**_ID, "ip": "10.0.0.256"}, ("invalid_ip", 422, "ip"), id="ip-value"),
            pytest.param(
                {**_ID, "ip": "010.0.0.1"}, ("invalid_ip", 422, "ip"), id="ip-leading-zero"
            ),
            pytest.param({**_ID, "ip": ""}, ("invalid_ip", 422, "ip"), id="ip-empty"),
            pytest.param({**_ID, "path": "/"}, ("unknown_field", 422, "path"), id="unknown-key"),
        ],
    )
    async def test_refused_with_the_field(
        self, rig: Rig, body: Any, expected: tuple[str, int, str | None]
    ) -> None:
        """Each bad body gets its code and, when one input is at fault, that input."""
        code, status, field = expected
        data = body if isinstance(body, str) else json.dumps(body)
        reply = await send(
            rig.admin,
            "POST",
            EXPLAIN,
            rig.secret,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        error_of(reply, code, status, field=field)

    async def test_secret_in_a_bad_body_is_not_echoed(
        self, rig: Rig, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Errors about a body holding a secret never repeat it, nor do the logs."""
        caplog.set_level(logging.DEBUG)
        secret = new_secret()
        for body in (
            {"token": secret, **_ID},
            {"token": secret, "method": 1, "uri": "/"},
            {"token": secret, **_ANY, secret: 1},
            {"token": secret, **_ANY, "ip": secret},
        ):
            reply = await rig.ask(body)
            assert reply.status == 422, reply.text
            assert secret not in reply.text
        assert secret not in caplog.text


class TestCountsNothing:
    """Explaining is not use: no usage, no lookup budget, no metrics, no cache entry."""

    async def counters(self, rig: Rig) -> list[str]:
        response = await rig.admin.get("/metrics")
        wanted = (
            "authsvc_decisions_total",
            "authsvc_cache_",
            "authsvc_store_lookups_total",
            "authsvc_unknown_lookups_skipped_total",
        )
        return [line for line in (await response.text()).splitlines() if line.startswith(wanted)]

    async def test_no_trace(self, rig: Rig) -> None:
        """After explaining a known, an unknown and a malformed secret and an id, the
        decision and lookup metrics, the cache, the budget and last use are unchanged;
        the same requests to /auth change them (so the test can see a change)."""
        runtime = rig.runtime
        record, secret = await mint(runtime, "Reader")
        runtime.lookups.known.replace(b"")  # loaded: unknown digests spend the budget
        runtime.lookups.budget = budget = LookupBudget(1, clock=lambda: 0.0)
        unknown = new_secret()
        await send(rig.admin, "GET", "/admin/v1/policy", rig.secret)  # the admin token's lookup
        before = await self.counters(rig)
        for subject in (
            {"token": secret},
            {"token": unknown},
            {"token": "junk"},
            {"token_id": record.id},
        ):
            for _ in range(3):
                reply = await rig.ask({**subject, "method": "GET", "uri": ITEM, "ip": OFFICE_IP})
                assert reply.status == 200
        assert await self.counters(rig) == before
        assert runtime.cache.get(runtime.service.digest(secret)) is None
        await runtime.usage.flush()
        assert (await runtime.service.get(record.id)).last_used_at is None
        assert budget.take() is True  # the one lookup of the second is still there
        budget.refund()
        # the same through /auth: counted, cached, used, budget spent
        assert await rig.auth_answer(secret, "GET", ITEM, OFFICE_IP) == (200, "ok")
        assert await rig.auth_answer(unknown, "GET", ITEM, OFFICE_IP) == (401, "invalid_token")
        assert await self.counters(rig) != before
        assert runtime.cache.get(runtime.service.digest(secret)) is not None
        assert budget.take() is False
        await runtime.usage.flush()
        assert (await runtime.service.get(record.id)).last_used_at is not None


class TestDocumented:
    """The OpenAPI document describes the bodies the handlers accept and the answer."""

    def test_request_fields(self) -> None:
        """ExplainRequest and the introspect form list exactly the accepted keys."""
        explain_schema = DOCUMENT["components"]["schemas"]["ExplainRequest"]
        assert set(explain_schema["properties"]) == EXPLAIN_FIELDS
        assert explain_schema["additionalProperties"] is False
        form = DOCUMENT["paths"]["/admin/v1/introspect"]["post"]["requestBody"]["content"]
        schema = form["application/x-www-form-urlencoded"]["schema"]
        assert set(schema["properties"]) == INTROSPECT_FIELDS

    async def test_answer_fits_the_schema(self, rig: Rig) -> None:
        """A real explanation has exactly the documented keys, checks and enums."""
        record, _ = await mint(rig.runtime, "Reader", ip_filter="office")
        reply = await rig.ask({"token_id": record.id, "method": "GET", "uri": ITEM})
        schema = DOCUMENT["components"]["schemas"]["Explanation"]
        assert set(reply.body) == set(schema["required"]) == set(schema["properties"])
        assert reply.body["reason"] in schema["properties"]["reason"]["enum"]
        assert reply.body["status"] in schema["properties"]["status"]["enum"]
        item = schema["properties"]["checks"]["items"]["properties"]
        assert {c["check"] for c in reply.body["checks"]} <= set(item["check"]["enum"])
