"""The `floor` of the benchmark: what a naive Python auth service reaches.

A minimal aiohttp handler on the default event loop: one dict lookup of a SHA-256 digest
and one CIDR check, no other rule. authsvc applies every rule of SPEC §2 and should
still be at least as fast as this.

Usage: python bench/floor.py PORT TOKENS_FILE
"""

from __future__ import annotations

import hashlib
import sys
from ipaddress import ip_address, ip_network
from pathlib import Path

from aiohttp import web

ALLOWED = ip_network("127.0.0.0/8")


def main() -> None:
    port, tokens_file = int(sys.argv[1]), Path(sys.argv[2])
    tokens = {
        hashlib.sha256(line.encode()).digest(): str(index)
        for index, line in enumerate(tokens_file.read_text().split())
    }

    async def auth(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return web.Response(status=401)
        if hashlib.sha256(header[7:].encode()).digest() not in tokens:
            return web.Response(status=401)
        if ip_address(request.headers.get("X-Real-IP", "0.0.0.0")) not in ALLOWED:  # noqa: S104
            return web.Response(status=403)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_get("/auth", auth)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
