"""``/healthz``, ``/readyz`` and ``/metrics`` on the admin listener (no token needed)."""

from __future__ import annotations

from aiohttp import web

from authsvc.service.metrics import CONTENT_TYPE_LATEST
from authsvc.store import StoreError
from authsvc.web.keys import RUNTIME


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers and a configuration is loaded. A failed reload is
    reported but keeps the service ready: it still serves the last good configuration."""
    runtime = request.app[RUNTIME]
    lines = []
    try:
        await runtime.store.ping()
    except StoreError as error:
        runtime.metrics.store_errors.labels(operation="ping").inc()
        return web.Response(status=503, text=f"not ready: store unavailable: {error}\n")
    lines.append("ready")
    if runtime.limiter.fallback:  # still ready: requests are never refused for it
        lines.append("rate limits: fallback: Redis is unreachable, this instance counts alone")
    if runtime.live.last_error is not None:
        lines.append(
            f"last configuration reload failed, still serving the last good one: "
            f"{runtime.live.last_error}"
        )
    return web.Response(text="\n".join(lines) + "\n")


async def metrics(request: web.Request) -> web.Response:
    body = request.app[RUNTIME].metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_health_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_get("/metrics", metrics)
