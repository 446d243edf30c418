"""The token page and a token's lifecycle (SPEC §11) in a real headless browser: a reset
that keeps the old secret for a grace period, the mark on tokens that expire within 7 days
(and the list's filter for them), and the "Test access" form that asks POST /admin/v1/explain.

As in test_token_page.py, each test drives the page by its labels and roles and checks the
effect where it matters: what the page sent, what GET /auth then answers.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import PageServer
from tests.browser.test_token_page import GRANTING, copy_secret, field_error, row, sign_in

with contextlib.suppress(ImportError):  # the `browser` fixture reports a missing Playwright
    from playwright.sync_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Request, Route

pytestmark = pytest.mark.e2e

EXPIRING = "Expires within 7 days"
#: A request the test catalog's Reader permission grants.
READ_METHOD, READ_URI = "GET", "/api/v1/items/42"


@pytest.fixture
def admin_secret(server: PageServer) -> str:
    """A ManageOrganizationTokens token, holding every catalog permission, to sign in with."""
    return server.mint(*GRANTING, name="admin console")[1]


def sent_bodies(page: Page, path_end: str) -> list[Any]:
    """The JSON body (None when there is none) of every POST to a URL ending in
    ``path_end`` that ``page`` sends from now on."""
    sent: list[Any] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith(path_end):
            sent.append(request.post_data_json)

    page.on("request", on_request)
    return sent


def answer_with(page: Page, path: str, status: int, error: dict[str, Any]) -> None:
    """Make the server's answer to every POST to ``path`` (a regex) ``status`` with ``error``."""

    def fulfill(route: Route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        route.fulfill(status=status, json={"error": error}, headers={"Cache-Control": "no-store"})

    page.route(re.compile(path), fulfill)


def open_details(page: Page, name: str) -> Locator:
    page.get_by_role("button", name=name, exact=True).click()
    details = page.get_by_role("dialog", name=name)
    expect(details).to_be_visible()
    return details


def open_reset(page: Page, details: Locator, name: str) -> Locator:
    """Click 'Reset secret' in the details and return the dialog that asks first."""
    details.get_by_role("button", name="Reset secret").click()
    dialog = page.get_by_role("alertdialog", name=f"Reset the secret of “{name}”?")
    expect(dialog).to_be_visible()
    return dialog


def close_secret(page: Page) -> None:
    page.locator("#secret-dialog").get_by_role("button", name="OK", exact=True).click()
    expect(page.locator("#secret-dialog")).to_be_hidden()


class TestResetWithGrace:
    """Resetting a secret offers to keep the old one working for a while."""

    def test_a_grace_keeps_the_old_secret_until_the_new_one_is_used(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """'For 1 day' sends grace 1d; the page says until when the old secret works (secret
        dialog, details, list row); both secrets work until the new one is first used."""
        _, old = server.mint("Reader", name="rolling")
        sent = sent_bodies(page, "/rotate")
        sign_in(page, server, admin_secret)
        details = open_details(page, "rolling")
        expect(details).not_to_contain_text("Previous secret")
        dialog = open_reset(page, details, "rolling")
        expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
        expect(dialog.get_by_label("Keep the old secret working")).to_have_value("")
        dialog.get_by_label("Keep the old secret working").select_option(label="For 1 day")
        expect(dialog).to_contain_text("The current secret keeps working for 1 day, or until")
        dialog.get_by_role("button", name="Reset secret").click()

        new = copy_secret(page)
        assert sent == [{"grace": "1d"}]
        expect(page.locator("#secret-grace")).to_have_text(
            "The previous secret keeps working until Jun 16, 2025, 3:06 PM (in 24 hours), "
            "or until this one is first used."
        )
        close_secret(page)
        expect(details).to_contain_text(
            "works until Jun 16, 2025, 3:06 PM (in 24 hours), or until the new secret is first used"
        )
        expect(row(page, "rolling").locator("td").nth(4)).to_contain_text(
            "previous secret works until Jun 16, 2025, 3:06 PM"
        )

        assert server.auth_status(old) == 200, "the old secret stopped within its grace"
        assert server.auth_status(new) == 200
        assert server.auth_status(old) == 401, "the new secret's first use ended the grace"
        page.get_by_role("button", name="Close").click()
        page.get_by_role("button", name="Refresh").click()
        expect(row(page, "rolling")).not_to_contain_text("previous secret")

    def test_no_grace_sends_no_body_and_stops_the_old_secret(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """The default ('No') is the reset of old: no body, the old secret stops at once,
        nothing is said about a previous secret."""
        _, old = server.mint("Reader", name="plain")
        sent = sent_bodies(page, "/rotate")
        sign_in(page, server, admin_secret)
        details = open_details(page, "plain")
        dialog = open_reset(page, details, "plain")
        expect(dialog).to_contain_text("The current secret stops working at once")
        dialog.get_by_role("button", name="Reset secret").click()
        new = copy_secret(page)
        expect(page.locator("#secret-grace")).to_be_hidden()
        assert sent == [None]
        assert server.auth_status(old) == 401
        assert server.auth_status(new) == 200
        close_secret(page)
        expect(details).not_to_contain_text("Previous secret")

    def test_another_grace_is_checked_like_the_api(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """'Another time' takes a duration in m, h or d of at most 7 days; anything else is
        explained at the field and not sent; a valid one is sent as typed."""
        _, old = server.mint("Reader", name="custom")
        sent = sent_bodies(page, "/rotate")
        sign_in(page, server, admin_secret)
        details = open_details(page, "custom")
        dialog = open_reset(page, details, "custom")
        expect(dialog.get_by_label("Grace period")).to_be_hidden()
        dialog.get_by_label("Keep the old secret working").select_option(label="For another time…")
        duration = dialog.get_by_label("Grace period")
        for typed, message in [
            ("", "Enter a grace period, for example 90m, 12h or 3d."),
            ("8d", "8d is longer than the 7 days an old secret may be kept."),
            ("169h", "169h is longer than the 7 days an old secret may be kept."),
            ("07d", "“07d” is not a duration"),
            ("30s", "“30s” is not a duration"),
            ("1.5h", "“1.5h” is not a duration"),
        ]:
            duration.fill(typed)
            dialog.get_by_role("button", name="Reset secret").click()
            expect(field_error(page, "rotate-grace")).to_contain_text(message)
            expect(duration).to_have_attribute("aria-invalid", "true")
            expect(duration).to_be_focused()
        assert sent == [], "the page sent a grace it had refused"
        assert server.auth_status(old) == 200

        duration.fill("90m")
        expect(dialog).to_contain_text("keeps working for 90 minutes")
        dialog.get_by_role("button", name="Reset secret").click()
        copy_secret(page)
        assert sent == [{"grace": "90m"}]
        expect(page.locator("#secret-grace")).to_contain_text("until Jun 15, 2025, 4:36 PM")
        assert server.auth_status(old) == 200

    @pytest.mark.parametrize(
        ("error", "shown_at"),
        [
            pytest.param(
                {"code": "grace_too_long", "message": "Too long for the server.", "field": "grace"},
                "rotate-grace-error",
                id="by-its-field",
            ),
            pytest.param(
                {"code": "exceeds_caller", "message": "Beyond your token."},
                "rotate-error",
                id="no-field-top-of-dialog",
            ),
        ],
    )
    def test_a_refused_reset_is_shown_where_its_field_says(
        self,
        page: Page,
        server: PageServer,
        admin_secret: str,
        error: dict[str, str],
        shown_at: str,
    ) -> None:
        """A refusal with ``field: grace`` is shown at the grace, any other at the top of the
        dialog; the dialog stays open and no secret is shown."""
        server.mint("Reader", name="refused")
        sign_in(page, server, admin_secret)
        answer_with(page, r"/rotate$", 422 if "field" in error else 403, error)
        details = open_details(page, "refused")
        dialog = open_reset(page, details, "refused")
        dialog.get_by_label("Keep the old secret working").select_option(label="For 7 days")
        dialog.get_by_role("button", name="Reset secret").click()
        expect(page.locator(f"#{shown_at}")).to_contain_text(error["message"])
        for other in ("rotate-grace-error", "rotate-error"):
            if other != shown_at:
                expect(page.locator(f"#{other}")).to_be_hidden()
        expect(dialog).to_be_visible()
        expect(page.locator("#secret-dialog")).to_be_hidden()


class TestExpiringSoon:
    """Tokens whose effective expiry is within 7 days are marked in words, and listed alone
    by the 'Expiring within 7 days' choice."""

    def test_only_tokens_expiring_within_7_days_are_marked(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Marked: 2 days, exactly 7 days. Not marked: 7 days and a minute, 30 days, never,
        already expired."""
        server.clock.advance(-3 * 86400)
        server.mint("Reader", name="gone", expires_in="1d")
        server.clock.advance(3 * 86400)
        for name, expires_in in [
            ("soon", "2d"),
            ("a week", "7d"),
            ("a week and a minute", "10081m"),
            ("later", "30d"),
            ("forever", None),
        ]:
            server.mint("Reader", name=name, expires_in=expires_in)
        sign_in(page, server, admin_secret)
        for name in ("soon", "a week"):
            expect(row(page, name).locator("td").nth(3)).to_contain_text(EXPIRING)
        for name in ("a week and a minute", "later", "forever", "gone", "admin console"):
            expect(row(page, name)).not_to_contain_text(EXPIRING)
        details = open_details(page, "soon")
        expect(details).to_contain_text(EXPIRING)
        details.get_by_role("button", name="Close").click()
        details = open_details(page, "later")
        expect(details).not_to_contain_text(EXPIRING)

    def test_the_policy_maximum_lifetime_counts(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """The mark follows the effective expiry: a 30-day token under a 5-day maximum
        lifetime expires within 7 days."""
        server.mint("Reader", name="capped", expires_in="30d")
        server.use_config(security_policy={"max_lifetime": "5d"})
        _, admin = server.mint(*GRANTING, name="admin, capped", expires_in="5d")
        sign_in(page, server, admin)
        expect(row(page, "capped").locator("td").nth(3)).to_contain_text(EXPIRING)

    def test_the_mark_needs_an_active_token_and_an_expiry_still_ahead(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Judged as expires_within judges it: a token the server calls blocked, or whose
        expiry the page's clock has already passed, is not 'expiring' (answers rewritten,
        since a live server lists neither while the page is signed in)."""
        for name in ("blocked", "passed", "control"):
            server.mint("Reader", name=name, expires_in="30d")
        rewritten = {
            "blocked": {"status": "blocked", "effective_expires_at": "2025-06-17T15:06:40Z"},
            "passed": {"status": "active", "effective_expires_at": "2025-06-15T14:06:40Z"},
            "control": {"status": "active", "effective_expires_at": "2025-06-17T15:06:40Z"},
        }

        def rewrite(route: Route) -> None:
            response = route.fetch()
            answer = response.json()
            for token in answer["tokens"]:
                token.update(rewritten.get(token["name"], {}))
            route.fulfill(response=response, json=answer)

        page.route(re.compile(r"/admin/v1/tokens\?"), rewrite)
        sign_in(page, server, admin_secret)
        expect(row(page, "control")).to_contain_text(EXPIRING)
        expect(row(page, "blocked")).not_to_contain_text(EXPIRING)
        expect(row(page, "passed")).not_to_contain_text(EXPIRING)

    def test_the_show_filter_asks_the_api(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """'Expiring within 7 days' sends expires_within=7d and lists only those tokens;
        'Expired' sends status=expired; 'All tokens' sends neither."""
        server.clock.advance(-3 * 86400)
        server.mint("Reader", name="gone", expires_in="1d")
        server.clock.advance(3 * 86400)
        server.mint("Reader", name="soon", expires_in="2d")
        server.mint("Reader", name="later", expires_in="30d")
        queries: list[str] = []

        def on_request(request: Request) -> None:
            if "/admin/v1/tokens?" in request.url:
                queries.append(request.url.split("?", 1)[1])

        page.on("request", on_request)
        sign_in(page, server, admin_secret)
        expect(page.locator("#page-info")).to_have_text("1–4 of 4 tokens")

        show = page.get_by_label("Show")
        show.select_option(label="Expiring within 7 days")
        expect(page.locator("#page-info")).to_have_text("1–1 of 1 token")
        expect(row(page, "soon")).to_contain_text(EXPIRING)
        assert "expires_within=7d" in queries[-1]
        assert "status=" not in queries[-1]

        show.select_option(label="Expired")
        expect(page.locator("#page-info")).to_have_text("1–1 of 1 token")
        expect(row(page, "gone")).to_be_visible()
        assert "status=expired" in queries[-1]

        page.get_by_label("Filter by name").fill("nothing like this")
        expect(page.locator("#empty")).to_have_text(
            "No expired token with “nothing like this” in its name."
        )
        page.get_by_label("Filter by name").fill("")
        show.select_option(label="All tokens")
        expect(page.locator("#page-info")).to_have_text("1–4 of 4 tokens")
        assert "status=" not in queries[-1]
        assert "expires_within=" not in queries[-1]


def open_test_access(details: Locator) -> Locator:
    """Open the 'Test access' part of the details and return it."""
    section = details.locator("details.explain")
    section.locator("summary", has_text="Test access").click()
    expect(section.get_by_label("Request target (URI)")).to_be_visible()
    return section


def run_test(section: Locator, uri: str, ip: str, method: str = READ_METHOD) -> None:
    section.get_by_label("Method").fill(method)
    section.get_by_label("Request target (URI)").fill(uri)
    section.get_by_label("Client IP (optional)").fill(ip)
    section.get_by_role("button", name="Test", exact=True).click()


def check_line(section: Locator, label: str) -> Locator:
    """The line of the explanation for the check shown as ``label``."""
    return section.locator(".explain-checks li").filter(
        has=section.page.locator(".check-name", has_text=re.compile(f"^{re.escape(label)}$"))
    )


class TestTestAccess:
    """'Test access' on a token: what GET /auth would answer for a request, and why."""

    def test_an_allow_and_an_ip_denial_with_the_deciding_rule(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """From the office network: allowed, by the endpoint and the rule that granted it.
        From elsewhere: refused as ip_not_allowed, the IP filter check failed, and the rule
        that decided shown; the permission check still shown as passed."""
        server.mint("Reader", name="fenced", ip_filter="office")
        sent = sent_bodies(page, "/admin/v1/explain")
        sign_in(page, server, admin_secret)
        section = open_test_access(open_details(page, "fenced"))
        expect(section.get_by_label("Method")).to_have_value("GET")

        run_test(section, READ_URI, "10.1.2.3")
        result = section.get_by_role("status")
        expect(result).to_contain_text("Allowed: 200 ok")
        expect(check_line(section, "IP filter")).to_contain_text("passed")
        expect(check_line(section, "Permission")).to_contain_text("passed")
        expect(result).to_contain_text("Matched endpointReader: GET /api/v1/items/{id}")
        expect(result).to_contain_text("Deciding IP ruleallow 10.0.0.0/8")
        token_id = page.locator("#details-facts code").inner_text()
        assert sent == [{"token_id": token_id, "method": "GET", "uri": READ_URI, "ip": "10.1.2.3"}]

        run_test(section, READ_URI, "192.0.2.7")
        expect(result).to_contain_text("Refused: 403 ip_not_allowed")
        expect(check_line(section, "IP filter")).to_contain_text("failed")
        expect(check_line(section, "Permission")).to_contain_text("passed")
        expect(result).to_contain_text("Deciding IP ruledeny all")

        run_test(section, READ_URI, "")
        expect(result).to_contain_text("Refused: 403 ip_not_allowed")
        expect(result).to_contain_text("Deciding IP ruledefault deny")
        assert sent[-1]["ip"] is None

    def test_a_refused_permission_and_no_filter(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """A request no permission grants: refused, no matched endpoint, no filter applies."""
        server.mint("Reader", name="reader")
        sign_in(page, server, admin_secret)
        section = open_test_access(open_details(page, "reader"))
        run_test(section, "/api/v1/items", "", method="POST")
        result = section.get_by_role("status")
        expect(result).to_contain_text("Refused: 403")
        expect(check_line(section, "Permission")).to_contain_text("failed")
        expect(result).to_contain_text("None: no permission of this token grants the request")
        expect(result).to_contain_text("None: no IP filter applies to this token")

    def test_errors_are_shown_by_their_field(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Empty method or target: said at the field, nothing sent. An address the server
        refuses (invalid_ip, field ip): at the IP field. An error without a field the form
        has: at the top of the form."""
        server.mint("Reader", name="asked")
        sent = sent_bodies(page, "/admin/v1/explain")
        sign_in(page, server, admin_secret)
        section = open_test_access(open_details(page, "asked"))
        run_test(section, "", "", method="")
        expect(field_error(page, "explain-method")).to_contain_text("Enter the request's method")
        expect(field_error(page, "explain-uri")).to_contain_text("Enter the request target")
        expect(section.get_by_label("Method")).to_be_focused()
        assert sent == []

        run_test(section, READ_URI, "10.1.2.300")
        expect(field_error(page, "explain-ip")).to_contain_text("is not an IPv4 or IPv6 address")
        expect(section.get_by_label("Client IP (optional)")).to_have_attribute(
            "aria-invalid", "true"
        )
        expect(field_error(page, "explain-method")).to_be_hidden()
        expect(field_error(page, "explain-uri")).to_be_hidden()
        expect(section.get_by_role("status")).to_be_hidden()

        answer_with(
            page,
            r"/admin/v1/explain$",
            422,
            {
                "code": "invalid_field",
                "message": "'token_id' must be a string.",
                "field": "token_id",
            },
        )
        run_test(section, READ_URI, "10.1.2.3")
        expect(page.locator("#explain-error")).to_have_text("'token_id' must be a string. (422)")
        expect(field_error(page, "explain-ip")).to_be_hidden()

    def test_another_token_starts_without_the_last_result(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """A result belongs to the token it was asked for: opening another token shows none."""
        server.mint("Reader", name="first")
        server.mint("Writer", name="second")
        sign_in(page, server, admin_secret)
        details = open_details(page, "first")
        section = open_test_access(details)
        run_test(section, READ_URI, "")
        expect(section.get_by_role("status")).to_contain_text("Allowed: 200 ok")
        details.get_by_role("button", name="Close").click()
        details = open_details(page, "second")
        expect(details.locator("#explain-result")).to_be_hidden()
        run_test(details.locator("details.explain"), READ_URI, "")
        expect(details.get_by_role("status")).to_contain_text("Refused: 403")
