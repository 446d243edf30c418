"""The token page offers only what the signed-in token can grant (SPEC §10): its own
permissions, an expiry no later than its own, its own IP filter where that rule applies;
and it does not offer changes or a new secret for tokens beyond it. The server stays the
authority: what the page lets through, the server still judges."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import PageServer, ServeFactory
from tests.browser.test_token_page import (
    copy_secret,
    create_requests,
    field_error,
    open_create,
    permission,
    row,
    sign_in,
)
from tests.webapp import MANAGE, VIEW

with contextlib.suppress(ImportError):  # the `browser` fixture reports a missing Playwright
    from playwright.sync_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e


def offered(page: Page) -> list[str]:
    """The permission names the create dialog offers, in order."""
    names = page.locator("#new-permissions input[type=checkbox]").evaluate_all(
        "(boxes) => boxes.map((box) => box.value)"
    )
    assert isinstance(names, list)
    return [str(name) for name in names]


class TestCreateForm:
    """The create dialog narrows its choices to the signed-in token's reach."""

    @pytest.mark.parametrize(
        ("held", "expected"),
        [
            pytest.param((MANAGE, "Reader"), [MANAGE, "Reader", VIEW], id="manage-and-reader"),
            pytest.param((MANAGE,), [MANAGE, VIEW], id="manage-includes-view"),
            pytest.param(
                (MANAGE, "Reader", "Writer"), [MANAGE, "Reader", VIEW, "Writer"], id="everything"
            ),
        ],
    )
    def test_only_held_permissions_are_offered(
        self, page: Page, server: PageServer, held: tuple[str, ...], expected: list[str]
    ) -> None:
        """The dialog lists only the permissions the signed-in token holds (Manage
        including View), and says why when some of the catalog is left out."""
        _, secret = server.mint(*held, name="signed in")
        sign_in(page, server, secret)
        dialog = open_create(page)
        assert offered(page) == expected
        hint = page.locator("#new-permissions-hint")
        if len(expected) < 4:
            expect(hint).to_have_text("Only the permissions your token holds can be granted.")
        else:
            expect(hint).to_have_text("")
        expect(permission(dialog, expected[0])).to_be_enabled()

    def test_an_expiring_token_offers_no_later_expiry(self, page: Page, server: PageServer) -> None:
        """Own expiry in 3 days: no 'Never expires', a default within 3 days, a hint; what
        the page lets through beyond it, the server refuses at the expiry field."""
        _, secret = server.mint(MANAGE, "Reader", name="signed in", expires_in="3d")
        sent = create_requests(page)
        sign_in(page, server, secret)
        dialog = open_create(page)
        expect(dialog.get_by_label("Never expires")).to_be_hidden()
        expect(dialog.get_by_label("Expires after")).to_have_value("3")
        expect(dialog.get_by_label("Unit")).to_have_value("d")
        expect(dialog).to_contain_text(
            "Your token expires on Jun 18, 2025, 3:06 PM: the new token must expire by then."
        )
        dialog.get_by_label("Name", exact=True).fill("later")
        permission(dialog, "Reader").check()
        dialog.get_by_label("Expires after").fill("4")
        dialog.get_by_role("button", name="Create").click()
        expect(field_error(page, "new-expiry")).to_contain_text("after the calling token's own")
        assert sent == [{"expires_in": "4d", "ip_filter": None}], "the server judged it"
        assert server.token_count() == 1

        dialog.get_by_label("Expires after").fill("3")
        dialog.get_by_role("button", name="Create").click()
        assert server.auth_status(copy_secret(page)) == 200

    def test_a_filtered_token_passes_its_filter_on(self, page: Page, server: PageServer) -> None:
        """Own filter and none enforced: the filter is shown fixed, read-only, and the new
        token gets it."""
        _, secret = server.mint(MANAGE, "Reader", name="signed in", ip_filter="localhost")
        sign_in(page, server, secret)
        dialog = open_create(page)
        expect(dialog.get_by_role("combobox", name="IP filter")).to_be_hidden()
        fixed = dialog.get_by_label("IP filter (your token's own: tokens it creates get it)")
        expect(fixed).to_have_value("localhost")
        expect(fixed).to_have_attribute("readonly", "")
        dialog.get_by_label("Name", exact=True).fill("fenced")
        permission(dialog, "Reader").check()
        dialog.get_by_label("Never expires").check()
        dialog.get_by_role("button", name="Create").click()
        assert server.auth_status(copy_secret(page)) == 200
        page.locator("#secret-dialog").get_by_role("button", name="OK", exact=True).click()
        expect(row(page, "fenced")).to_contain_text("localhost")

    def test_an_enforced_filter_wins_over_the_tokens_own(
        self, page: Page, serve: ServeFactory
    ) -> None:
        """With a filter enforced by the policy, that one is shown, not the token's own."""
        server = serve()
        _, secret = server.mint(MANAGE, "Reader", name="signed in", ip_filter="office")
        server.use_config(security_policy={"enforce_ip_filter": "localhost"})
        sign_in(page, server, secret)
        dialog = open_create(page)
        enforced = dialog.get_by_label("IP filter (enforced by the security policy)")
        expect(enforced).to_have_value("localhost")

    def test_a_view_token_is_offered_no_changes(self, page: Page, server: PageServer) -> None:
        """A ViewOrganizationTokens token sees the list, but no 'Add new', no Save, no
        reset and no delete."""
        _, secret = server.mint(VIEW, name="auditor")
        server.mint("Reader", name="some token")
        sign_in(page, server, secret)
        expect(page.get_by_role("button", name="Add new")).to_be_hidden()
        page.get_by_role("button", name="some token", exact=True).click()
        details = page.get_by_role("dialog", name="some token")
        expect(details.get_by_role("button", name="Save permissions")).to_be_hidden()
        expect(details.get_by_role("button", name="Reset secret")).to_be_disabled()
        expect(details.get_by_role("button", name="Delete token")).to_be_hidden()


class TestDetails:
    """A token beyond the signed-in token is shown, but not changed or rotated by it."""

    def test_a_token_beyond_cannot_be_changed_or_reset_but_can_be_deleted(
        self, page: Page, server: PageServer
    ) -> None:
        """A Writer token seen by a Manage + Reader token: its boxes are disabled, no Save,
        'Reset secret' disabled with the reason; 'Delete token' still works."""
        _, secret = server.mint(MANAGE, "Reader", name="signed in")
        _, target_secret = server.mint("Writer", name="stronger")
        sign_in(page, server, secret)
        page.get_by_role("button", name="stronger", exact=True).click()
        details = page.get_by_role("dialog", name="stronger")
        expect(permission(details, "Writer")).to_be_checked()
        expect(permission(details, "Writer")).to_be_disabled()
        expect(permission(details, "Reader")).to_be_disabled()
        expect(details.get_by_role("button", name="Save permissions")).to_be_hidden()
        expect(details).to_contain_text("it holds Writer, which yours does not")
        expect(details.get_by_role("button", name="Reset secret")).to_be_disabled()
        expect(page.locator("#reset-secret-hint")).to_contain_text("Writer")

        details.get_by_role("button", name="Delete token").click()
        page.get_by_role("alertdialog").get_by_role("button", name="Delete token").click()
        expect(row(page, "stronger")).to_have_count(0)
        assert server.auth_status(target_secret) == 401

    def test_a_token_within_offers_only_held_permissions(
        self, page: Page, server: PageServer
    ) -> None:
        """A Reader token seen by a Manage + Reader token: Reader and the admin ones can be
        ticked, Writer cannot; saving within bounds works."""
        _, secret = server.mint(MANAGE, "Reader", name="signed in")
        server.mint("Reader", name="within")
        sign_in(page, server, secret)
        page.get_by_role("button", name="within", exact=True).click()
        details = page.get_by_role("dialog", name="within")
        expect(permission(details, "Writer")).to_be_disabled()
        expect(permission(details, VIEW)).to_be_enabled()
        expect(details.get_by_role("button", name="Reset secret")).to_be_enabled()
        permission(details, VIEW).check()
        details.get_by_role("button", name="Save permissions").click()
        expect(row(page, "within")).to_contain_text(VIEW)

    def test_a_token_that_outlives_the_signed_in_one_cannot_be_reset(
        self, page: Page, server: PageServer
    ) -> None:
        """Own expiry in 1 day, the target never expires: 'Reset secret' is disabled."""
        _, secret = server.mint(MANAGE, "Reader", name="signed in", expires_in="1d")
        server.mint("Reader", name="forever")
        sign_in(page, server, secret)
        page.get_by_role("button", name="forever", exact=True).click()
        details = page.get_by_role("dialog", name="forever")
        expect(details.get_by_role("button", name="Reset secret")).to_be_disabled()
        expect(page.locator("#reset-secret-hint")).to_contain_text("would outlive yours")
