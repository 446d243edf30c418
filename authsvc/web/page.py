"""The token page: static HTML, CSS and JavaScript served by the admin listener at ``/``.

The files ship inside the package (``authsvc/web/static/``); there is no build step and
nothing is fetched from elsewhere. Every response carries a strict Content-Security-Policy
(no inline script or style, no third-party origin, no framing), so even a token name that
slipped past the page's escaping could not run script.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: The only files served under /static/: a fixed list, so no path ever reaches the disk.
ASSETS: dict[str, str] = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "usage.js": "text/javascript; charset=utf-8",
}
_INDEX = "index.html"


@cache
def _read(name: str) -> bytes:
    # Read once per process: the files are part of the installed package.
    return resources.files("authsvc.web").joinpath("static", name).read_bytes()


def _headers(*, cache_control: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": cache_control,
    }


async def index(request: web.Request) -> web.Response:
    """The page itself; never cached, so an upgrade is picked up at the next load."""
    return web.Response(
        body=_read(_INDEX),
        content_type="text/html",
        charset="utf-8",
        headers=_headers(cache_control="no-store"),
    )


async def asset(request: web.Request) -> web.Response:
    """One of :data:`ASSETS`; anything else is a 404 that echoes nothing."""
    name = request.match_info["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    response = web.Response(body=_read(name), headers=_headers(cache_control="no-cache"))
    # Set after construction: aiohttp's content_type argument does not take parameters.
    response.headers["Content-Type"] = content_type
    return response


def add_page_routes(router: web.UrlDispatcher) -> None:
    """Serve the token page at ``/`` and its script and style sheet under ``/static/``."""
    router.add_get("/", index)
    router.add_get("/static/{name}", asset)
