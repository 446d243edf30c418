"""The token page and SPEC §12 in a real headless browser: a token's requests over the last
7 days as a chart in its details (drawn by the page itself, described in words), and its
rate limit: set when creating, refused next to the field, shown, and changed.

As in test_token_page.py, each test drives the page by its labels and roles and checks the
effect where it matters: the stored record, what the chart says about real requests.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from authsvc.store import HOUR, HourlyCount
from authsvc.web.page import CONTENT_SECURITY_POLICY
from tests.browser.conftest import VIEWPORT, PageProblems, PageServer, ServeFactory
from tests.browser.test_token_page import (
    GRANTING,
    SCREENSHOTS,
    WRITE_ITEMS,
    field_error,
    open_create,
    permission,
    row,
    secret_dialog,
    sign_in,
)
from tests.webapp import NOW

with contextlib.suppress(ImportError):  # the `browser` fixture reports a missing Playwright
    from playwright.sync_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Request

pytestmark = pytest.mark.e2e

DAY = 86400
THIS_HOUR = int(NOW // HOUR) * HOUR


def utc_hour(month: int, day: int, hour: int) -> int:
    """The epoch seconds of an hour of 2025 (UTC), as the store keys counts."""
    return int(datetime(2025, month, day, hour, tzinfo=UTC).timestamp())


@pytest.fixture
def admin_secret(server: PageServer) -> str:
    """A ManageOrganizationTokens token, holding every catalog permission, to sign in with."""
    return server.mint(*GRANTING, name="admin console")[1]


@pytest.fixture
def kolkata_page(browser: Browser, problems: PageProblems) -> Iterator[Page]:
    """Like the ``page`` fixture (same fixed time, no script error allowed), in
    Asia/Kolkata: +05:30 all year, so every UTC hour of the API crosses a local half hour
    and one hour in each day crosses local midnight."""
    context = browser.new_context(
        viewport=VIEWPORT, locale="en-US", timezone_id="Asia/Kolkata", color_scheme="light"
    )
    opened = context.new_page()
    opened.clock.set_fixed_time(NOW)
    opened.on("pageerror", lambda error: problems.messages.append(f"page error: {error}"))
    yield opened
    context.close()
    assert problems.messages == [], "the page reported problems"


def open_details(page: Page, name: str) -> Locator:
    page.get_by_role("button", name=name, exact=True).click()
    details = page.get_by_role("dialog", name=name)
    expect(details).to_be_visible()
    return details


def stored_rate_limit(server: PageServer, name: str) -> str | None:
    """The rate limit the store holds for the token called ``name``."""
    for record in server.call(server.rt.store.all_tokens()):
        if record.name == name:
            return record.rate_limit
    raise AssertionError(f"no token named {name!r}")


class TestUsageChart:
    def test_the_chart_script_is_served_like_the_others(self, server: PageServer) -> None:
        """usage.js, imported by app.js, is one of the shipped assets, with the strict CSP."""
        status, headers, body = server.get("/static/usage.js")
        assert status == 200
        assert headers["Content-Type"].startswith("text/javascript")
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert b"export function renderUsage" in body
        assert b'from "./usage.js"' in server.get("/static/app.js")[2]

    def test_the_chart_shows_the_requests_just_made(self, page: Page, server: PageServer) -> None:
        """Requests made on /auth (3 allowed, 1 denied by permission) appear in today's
        bar and in the words beside the chart once the recorder has flushed; requests of
        3 days ago are that day's bar."""
        _, admin = server.mint(*GRANTING, name="admin console")
        used, secret = server.mint("Reader", name="busy")
        for _ in range(3):
            assert server.auth_status(secret) == 200
        assert server.auth_status(secret, WRITE_ITEMS) == 403
        server.call(
            server.rt.store.add_usage(
                [
                    HourlyCount(used.id, THIS_HOUR - 3 * DAY, "allowed", 40),
                    HourlyCount(used.id, THIS_HOUR - 3 * DAY, "rate_limited", 2),
                ]
            )
        )
        server.flush_usage()
        sign_in(page, server, admin)
        details = open_details(page, "busy")

        chart = details.get_by_role("img", name="Requests per day, last 7 days")
        expect(chart).to_be_visible()
        summary = details.locator("#usage-summary")
        expect(summary).to_have_text(
            "46 requests in the last 7 days: 43 allowed, 3 denied "
            "(rate limited 2, permission denied 1). Busiest day: Jun 12, 2025, 42 requests."
        )
        days = details.locator("svg g.usage-day")
        expect(days).to_have_count(7)
        today, three_days_ago = days.nth(6), days.nth(3)
        expect(today.locator("title")).to_have_text(
            "Jun 15, 2025: 3 allowed, 1 denied (permission denied 1)"
        )
        expect(today.locator("rect.usage-allowed")).to_have_count(1)
        expect(today.locator("rect.usage-denied")).to_have_count(1)
        expect(today.locator("text.usage-count")).to_have_text("4")
        expect(three_days_ago.locator("text.usage-count")).to_have_text("42")
        expect(days.nth(5).locator("rect")).to_have_count(0)  # no requests: no bar
        # taller bar for the busier day: the chart is drawn to scale
        busy = float(three_days_ago.locator("rect.usage-allowed").get_attribute("height") or 0)
        quiet = float(today.locator("rect.usage-allowed").get_attribute("height") or 0)
        assert busy > 10 * quiet > 0

        details.get_by_role("button", name="Close").click()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        details = open_details(page, "busy")
        expect(chart).to_be_visible()
        page.mouse.move(0, 0)
        details.locator("#usage").screenshot(path=SCREENSHOTS / "token-usage.png")
        assert (SCREENSHOTS / "token-usage.png").stat().st_size > 5_000

    def test_hours_across_local_midnight_in_a_half_hour_zone(
        self, kolkata_page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """In Asia/Kolkata (NOW is Jun 15, 20:36 local) the chart's first day starts at
        Jun 8, 18:30 UTC: the page asks from 18:00 UTC, the hour that holds that midnight,
        and counts it on Jun 9 (its midpoint's day) rather than dropping it; an hour that
        crosses a later midnight is counted once, on the day after. The chart's total is
        every count stored in those hours; the hour before the first is the day before."""
        used, _ = server.mint("Reader", name="night owl")
        server.call(
            server.rt.store.add_usage(
                [
                    HourlyCount(used.id, utc_hour(6, 8, 17), "allowed", 100),  # 22:30-23:30 Jun 8
                    HourlyCount(used.id, utc_hour(6, 8, 18), "allowed", 5),  # 23:30 Jun 8-00:30
                    HourlyCount(used.id, utc_hour(6, 8, 18), "rate_limited", 2),
                    HourlyCount(used.id, utc_hour(6, 11, 17), "allowed", 3),  # 22:30-23:30 Jun 11
                    HourlyCount(used.id, utc_hour(6, 11, 18), "allowed", 8),  # 23:30 Jun 11-00:30
                ]
            )
        )
        asked: list[Request] = []
        kolkata_page.on(
            "request", lambda request: asked.append(request) if "/usage?" in request.url else None
        )
        sign_in(kolkata_page, server, admin_secret)
        details = open_details(kolkata_page, "night owl")

        expect(details.locator("#usage-summary")).to_have_text(
            "18 requests in the last 7 days: 16 allowed, 2 denied (rate limited 2). "
            "Busiest day: Jun 12, 2025, 8 requests."
        )
        days = details.locator("svg g.usage-day")
        expect(days).to_have_count(7)
        expect(days.nth(0).locator("title")).to_have_text(
            "Jun 9, 2025: 5 allowed, 2 denied (rate limited 2)"
        )
        expect(days.nth(2).locator("title")).to_have_text("Jun 11, 2025: 3 allowed, 0 denied")
        expect(days.nth(3).locator("title")).to_have_text("Jun 12, 2025: 8 allowed, 0 denied")
        counts = [int(text) for text in details.locator("svg text.usage-count").all_text_contents()]
        assert sum(counts) == 5 + 2 + 3 + 8
        query = [parse_qs(urlsplit(request.url).query) for request in asked]
        assert query == [{"from": ["2025-06-08T18:00:00.000Z"], "to": ["2025-06-15T15:06:40.000Z"]}]

    def test_a_token_without_requests_says_so(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        server.mint("Reader", name="idle")
        sign_in(page, server, admin_secret)
        details = open_details(page, "idle")
        expect(details.locator("#usage-summary")).to_have_text("No requests in the last 7 days.")
        expect(details.locator("svg rect")).to_have_count(0)


class TestRateLimit:
    def test_create_with_a_rate_limit(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """The optional field's value is the new token's limit: stored, shown in the list
        and in the details."""
        sign_in(page, server, admin_secret)
        dialog = open_create(page)
        expect(dialog).to_contain_text("Optional: empty means no limit.")
        dialog.get_by_label("Name", exact=True).fill("limited")
        permission(dialog, "Reader").check()
        dialog.get_by_label("Rate limit").fill(" 600/m ")
        dialog.get_by_role("button", name="Create").click()
        secret_dialog(page).get_by_role("button", name="OK", exact=True).click()
        assert stored_rate_limit(server, "limited") == "600/m"
        expect(row(page, "limited")).to_contain_text("rate limit 600/m")
        details = open_details(page, "limited")
        expect(details.locator("#details-facts")).to_contain_text("Rate limit600/m")

    def test_an_empty_field_means_no_limit(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        sign_in(page, server, admin_secret)
        dialog = open_create(page)
        dialog.get_by_label("Name", exact=True).fill("unlimited")
        permission(dialog, "Reader").check()
        dialog.get_by_role("button", name="Create").click()
        secret_dialog(page).get_by_role("button", name="OK", exact=True).click()
        expect(row(page, "unlimited")).to_be_visible()
        assert stored_rate_limit(server, "unlimited") is None

    @pytest.mark.parametrize(
        ("policy", "typed", "code"),
        [
            pytest.param({}, "lots", "invalid_rate_limit", id="invalid"),
            pytest.param({"max_rate_limit": "100/m"}, "", "rate_limit_required", id="required"),
            pytest.param({"max_rate_limit": "100/m"}, "2/s", "rate_limit_too_high", id="too-high"),
        ],
    )
    def test_server_refusals_appear_by_the_field(
        self, page: Page, serve: ServeFactory, policy: dict[str, str], typed: str, code: str
    ) -> None:
        """A 422 about the rate limit is shown next to it (the dialog stays open, nothing
        is created)."""
        server = serve()
        _, admin = server.mint(*GRANTING, name="admin console")
        server.use_config(security_policy=policy)  # after: the admin is made without a limit
        refusals: list[str] = []
        page.on(
            "response",
            lambda response: (
                refusals.append(response.json()["error"]["code"])
                if response.request.method == "POST" and response.status == 422
                else None
            ),
        )
        sign_in(page, server, admin)
        dialog = open_create(page)
        if policy:
            expect(dialog).to_contain_text("Required by the security policy: at most 100/m.")
        dialog.get_by_label("Name", exact=True).fill("refused")
        permission(dialog, "Reader").check()
        dialog.get_by_label("Rate limit").fill(typed)
        dialog.get_by_role("button", name="Create").click()
        error = field_error(page, "new-rate-limit")
        expect(error).to_be_visible()
        expect(error).not_to_be_empty()
        expect(dialog.get_by_label("Rate limit")).to_have_attribute("aria-invalid", "true")
        expect(dialog).to_be_visible()
        assert refusals == [code]
        assert server.token_count() == 1

    def test_change_and_remove_the_limit(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """PATCH from the details: a new limit takes effect, a bad one is refused by the
        field, an empty one removes the limit."""
        server.mint("Reader", name="tuned")
        sign_in(page, server, admin_secret)
        details = open_details(page, "tuned")
        facts = details.locator("#details-facts")
        expect(facts).to_contain_text("Rate limitNone")
        field = details.get_by_label("Rate limit")
        save = details.get_by_role("button", name="Save rate limit")

        field.fill("120/m")
        save.click()
        expect(facts).to_contain_text("Rate limit120/m")
        assert stored_rate_limit(server, "tuned") == "120/m"
        expect(page.locator("#notice")).to_have_text("Set the rate limit of “tuned” to 120/m.")

        field.fill("0/m")
        save.click()
        expect(field_error(page, "details-rate-limit")).to_be_visible()
        expect(field).to_have_attribute("aria-invalid", "true")
        assert stored_rate_limit(server, "tuned") == "120/m"

        field.fill("")
        save.click()
        expect(facts).to_contain_text("Rate limitNone")
        expect(page.locator("#notice")).to_have_text(re.compile("Removed the rate limit"))
        assert stored_rate_limit(server, "tuned") is None
