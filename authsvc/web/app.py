"""The admin listener's application (the auth listener is a bare server: web/auth.py)."""

from __future__ import annotations

from aiohttp import web

from authsvc.service.runtime import Runtime
from authsvc.web.admin import MAX_BODY, add_admin_routes
from authsvc.web.errors import error_middleware
from authsvc.web.health import add_health_routes
from authsvc.web.keys import RUNTIME
from authsvc.web.openapi import DOCUMENT
from authsvc.web.page import add_page_routes
from authsvc.web.protocol import anonymous_response

__all__ = ["create_admin_app"]


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


def create_admin_app(runtime: Runtime) -> web.Application:
    """The admin listener: the token page, admin API, OpenAPI document, health, metrics."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
    app[RUNTIME] = runtime
    app.on_response_prepare.append(anonymous_response)
    add_health_routes(app.router)
    add_admin_routes(app.router)
    app.router.add_get("/admin/v1/openapi.json", openapi, allow_head=False)
    add_page_routes(app.router)
    return app
