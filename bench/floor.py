"""The `floor` of the benchmark: what a naive Python auth service reaches.

A minimal aiohttp handler on the default event loop: one dict lookup of a SHA-256 digest
and, for a token bound to a network, one CIDR check of X-Real-IP; no other rule (no
permissions). authsvc applies every rule of SPEC §2 and should still be at least as fast
as this.

Usage: python bench/floor.py PORT TOKENS_FILE
TOKENS_FILE: one token a line, `SECRET NETWORK` (the client must be in NETWORK) or `SECRET`.
"""

from __future__ import annotations

import hashlib
import sys
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path

from aiohttp import web

Network = IPv4Network | IPv6Network
#: Stands for "no such token" in the one dict lookup (never a token's own network object).
UNKNOWN: Network = IPv4Network("0.0.0.0/32")


def main() -> None:
    port, tokens_file = int(sys.argv[1]), Path(sys.argv[2])
    networks: dict[str, Network] = {}
    tokens: dict[bytes, Network | None] = {}
    for line in tokens_file.read_text().splitlines():
        secret, _, network = line.partition(" ")
        if network and network not in networks:
            networks[network] = ip_network(network)
        tokens[hashlib.sha256(secret.encode()).digest()] = networks.get(network)

    async def auth(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return web.Response(status=401)
        network = tokens.get(hashlib.sha256(header[7:].encode()).digest(), UNKNOWN)
        if network is UNKNOWN:
            return web.Response(status=401)
        client = request.headers.get("X-Real-IP", "0.0.0.0")  # noqa: S104
        if network is not None and ip_address(client) not in network:
            return web.Response(status=403)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_get("/auth", auth)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
