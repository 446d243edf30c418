"""Fixtures for the token page in a real headless browser (Debian's chromium, Playwright).

- ``serve(**config_overrides)`` starts the admin app (with the page) and the auth app on
  free ports, on a private event loop in a background thread, and returns a
  :class:`PageServer`; ``server`` is ``serve()`` with the test catalog;
- ``browser`` launches the system chromium once per module (no browser download: the
  Playwright package drives the installed binary);
- ``page`` is a fresh page (own context, so own sessionStorage and clipboard) whose
  clock shows the same fixed time as the server's, so dates and "time left" are stable.

A missing chromium or Playwright is :func:`tests.required.unavailable`: a skip on a
laptop, a failure in CI (``AUTHSVC_REQUIRE_E2E=1``).
"""

from __future__ import annotations

import asyncio
import http.client
import importlib.util
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from aiohttp import web

from authsvc.rules.tokens import TokenRecord
from authsvc.service.runtime import Runtime
from authsvc.store import ListQuery
from authsvc.web.app import create_admin_app
from authsvc.web.auth import create_auth_server
from authsvc.web.page import add_page_routes
from authsvc.web.protocol import QuietAppRunner
from tests.factories import FrozenClock, make_config
from tests.required import unavailable
from tests.webapp import ENVIRON, MANAGE, NOW, READ_ITEMS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, ViewportSize

T = TypeVar("T")
CHROMIUM_ENV = "AUTHSVC_CHROMIUM"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CALL_TIMEOUT = 30.0  # seconds; a bound for a hung server, never reached when healthy
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


class PageServer:
    """The admin listener (API and page) and the auth listener on one runtime."""

    def __init__(self, tmp_path: Path, clock: FrozenClock, overrides: dict[str, Any]) -> None:
        self.clock = clock
        self._config = make_config(tmp_path, **overrides)
        self._tmp_path = tmp_path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.BaseRunner] = []
        self.runtime: Runtime | None = None
        self.admin_url = ""
        self.auth_port = 0

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT)

    def start(self) -> None:
        self._thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        self.runtime = await Runtime.open(self._config, clock=self.clock, environ=ENVIRON)
        admin_app = create_admin_app(self.runtime)
        if not _serves_page(admin_app):
            add_page_routes(admin_app.router)  # until authsvc.web.app serves the page itself
        ports = []
        # The same runners as ``authsvc serve``.
        runners = (QuietAppRunner(admin_app), web.ServerRunner(create_auth_server(self.runtime)))
        for runner in runners:
            await runner.setup()
            self._runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            ports.append(runner.addresses[0][1])
        self.admin_url = f"http://127.0.0.1:{ports[0]}/"
        self.auth_port = ports[1]

    def stop(self) -> None:
        if self._thread.is_alive():
            self.call(self._stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CALL_TIMEOUT)
        self._loop.close()

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        if self.runtime is not None:
            await self.runtime.close()

    @property
    def rt(self) -> Runtime:
        assert self.runtime is not None, "the server is not started"
        return self.runtime

    def mint(
        self,
        *permissions: str,
        name: str,
        expires_in: str | None = None,
        ip_filter: str | None = None,
    ) -> tuple[TokenRecord, str]:
        """Create a token the way the CLI does; (record, secret)."""
        return self.call(
            self.rt.service.create(
                actor="cli",
                client=None,
                name=name,
                permissions=list(permissions or (MANAGE,)),
                expires_in=expires_in,
                ip_filter=ip_filter,
            )
        )

    def use_config(self, **overrides: Any) -> None:
        """Put ``make_config(tmp_path, **overrides)`` in force, as a reload would."""
        self.rt.live.current = make_config(self._tmp_path, **overrides)

    def auth_status(self, secret: str, request: dict[str, str] | None = None) -> int:
        """The status GET /auth answers for ``secret`` (by default on a Reader request)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.auth_port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {secret}", **(request or READ_ITEMS)}
            connection.request("GET", "/auth", headers=headers)
            return connection.getresponse().status
        finally:
            connection.close()

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """A plain GET on the admin listener: (status, headers, body)."""
        port = int(self.admin_url.rsplit(":", 1)[1].strip("/"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def token_count(self) -> int:
        """How many tokens the store holds."""
        total, _ = self.call(self.rt.service.list_tokens(ListQuery(limit=1)))
        return total

    def flush_usage(self) -> None:
        """Write the batched last-used data now (the serve loop does it every few seconds)."""
        self.call(self.rt.usage.flush())

    def close_store(self) -> None:
        """Make the store unreachable: every call that needs it answers 503."""
        self.call(self.rt.store.close())


def _serves_page(app: web.Application) -> bool:
    return any(
        route.resource is not None and route.resource.canonical == "/"
        for route in app.router.routes()
    )


ServeFactory = Callable[..., PageServer]


@pytest.fixture
def clock() -> FrozenClock:
    """The server's wall time, frozen at NOW (the page's clock is set to the same)."""
    return FrozenClock(NOW)


@pytest.fixture
def serve(tmp_path: Path, clock: FrozenClock) -> Iterator[ServeFactory]:
    """Start servers on ``make_config(tmp_path, **overrides)``; all stopped at teardown."""
    started: list[PageServer] = []

    def start(**overrides: Any) -> PageServer:
        server = PageServer(tmp_path, clock, overrides)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(serve: ServeFactory) -> PageServer:
    """Servers on the test catalog (Reader, Writer; filters office and localhost)."""
    return serve()


def _chromium() -> str:
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        unavailable(
            f"chromium not found at {path} (apt-get install chromium, or set {CHROMIUM_ENV})"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system chromium, headless, driven by Playwright (never downloads a browser)."""
    if importlib.util.find_spec("playwright") is None:
        unavailable("the Python package playwright is not installed (pip install -e .[test])")
    executable = _chromium()
    from playwright.sync_api import Error, sync_playwright  # noqa: PLC0415 - optional

    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Error as error:
            unavailable(f"chromium at {executable} did not start: {error.message}")
        yield launched
        launched.close()


class PageProblems:
    """Script errors and Content-Security-Policy violations seen by a page."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.alerts: list[str] = []


@pytest.fixture
def problems() -> PageProblems:
    """Collects what ``page`` must never show: script errors, CSP violations, alerts."""
    return PageProblems()


@pytest.fixture
def page(browser: Browser, problems: PageProblems) -> Iterator[Page]:
    """A fresh page (own context: sessionStorage, clipboard) at the server's fixed time.

    At teardown, no uncaught script error, no CSP violation and no alert may have happened.
    """
    context = browser.new_context(
        viewport=VIEWPORT,
        locale="en-US",
        timezone_id="UTC",
        color_scheme="light",
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    opened = context.new_page()
    opened.clock.set_fixed_time(NOW)
    opened.on("pageerror", lambda error: problems.messages.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        # Failed fetches (401, 503) are logged too; those are expected in some tests.
        if "Content Security Policy" in message.text:
            problems.messages.append(f"console: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        problems.alerts.append(dialog.message)
        dialog.dismiss()

    opened.on("console", on_console)
    opened.on("dialog", on_dialog)
    yield opened
    context.close()
    assert problems.messages == [], "the page reported problems"
    assert problems.alerts == [], "the page opened an alert/confirm/prompt"
