"""The token page in a real headless browser: sign in, list, create, copy, rotate, delete.

Each test drives the page the way an operator does (labels, roles, buttons) against a
real admin listener, and checks the effect where it matters: the copied secret works on
GET /auth, a reset or deleted one stops working.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

import pytest

from authsvc.rules.tokens import PREFIX
from authsvc.web.page import CONTENT_SECURITY_POLICY
from tests.browser.conftest import PageServer, ServeFactory
from tests.processes import REPO
from tests.webapp import MANAGE, VIEW

with contextlib.suppress(ImportError):  # the `browser` fixture reports a missing Playwright
    from playwright.sync_api import expect

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Request, Route

    from tests.browser.conftest import PageProblems

pytestmark = pytest.mark.e2e

SCREENSHOTS = REPO / "docs" / "screenshots"
SECRET = re.compile(re.escape(PREFIX) + "[0-9A-Za-z]{40,}")
XSS_NAME = "<img src=x onerror=alert(1)>"
WRITE_ITEMS = {"X-Original-Method": "POST", "X-Original-URI": "/api/v1/items"}
#: A catalog like the product's, for screenshots that look like real use.
SHOWCASE_PERMISSIONS = {
    "BlockQueries": {
        "description": "Block a query",
        "endpoints": ["GET /api/v1/queries/blocklist", "POST /api/v1/queries/blocklist"],
    },
    "MonitorQueries": {
        "description": "Monitor running queries",
        "endpoints": ["GET /api/v1/queries/running", "GET /api/v1/queries/running/{id}"],
    },
    "ReadDashboards": {
        "description": "Read dashboards and their panels",
        "endpoints": ["GET /api/v1/dashboards", "GET /api/v1/dashboards/{id...}"],
    },
}


#: What the admin token of these tests holds: Manage and the whole test catalog, so that
#: it may hand on every permission (the server's delegation bounds).
GRANTING = (MANAGE, "Reader", "Writer")


@pytest.fixture
def admin_secret(server: PageServer) -> str:
    """A ManageOrganizationTokens token, holding every catalog permission, to sign in with."""
    return server.mint(*GRANTING, name="admin console")[1]


def sign_in(page: Page, server: PageServer, secret: str) -> None:
    """Open the page, paste ``secret`` and wait for the token list."""
    page.goto(server.admin_url)
    page.get_by_label("Admin token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()


def row(page: Page, name: str) -> Locator:
    """The list row of the token called ``name``."""
    return page.locator("#token-rows tr").filter(
        has=page.get_by_role("button", name=name, exact=True)
    )


def open_create(page: Page) -> Locator:
    """Click 'Add new' and return the create dialog."""
    page.get_by_role("button", name="Add new").click()
    dialog = page.get_by_role("dialog", name="New API token")
    expect(dialog).to_be_visible()
    return dialog


def permission(scope: Locator | Page, name: str) -> Locator:
    """The checkbox of permission ``name`` (its label also holds the description)."""
    return scope.get_by_role("checkbox", name=re.compile(rf"^{re.escape(name)}\b"))


def secret_dialog(page: Page) -> Locator:
    dialog = page.locator("#secret-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("It will not be shown again.")
    return dialog


def copy_secret(page: Page) -> str:
    """Click Copy in the secret dialog and return what reached the clipboard."""
    dialog = secret_dialog(page)
    dialog.get_by_role("button", name="Copy").click()
    expect(dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
    expect(dialog.get_by_role("button", name="Copy")).to_have_attribute("data-copied", "true")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert isinstance(copied, str)
    assert copied == dialog.get_by_label(re.compile("^Token")).input_value()
    return copied


def create_requests(page: Page) -> list[dict[str, Any]]:
    """The expiry and filter of every create request ``page`` sends from now on."""
    sent: list[dict[str, Any]] = []

    def on_request(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/admin/v1/tokens"):
            body = request.post_data_json or {}
            sent.append({key: body.get(key) for key in ("expires_in", "ip_filter")})

    page.on("request", on_request)
    return sent


def answer_create_with(page: Page, error: dict[str, Any]) -> None:
    """Make the server's answer to every create request a 422 with ``error``."""

    def fulfill(route: Route) -> None:
        if route.request.method != "POST":
            route.fallback()
            return
        route.fulfill(status=422, json={"error": error}, headers={"Cache-Control": "no-store"})

    page.route(re.compile(r"/admin/v1/tokens$"), fulfill)


def field_error(page: Page, field_id: str) -> Locator:
    """The error text shown next to the control ``field_id``."""
    return page.locator(f"#{field_id}-error")


def unlabelled_controls(page: Page) -> list[str]:
    """Visible inputs, selects, text areas and buttons without an accessible name."""
    found = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
             .filter((el) => !el.closest('[hidden], dialog:not([open])'))
             .filter((el) => el.tagName === 'BUTTON'
               ? !el.textContent.trim()
               : el.labels.length === 0 && !el.getAttribute('aria-label'))
             .map((el) => el.id || el.outerHTML)"""
    )
    assert isinstance(found, list)
    return [str(item) for item in found]


class TestServing:
    """The page's files and the headers that keep it safe."""

    def test_page_and_assets_carry_the_strict_headers(self, server: PageServer) -> None:
        """/ and /static/* answer with the strict CSP, nosniff, no-referrer; HTML is not cached."""
        status, headers, body = server.get("/")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert headers["Cache-Control"] == "no-store"
        assert b'<script type="module" src="/static/app.js">' in body
        answers = [headers]
        for path, kind in [("/static/app.js", "text/javascript"), ("/static/app.css", "text/css")]:
            asset_status, asset_headers, _ = server.get(path)
            assert asset_status == 200
            assert asset_headers["Content-Type"].startswith(kind)
            answers.append(asset_headers)
        for got in answers:
            assert got["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert got["X-Content-Type-Options"] == "nosniff"
            assert got["Referrer-Policy"] == "no-referrer"
        assert "script-src 'self';" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY

    @pytest.mark.parametrize(
        "path",
        [
            pytest.param("/static/../page.py", id="dot-dot"),
            pytest.param("/static/%2e%2e%2fpage.py", id="encoded-dot-dot"),
            pytest.param("/static/index.html.bak", id="unknown-file"),
            pytest.param("/static/", id="folder"),
        ],
    )
    def test_only_the_shipped_assets_are_served(self, server: PageServer, path: str) -> None:
        """Anything but the listed files is a 404 that shows no file content."""
        status, _, body = server.get(path)
        assert status == 404
        assert b"import" not in body


class TestSignIn:
    """The admin token: pasted, kept for the tab only, refused clearly."""

    def test_sign_in_keeps_the_token_in_the_tab_only(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Signed in: the list shows; the token is in sessionStorage, never in the URL or a
        cookie; a reload stays signed in; sign-out forgets it."""
        sign_in(page, server, admin_secret)
        expect(row(page, "admin console")).to_be_visible()
        assert admin_secret not in page.url
        assert page.context.cookies() == []
        assert page.evaluate("sessionStorage.getItem('authsvc.adminToken')") == admin_secret
        assert page.evaluate("localStorage.length") == 0
        page.reload()
        expect(row(page, "admin console")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("Admin token")).to_be_visible()
        expect(page.locator("#tokens")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0

    @pytest.mark.parametrize(
        ("permission_name", "expected"),
        [
            pytest.param(None, "This admin token was refused (401)", id="unknown-401"),
            pytest.param("Reader", "Not allowed (403)", id="no-admin-permission-403"),
        ],
    )
    def test_a_refused_admin_token_is_explained_by_the_field(
        self, page: Page, server: PageServer, permission_name: str | None, expected: str
    ) -> None:
        """A wrong token (401) or one without admin permissions (403) is named next to the
        field; nothing is listed and nothing is kept."""
        secret = (
            server.mint(permission_name, name="not an admin")[1]
            if permission_name
            else PREFIX + "x" * 49
        )
        page.goto(server.admin_url)
        page.get_by_label("Admin token").fill(secret)
        page.get_by_role("button", name="Sign in").click()
        error = field_error(page, "admin-token")
        expect(error).to_contain_text(expected)
        expect(page.get_by_label("Admin token")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#tokens")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0
        assert secret not in page.url

    def test_an_unavailable_store_is_shown(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """With the store gone, refreshing the list says so (503) instead of showing nothing."""
        sign_in(page, server, admin_secret)
        server.close_store()
        page.get_by_role("button", name="Refresh").click()
        expect(page.get_by_role("alert")).to_contain_text("token store is unavailable (503)")
        expect(row(page, "admin console")).to_have_count(0)  # no stale list passed off as true

    def test_a_token_revoked_while_signed_in_returns_to_sign_in(
        self, page: Page, server: PageServer
    ) -> None:
        """When the admin token stops working (401), the page asks to sign in again."""
        record, secret = server.mint(MANAGE, name="short-lived admin")
        sign_in(page, server, secret)
        server.call(server.rt.service.delete(actor="cli", client=None, token_id=record.id))
        page.get_by_role("button", name="Refresh").click()
        expect(field_error(page, "admin-token")).to_contain_text("Sign in again.")
        assert page.evaluate("sessionStorage.length") == 0


class TestCreate:
    """The create dialog: name, permissions, IP filter, expiry; the secret shown once."""

    def test_create_copy_and_use_the_secret(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """A token made in the dialog: its copied secret is accepted by GET /auth (200) and
        the list shows it with its permissions, filter and expiry."""
        sign_in(page, server, admin_secret)
        dialog = open_create(page)
        expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
        dialog.get_by_label("Name", exact=True).fill("ci deploys")
        permission(dialog, "Reader").check()
        dialog.get_by_label("IP filter", exact=True).select_option("localhost")
        expect(dialog).to_contain_text("Rules: allow 127.0.0.1 · allow ::1 · deny all")
        dialog.get_by_label("Expires after").fill("7")
        dialog.get_by_label("Unit").select_option("d")
        expect(dialog).to_contain_text("It would expire on Jun 22, 2025, 3:06 PM.")
        dialog.get_by_role("button", name="Create").click()

        secret = copy_secret(page)
        assert SECRET.fullmatch(secret)
        assert server.auth_status(secret) == 200
        assert server.auth_status(secret, WRITE_ITEMS) == 403
        page.locator("#secret-dialog").get_by_role("button", name="OK", exact=True).click()
        expect(page.locator("#secret-dialog")).to_be_hidden()
        assert secret not in page.content()

        created = row(page, "ci deploys")
        expect(created).to_contain_text("Reader")
        expect(created).to_contain_text("localhost")
        expect(created).to_contain_text("Jun 22, 2025, 3:06 PM")
        expect(created).to_contain_text("in 7 days")
        expect(created).to_contain_text("active")
        expect(page.get_by_role("status").first).to_contain_text("Created token “ci deploys”.")

    def test_expiry_is_optional_without_a_maximum(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """No max_lifetime: 'Never expires' is offered and makes a token without expiry."""
        sign_in(page, server, admin_secret)
        dialog = open_create(page)
        expect(dialog).to_contain_text("Optional: the security policy sets no maximum lifetime.")
        dialog.get_by_label("Name", exact=True).fill("forever")
        permission(dialog, "Writer").check()
        dialog.get_by_label("Never expires").check()
        expect(dialog.get_by_label("Expires after")).to_be_disabled()
        dialog.get_by_role("button", name="Create").click()
        secret = copy_secret(page)
        assert server.auth_status(secret, WRITE_ITEMS) == 200
        page.locator("#secret-dialog").get_by_role("button", name="OK", exact=True).click()
        expect(row(page, "forever").locator("td").nth(3)).to_have_text("Never")

    def test_the_form_follows_the_policy(self, page: Page, serve: ServeFactory) -> None:
        """With max_lifetime and an enforced filter: expiry is required (a whole number,
        checked before sending) and bounded (by the server, whose refusal is shown at the
        expiry field), there is no 'Never', and the enforced filter is shown read-only."""
        server = serve(security_policy={"max_lifetime": "7d", "enforce_ip_filter": "localhost"})
        _, admin = server.mint(*GRANTING, name="admin console", expires_in="7d")
        sent = create_requests(page)
        sign_in(page, server, admin)
        expect(page.locator("#policy-summary")).to_contain_text(
            "expiry required, at most 7d (7 days)"
        )
        dialog = open_create(page)
        expect(dialog.get_by_label("Never expires")).to_be_hidden()
        expect(dialog.get_by_role("combobox", name="IP filter")).to_be_hidden()
        enforced = dialog.get_by_label("IP filter (enforced by the security policy)")
        expect(enforced).to_have_value("localhost")
        expect(enforced).to_have_attribute("readonly", "")
        expect(dialog).to_contain_text("Required by the security policy: at most 7d (7 days).")
        expect(dialog.get_by_label("Expires after")).to_have_value("7")

        dialog.get_by_label("Name", exact=True).fill("bounded")
        permission(dialog, "Reader").check()
        dialog.get_by_label("Expires after").fill("8")
        dialog.get_by_role("button", name="Create").click()
        expect(field_error(page, "new-expiry")).to_have_text(
            "Expiry 8d exceeds the security policy's maximum lifetime of 7d."
        )
        expect(dialog.get_by_label("Expires after")).to_have_attribute("aria-invalid", "true")
        expect(dialog.get_by_label("Expires after")).to_be_focused()
        assert sent == [{"expires_in": "8d", "ip_filter": None}], "the server did not judge it"
        dialog.get_by_label("Expires after").fill("")
        dialog.get_by_role("button", name="Create").click()
        expect(field_error(page, "new-expiry")).to_contain_text("An expiry is required")
        expect(dialog.get_by_label("Expires after")).to_be_focused()
        assert len(sent) == 1, "the page sent a request it had already refused"
        assert server.token_count() == 1

        dialog.get_by_label("Expires after").fill("36")
        dialog.get_by_label("Unit").select_option("h")
        dialog.get_by_role("button", name="Create").click()
        secret = copy_secret(page)
        assert server.auth_status(secret) == 200
        page.locator("#secret-dialog").get_by_role("button", name="OK", exact=True).click()
        bounded = row(page, "bounded")
        expect(bounded).to_contain_text("localhost")
        expect(bounded).to_contain_text("enforced by policy")
        expect(bounded).to_contain_text("Jun 17, 2025, 3:06 AM")
        expect(bounded).to_contain_text("in 36 hours")

    def test_api_validation_errors_appear_by_their_field(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Errors only the server can find (a taken name; a policy tightened while the dialog
        was open) are shown next to the field they concern, and the dialog stays open."""
        server.mint("Reader", name="taken")
        sign_in(page, server, admin_secret)
        dialog = open_create(page)
        dialog.get_by_label("Name", exact=True).fill("taken")
        permission(dialog, "Reader").check()
        dialog.get_by_role("button", name="Create").click()
        expect(field_error(page, "new-name")).to_have_text("A token named 'taken' already exists.")
        expect(dialog.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
        expect(dialog.get_by_label("Name", exact=True)).to_be_focused()

        dialog.get_by_label("Name", exact=True).fill("fresh")
        server.use_config(security_policy={"max_lifetime": "1d"})
        dialog.get_by_role("button", name="Create").click()
        expect(field_error(page, "new-expiry")).to_contain_text(
            "exceeds the security policy's maximum lifetime of 1d"
        )
        expect(dialog.get_by_label("Expires after")).to_have_attribute("aria-invalid", "true")
        expect(field_error(page, "new-name")).to_be_hidden()
        expect(dialog).to_be_visible()
        dialog.get_by_role("button", name="Cancel").click()
        expect(row(page, "fresh")).to_have_count(0)

    @pytest.mark.parametrize(
        ("error", "shown_at"),
        [
            pytest.param(
                {
                    "code": "invalid_field",
                    "message": "'name' is fine; the IP filter is not.",
                    "field": "ip_filter",
                },
                "new-ip-filter-error",
                id="field-not-the-message",
            ),
            pytest.param(
                {"code": "invalid_name", "message": "Refused as a whole."},
                "create-error",
                id="no-field-whatever-the-code",
            ),
            pytest.param(
                {"code": "unknown_field", "message": "Unknown field 'nam'.", "field": "nam"},
                "create-error",
                id="field-the-form-lacks",
            ),
        ],
    )
    def test_an_error_is_shown_where_its_field_says(
        self,
        page: Page,
        server: PageServer,
        admin_secret: str,
        error: dict[str, str],
        shown_at: str,
    ) -> None:
        """The server's ``field`` alone decides where an error goes: not its message, not its
        code; no field, or one the form has no control for, goes to the top of the dialog."""
        sign_in(page, server, admin_secret)
        answer_create_with(page, error)
        dialog = open_create(page)
        dialog.get_by_label("Name", exact=True).fill("placed")
        permission(dialog, "Reader").check()
        dialog.get_by_role("button", name="Create").click()
        expect(page.locator(f"#{shown_at}")).to_contain_text(error["message"])
        for other in ("new-name-error", "new-ip-filter-error", "new-expiry-error"):
            if other != shown_at:
                expect(page.locator(f"#{other}")).to_be_hidden()
        expect(dialog).to_be_visible()


class TestDetails:
    """A token's details: permissions, reset secret and delete, each confirmed."""

    def test_reset_secret_asks_first_and_shows_the_new_secret_once(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Cancel keeps the old secret; confirming makes it stop and shows a new one that works."""
        _, old = server.mint("Reader", name="rotating")
        sign_in(page, server, admin_secret)
        page.get_by_role("button", name="rotating", exact=True).click()
        details = page.get_by_role("dialog", name="rotating")
        expect(details).to_be_visible()
        details.get_by_role("button", name="Reset secret").click()
        confirm = page.get_by_role("alertdialog", name="Reset the secret of “rotating”?")
        expect(confirm).to_contain_text("The current secret stops working at once")
        expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
        confirm.get_by_role("button", name="Cancel").click()
        expect(confirm).to_be_hidden()
        assert server.auth_status(old) == 200

        details.get_by_role("button", name="Reset secret").click()
        confirm.get_by_role("button", name="Reset secret").click()
        expect(page.locator("#secret-title")).to_have_text("New secret")
        new = copy_secret(page)
        assert new != old
        assert server.auth_status(old) == 401
        assert server.auth_status(new) == 200
        page.locator("#secret-dialog").get_by_role("button", name="OK", exact=True).click()
        expect(details).to_be_visible()

    def test_delete_asks_first_and_removes_the_token(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Cancel keeps the token; confirming deletes it: gone from the list, refused by /auth."""
        _, secret = server.mint("Reader", name="doomed")
        sign_in(page, server, admin_secret)
        page.get_by_role("button", name="doomed", exact=True).click()
        details = page.get_by_role("dialog", name="doomed")
        details.get_by_role("button", name="Delete token").click()
        confirm = page.get_by_role("alertdialog", name="Delete “doomed”?")
        expect(confirm).to_contain_text("This cannot be undone.")
        confirm.get_by_role("button", name="Cancel").click()
        assert server.auth_status(secret) == 200

        details.get_by_role("button", name="Delete token").click()
        confirm.get_by_role("button", name="Delete token").click()
        expect(details).to_be_hidden()
        expect(row(page, "doomed")).to_have_count(0)
        expect(page.get_by_role("status").first).to_have_text("Deleted token “doomed”.")
        assert server.auth_status(secret) == 401

    def test_permissions_can_be_changed_when_the_policy_allows(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Unticking Reader and ticking Writer takes effect at once on GET /auth."""
        _, secret = server.mint("Reader", name="changing")
        sign_in(page, server, admin_secret)
        page.get_by_role("button", name="changing", exact=True).click()
        details = page.get_by_role("dialog", name="changing")
        permission(details, "Reader").uncheck()
        details.get_by_role("button", name="Save permissions").click()
        expect(field_error(page, "details-permissions")).to_have_text(
            "Choose at least one permission."
        )
        permission(details, "Writer").check()
        details.get_by_role("button", name="Save permissions").click()
        expect(row(page, "changing")).to_contain_text("Writer")
        expect(row(page, "changing")).not_to_contain_text("Reader")
        assert server.auth_status(secret) == 403
        assert server.auth_status(secret, WRITE_ITEMS) == 200

    def test_permissions_are_read_only_when_the_policy_forbids_updates(
        self, page: Page, serve: ServeFactory
    ) -> None:
        """allow_permission_updates: false: the boxes are disabled and there is no Save."""
        server = serve(security_policy={"allow_permission_updates": False})
        _, admin = server.mint(*GRANTING, name="admin console")
        server.mint("Reader", name="fixed")
        sign_in(page, server, admin)
        page.get_by_role("button", name="fixed", exact=True).click()
        details = page.get_by_role("dialog", name="fixed")
        expect(permission(details, "Reader")).to_be_checked()
        expect(permission(details, "Reader")).to_be_disabled()
        expect(permission(details, "Writer")).to_be_disabled()
        expect(details.get_by_role("button", name="Save permissions")).to_be_hidden()
        expect(details).to_contain_text("does not allow changing permissions after creation")


class TestList:
    """The token list: what it shows, filter, sort, paging, and hostile names."""

    def test_list_shows_expiry_status_and_last_use(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Expiry as a date and as time left, the derived status, and the last use."""
        server.clock.advance(-3 * 86400)
        server.mint("Reader", name="old", expires_in="1d")
        server.clock.advance(3 * 86400)
        _, used = server.mint("Reader", name="busy", expires_in="36h")
        assert server.auth_status(used) == 200
        server.flush_usage()
        sign_in(page, server, admin_secret)
        old = row(page, "old")
        expect(old).to_contain_text("expired")
        expect(old).to_contain_text("Jun 13, 2025, 3:06 PM")
        expect(old).to_contain_text("expired 2 days ago")
        expect(old.locator(".badge")).to_have_text("expired")
        busy = row(page, "busy")
        expect(busy.locator(".badge")).to_have_text("active")
        expect(busy).to_contain_text("in 36 hours")
        expect(busy).to_contain_text("from 127.0.0.1")
        expect(busy.locator("td").nth(5)).to_contain_text("less than a minute ago")
        expect(row(page, "admin console").locator("td").nth(5)).to_contain_text("Never")

    def test_expiry_under_a_tightened_maximum_lifetime(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """A policy maximum set after creation: the list and the details show the server's
        effective expiry, marked as the policy's when it comes before the token's own."""
        server.mint("Reader", name="long", expires_in="30d")
        server.mint("Reader", name="short", expires_in="2d")
        server.use_config(security_policy={"max_lifetime": "7d"})
        sign_in(page, server, admin_secret)
        long = row(page, "long").locator("td").nth(3)
        expect(long).to_contain_text("Jun 22, 2025, 3:06 PM")
        expect(long).to_contain_text("in 7 days")
        expect(long).to_contain_text("policy maximum lifetime")
        short = row(page, "short").locator("td").nth(3)
        expect(short).to_contain_text("Jun 17, 2025, 3:06 PM")
        expect(short).not_to_contain_text("policy maximum lifetime")
        page.get_by_role("button", name="long", exact=True).click()
        expect(page.get_by_role("dialog", name="long")).to_contain_text(
            "Jun 22, 2025, 3:06 PM (in 7 days), the policy's maximum lifetime"
        )

    def test_the_expiry_shown_is_the_servers(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """The Expires column shows effective_expires_at as answered, not a date the page
        works out itself (here one no policy rule would give)."""
        server.mint("Reader", name="answered", expires_in="2d")

        def rewrite(route: Route) -> None:
            response = route.fetch()
            page_of_tokens = response.json()
            for token in page_of_tokens["tokens"]:
                if token["name"] == "answered":
                    token["effective_expires_at"] = "2025-06-16T09:00:00Z"
            route.fulfill(response=response, json=page_of_tokens)

        page.route(re.compile(r"/admin/v1/tokens\?"), rewrite)
        sign_in(page, server, admin_secret)
        cell = row(page, "answered").locator("td").nth(3)
        expect(cell).to_contain_text("Jun 16, 2025, 9:00 AM")
        expect(cell).to_contain_text("in 17 hours")
        expect(cell).to_contain_text("policy maximum lifetime")
        expect(cell).not_to_contain_text("Jun 17, 2025")

    def test_filter_sort_and_paging(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Filter by name, sort by name or expiry, and page through the results."""
        for number in range(1, 13):
            server.mint("Reader", name=f"svc {number:02d}", expires_in=f"{number}d")
        sign_in(page, server, admin_secret)
        page.get_by_label("Per page").select_option("10")
        expect(page.locator("#page-info")).to_have_text("1–10 of 13 tokens")
        expect(page.get_by_role("button", name="Previous")).to_be_disabled()
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#page-info")).to_have_text("11–13 of 13 tokens")
        expect(page.get_by_role("button", name="Next")).to_be_disabled()

        page.get_by_label("Filter by name").fill("svc")
        expect(page.locator("#page-info")).to_have_text("1–10 of 12 tokens")
        names = page.locator("#token-rows .link")
        expect(names.first).to_have_text("svc 01")
        page.get_by_label("Sort by").select_option("name:desc")
        expect(names.first).to_have_text("svc 12")
        page.get_by_label("Sort by").select_option("expires_at:asc")
        expect(names.first).to_have_text("svc 01")
        expect(names.nth(1)).to_have_text("svc 02")
        page.get_by_label("Filter by name").fill("nothing like this")
        expect(page.locator("#empty")).to_have_text("No token name contains “nothing like this”.")

    def test_a_hostile_token_name_renders_as_text(
        self, page: Page, server: PageServer, admin_secret: str, problems: PageProblems
    ) -> None:
        """A token named like markup shows its name literally: no element, no script."""
        server.mint("Reader", name=XSS_NAME)
        sign_in(page, server, admin_secret)
        name = page.get_by_role("button", name=XSS_NAME, exact=True)
        expect(name).to_have_text(XSS_NAME)
        assert page.locator("img").count() == 0
        name.click()
        details = page.get_by_role("dialog", name=XSS_NAME)
        expect(details.get_by_role("heading", level=2)).to_have_text(XSS_NAME)
        details.get_by_role("button", name="Delete token").click()
        expect(page.locator("#confirm-title")).to_have_text(f"Delete “{XSS_NAME}”?")
        assert page.locator("img").count() == 0
        assert problems.alerts == []

    def test_every_control_has_a_label(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """Inputs, selects and buttons all have an accessible name, dialogs included."""
        server.mint("Reader", name="labelled")
        page.goto(server.admin_url)
        assert unlabelled_controls(page) == []
        sign_in(page, server, admin_secret)
        assert unlabelled_controls(page) == []
        dialog = open_create(page)
        assert unlabelled_controls(page) == []
        dialog.get_by_role("button", name="Cancel").click()
        page.get_by_role("button", name="labelled", exact=True).click()
        expect(page.get_by_role("dialog", name="labelled")).to_be_visible()
        assert unlabelled_controls(page) == []

    def test_keyboard_only(self, page: Page, server: PageServer, admin_secret: str) -> None:
        """Sign in, open 'Add new', fill it and create, all from the keyboard."""
        page.goto(server.admin_url)
        expect(page.get_by_label("Admin token")).to_be_focused()
        page.keyboard.type(admin_secret)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
        page.get_by_role("button", name="Add new").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_label("Name", exact=True)).to_be_focused()
        page.keyboard.type("typed")
        page.keyboard.press("Tab")
        expect(permission(page, "ManageOrganizationTokens")).to_be_focused()
        page.keyboard.press("Tab")
        expect(permission(page, "Reader")).to_be_focused()
        page.keyboard.press("Space")
        page.keyboard.press("Enter")
        expect(page.locator("#secret-title")).to_have_text("Token created")
        expect(page.get_by_role("button", name="Copy")).to_be_focused()
        page.keyboard.press("Escape")  # must not throw the secret away
        expect(page.locator("#secret-dialog")).to_be_visible()
        page.get_by_role("button", name="OK", exact=True).focus()
        page.keyboard.press("Enter")
        expect(row(page, "typed")).to_contain_text("Reader")

    def test_phone_layout_fits_the_screen(
        self, page: Page, server: PageServer, admin_secret: str
    ) -> None:
        """On a phone-sized screen the list becomes cards without sideways scrolling."""
        server.mint("Reader", "Writer", name="a rather long token name for a small screen")
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, server, admin_secret)
        expect(row(page, "admin console")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        cells = row(page, "admin console").locator("td")
        name_box, permissions_box = cells.nth(0).bounding_box(), cells.nth(1).bounding_box()
        assert name_box is not None
        assert permissions_box is not None
        assert permissions_box["y"] >= name_box["y"] + name_box["height"], "not stacked as a card"
        expect(cells.nth(1)).to_contain_text("ManageOrganizationTokens")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "token-list-phone.png", full_page=True)


class TestScreenshots:
    """The pictures in docs/screenshots/, made from a realistic list."""

    def test_screenshots_of_the_list_and_the_create_dialog(
        self, page: Page, serve: ServeFactory
    ) -> None:
        """docs/screenshots/token-list.png and create-dialog.png show the real page."""
        server = serve(
            permissions=SHOWCASE_PERMISSIONS,
            ip_filters={"office": "allow 10.0.0.0/8\ndeny all\n", "vpn": "allow 172.16.0.0/12\n"},
            security_policy={"max_lifetime": "90d"},
        )
        _, admin = server.mint(
            MANAGE, *SHOWCASE_PERMISSIONS, name="admin console", expires_in="90d"
        )
        server.clock.advance(-100 * 86400)
        server.mint(VIEW, name="audit export (2024)", expires_in="30d")
        server.clock.advance(100 * 86400 - 20 * 86400)
        server.mint("MonitorQueries", name="grafana", expires_in="90d", ip_filter="office")
        server.clock.advance(20 * 86400)
        _, used = server.mint("BlockQueries", "MonitorQueries", name="ci deploys", expires_in="7d")
        server.mint("ReadDashboards", name="wallboard", expires_in="12h", ip_filter="vpn")
        running = {"X-Original-Method": "GET", "X-Original-URI": "/api/v1/queries/running"}
        assert server.auth_status(used, running) == 200
        server.flush_usage()
        sign_in(page, server, admin)
        expect(row(page, "wallboard")).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "token-list.png")

        dialog = open_create(page)
        dialog.get_by_label("Name", exact=True).fill("nightly backup")
        permission(dialog, "MonitorQueries").check()
        dialog.get_by_label("IP filter", exact=True).select_option("office")
        dialog.get_by_label("Expires after").fill("30")
        page.mouse.move(0, 0)
        page.screenshot(path=SCREENSHOTS / "create-dialog.png")
        assert (SCREENSHOTS / "token-list.png").stat().st_size > 10_000
        assert (SCREENSHOTS / "create-dialog.png").stat().st_size > 10_000
