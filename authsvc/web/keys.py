"""Typed application keys, gathered in one place."""

from __future__ import annotations

from aiohttp import web

from authsvc.service.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
