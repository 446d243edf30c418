"""The soak's two ways to change tokens, both reporting the token object: the admin API
(with an admin token, from an address its policy accepts) and the CLI (on the store
directly, as an operator would while the service runs)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from authsvc.rules.tokens import TokenRecord
from tests.processes import AuthsvcServer
from tests.soak.oracle import TokenState

TIMEOUT = aiohttp.ClientTimeout(total=15)


def epoch(text: str | None) -> float | None:
    """An RFC 3339 UTC instant as the API writes it (whole seconds) → epoch seconds."""
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def record_of(token: dict[str, Any]) -> TokenRecord:
    """The token record behind a token object of the admin API or the CLI's ``--json``."""
    created_at = epoch(token["created_at"])
    assert created_at is not None, token
    return TokenRecord(
        id=token["id"],
        name=token["name"],
        permissions=frozenset(token["permissions"]),
        ip_filter=token["ip_filter"],
        created_at=created_at,
        expires_at=epoch(token["expires_at"]),
        created_by=token["created_by"],
    )


def state_of(token: dict[str, Any], secret: str) -> TokenState:
    """The token's state from a token object and its current secret."""
    return TokenState(record_of(token), secret)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a change call came to: ``token`` (the token object, with ``token`` holding the
    new secret after a create or rotation) when it succeeded, else ``refused`` (an error
    code the contract defines) or ``failure`` (a 5xx, a crash, no answer)."""

    token: dict[str, Any] | None = None
    refused: str = ""
    failure: str = ""
    detail: str = ""  # the refusal's message


class AdminApi:
    """Calls of ``/admin/v1/tokens`` with one admin token."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self._session = session
        self._port = port
        self._base = f"http://127.0.0.1:{port}/admin/v1/tokens"

    async def metric(self, name: str) -> float | None:
        """One unlabelled sample of the service's /metrics (None: absent or unreadable)."""
        try:
            url = f"http://127.0.0.1:{self._port}/metrics"
            async with self._session.get(url, timeout=TIMEOUT) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    async def call(
        self, method: str, path: str, secret: str, client_ip: str, body: Any = None
    ) -> Outcome:
        """One call; the admin token's address comes through X-Real-IP (the admin
        listener trusts loopback in the soak's configuration)."""
        headers = {"Authorization": f"Bearer {secret}", "X-Real-IP": client_ip}
        try:
            async with self._session.request(
                method, self._base + path, json=body, headers=headers, timeout=TIMEOUT
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            return Outcome(failure=f"{method} {path}: no answer ({error!r})")
        if status == 204:
            return Outcome(token={})
        try:
            data = json.loads(text)
        except ValueError:
            return Outcome(failure=f"{method} {path}: {status} with a body that is not JSON")
        if 200 <= status < 300:
            return Outcome(token=data)
        code = data.get("error", {}).get("code") if isinstance(data, dict) else None
        if 400 <= status < 500 and isinstance(code, str):
            message = data["error"].get("message", "")
            return Outcome(refused=f"{status} {code}", detail=str(message)[:200])
        return Outcome(failure=f"{method} {path}: {status} {text[:300]}")


class Cli:
    """``authsvc token ...`` against the server's configuration file, in a thread."""

    def __init__(self, server: AuthsvcServer) -> None:
        self._server = server

    async def run(self, *args: str) -> Outcome:
        """One command; its JSON output as the token (``{}`` for delete)."""
        try:
            out = await asyncio.to_thread(self._server.cli, "token", *args)
        except AssertionError as error:  # non-zero exit: refused, unless it crashed
            message = str(error)
            if "Traceback" in message:
                return Outcome(failure=f"authsvc token {args[0]} crashed:\n{message[-2000:]}")
            return Outcome(refused=f"cli {args[0]}", detail=message.splitlines()[-1][:200])
        return Outcome(token=json.loads(out) if "--json" in args else {})
